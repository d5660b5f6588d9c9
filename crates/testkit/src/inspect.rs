//! Reading back what the programs wrote: values in JSON documents, invoice numbers, the
//! times in taxd's request log, and the bytes of files (for tampering).

use serde_json::Value;
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// `v[key]` as &str, panicking with the document.
#[track_caller]
pub fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {v}"))
}

/// `v[key]` as u64, panicking with the document.
#[track_caller]
pub fn u(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no unsigned integer at {pointer} in {v}"))
}

/// The same JSON value written differently: every object's keys in reverse order and
/// pretty-printed, so only a receiver that canonicalises sees the same envelope.
pub fn respaced_reordered(v: &Value) -> String {
    fn reorder(v: &Value, out: &mut String, indent: usize) {
        let pad = "   ".repeat(indent);
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                keys.reverse();
                out.push_str("{\n");
                for (i, k) in keys.iter().enumerate() {
                    out.push_str(&pad);
                    out.push_str("   ");
                    out.push_str(&serde_json::to_string(k).expect("key"));
                    out.push_str(" :  ");
                    reorder(&m[k.as_str()], out, indent + 1);
                    if i + 1 < keys.len() {
                        out.push(',');
                    }
                    out.push('\n');
                }
                out.push_str(&pad);
                out.push('}');
            }
            Value::Array(a) => {
                out.push_str("[ ");
                for (i, x) in a.iter().enumerate() {
                    reorder(x, out, indent + 1);
                    if i + 1 < a.len() {
                        out.push_str(" ,\n");
                        out.push_str(&pad);
                    }
                }
                out.push_str(" ]");
            }
            other => out.push_str(&serde_json::to_string(other).expect("scalar")),
        }
    }
    let mut out = String::new();
    reorder(v, &mut out, 0);
    out.push('\n');
    out
}

/// Parses a 20-digit invoice number.
#[track_caller]
pub fn number_value(number: &str) -> u128 {
    assert!(
        number.len() == 20 && number.bytes().all(|b| b.is_ascii_digit()),
        "invoice number {number:?} is not 20 digits"
    );
    number.parse().expect("digits")
}

/// Reads a file fully (for byte-level tampering).
pub fn read_bytes(p: &Path) -> Vec<u8> {
    let mut f = File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let mut b = Vec::new();
    f.read_to_end(&mut b).expect("read");
    b
}

/// All start offsets of `needle` in `hay`.
pub fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return Vec::new();
    }
    (0..=hay.len() - needle.len())
        .filter(|&i| &hay[i..i + needle.len()] == needle)
        .collect()
}

/// Milliseconds since the Unix epoch of a request-log line's `time`
/// (`YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC).
#[track_caller]
pub fn log_time_ms(line: &Value) -> i64 {
    let t = s(line, "/time");
    let num = |range: std::ops::Range<usize>| -> i64 {
        t.get(range)
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("request-log time {t:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ"))
    };
    assert!(t.len() == 24 && t.ends_with('Z'), "request-log time {t:?}");
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    // Days from civil (H. Hinnant), proleptic Gregorian.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + num(11..13)) * 60 + num(14..16)) * 60_000 + num(17..19) * 1000 + num(20..23)
}
