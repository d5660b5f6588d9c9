#!/usr/bin/env python3
"""Makes crates/pdf/fonts/NotoSansCJKsc-Regular-GBK.otf, the font every invoice PDF is
set in (issue 11): the Simplified Chinese face of Noto Sans CJK Regular, subset to the
characters of GBK (GB 2312 and every CJK Unified Ideograph of the basic block), Latin-1,
general punctuation, currency, arrows, mathematical operators (⊗), box drawing, geometric shapes, enclosed numbers,
CJK symbols and the full-width forms: 22,379 characters in 5.2 MB, where the face is
16.4 MB. Each PDF then carries only the glyphs it uses (krilla subsets again).

Run by hand, not by the build (the result is checked in with its licence, OFL.txt):
    apt-get install fonts-noto-cjk && pip install fonttools
    python3 scripts/subset-font.py
"""
import subprocess
import sys
import tempfile
from pathlib import Path

from fontTools.ttLib import TTCollection

SOURCE = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
FACE = 2  # Noto Sans CJK SC
OUT = Path(__file__).resolve().parent.parent / "crates/pdf/fonts/NotoSansCJKsc-Regular-GBK.otf"
BLOCKS = [
    (0x0000, 0x024F), (0x2000, 0x206F), (0x20A0, 0x20CF), (0x2190, 0x21FF),
    (0x2200, 0x22FF), (0x2460, 0x24FF), (0x2500, 0x257F), (0x25A0, 0x25FF), (0x3000, 0x303F),
    (0xFF00, 0xFFEF),
]


def wanted(cp: int) -> bool:
    if any(lo <= cp <= hi for lo, hi in BLOCKS):
        return True
    try:
        chr(cp).encode("gbk")
        return True
    except UnicodeEncodeError:
        return False


def main() -> int:
    face = TTCollection(str(SOURCE)).fonts[FACE]
    keep = sorted(cp for cp in face.getBestCmap() if wanted(cp))
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "sc.otf"
        face.save(str(full))
        codes = Path(tmp) / "unicodes.txt"
        codes.write_text(",".join(f"{cp:04X}" for cp in keep))
        subprocess.run(
            ["pyftsubset", str(full), f"--unicodes-file={codes}", f"--output-file={OUT}",
             "--layout-features=kern,palt,vert,vrt2", "--no-hinting", "--name-IDs=*",
             "--name-legacy", "--name-languages=*"],
            check=True,
        )
    print(f"{OUT}: {len(keep)} characters, {OUT.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
