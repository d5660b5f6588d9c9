#!/usr/bin/env python3
"""The tests' second XLSX implementation (openpyxl), independent of kaipiao-sheets.

  xlsx.py write OUT.xlsx < BOOK.json   writes a workbook: {"sheets": [{"name", "rows":
      [[cell, ...], ...]}]}; a cell is a string, a number (written as a number), null
      (empty), {"percent": 0.13} (a number shown as 13%), {"bool": true} or
      {"formula": "=1/0"}.
  xlsx.py read FILE.xlsx               prints {"sheets": [{"name", "rows": [[value, ...]]}]}
      with numbers as the shortest text of their double, strings as strings, empty
      cells as null; "formats" (each number cell's number format) beside them, and
      "validations" (each dropdown's cells and list).
"""
import json
import sys

import openpyxl


def write(out):
    book = json.load(sys.stdin)
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for sheet in book["sheets"]:
        ws = wb.create_sheet(sheet["name"])
        for r, row in enumerate(sheet["rows"], start=1):
            for c, cell in enumerate(row, start=1):
                if cell is None:
                    continue
                target = ws.cell(row=r, column=c)
                if isinstance(cell, dict):
                    if "percent" in cell:
                        target.value = cell["percent"]
                        target.number_format = "0%"
                    elif "bool" in cell:
                        target.value = bool(cell["bool"])
                    elif "formula" in cell:
                        target.value = cell["formula"]
                else:
                    target.value = cell
    wb.save(out)


def text(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return repr(float(v)) if isinstance(v, float) else str(v)
    return str(v)


def read(path):
    wb = openpyxl.load_workbook(path, data_only=True)
    sheets = []
    for ws in wb.worksheets:
        rows, formats = [], []
        for row in ws.iter_rows():
            rows.append([text(c.value) for c in row])
            formats.append([c.number_format if isinstance(c.value, (int, float)) else None for c in row])
        validations = [
            {"cells": str(dv.sqref), "list": dv.formula1}
            for dv in ws.data_validations.dataValidation
        ]
        sheets.append({"name": ws.title, "rows": rows, "formats": formats, "validations": validations})
    json.dump({"sheets": sheets}, sys.stdout, ensure_ascii=False)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    elif sys.argv[1] == "read":
        read(sys.argv[2])
    else:
        sys.exit("usage: xlsx.py write OUT.xlsx < BOOK.json | xlsx.py read FILE.xlsx")
