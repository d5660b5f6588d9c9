//! `kaipiao verify-pdf FILE`: an invoice PDF checked offline against the proof it carries
//! (docs/FORMATS.md, "The invoice PDF").
//!
//! 1. `proof`: the signed envelope is embedded and readable.
//! 2. `device_signature`: the envelope's hash is the invoice's, and its signature verifies
//!    against the embedded device key.
//! 3. `receipt`: when a receipt is embedded, it verifies against the embedded authority
//!    key, that key is trusted (its fingerprint is the pinned one or one given), and it
//!    names this very invoice (id, hash, number). Without a trusted fingerprint it is
//!    reported as unverified. A pending invoice has none.
//! 4. `printed_text`: the page text (as a reader extracts it) shows the embedded invoice's
//!    number, date (China time), buyer, seller, totals, amount in words and, once
//!    accepted, the authority's code.
//! 5. `qr`: the QR code as drawn (page 1 rasterised, then decoded) is the payload the
//!    embedded invoice and receipt give.

use crate::{qr_payload, AUTHORITY_KEY_FILE, ENVELOPE_FILE, RECEIPT_FILE};
use kaipiao_core::time::china_date;
use kaipiao_core::wire::Receipt;
use kaipiao_core::{Envelope, Kind, PublicKey};
use serde::Serialize;
use std::collections::BTreeMap;

/// The embedded device key's file name.
pub const DEVICE_KEY_FILE: &str = "device-key.json";

/// One check and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// What `verify-pdf` reports. Field names are stable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub valid: bool,
    pub number: Option<String>,
    /// "pending" or the receipt's status.
    pub status: Option<String>,
    pub checks: Vec<Check>,
}

fn check(name: &'static str, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        ok,
        detail: detail.into(),
    }
}

/// The embedded files of `doc`, by name (the EmbeddedFiles name tree, kids included).
fn embedded_files(doc: &lopdf::Document) -> BTreeMap<String, Vec<u8>> {
    fn walk(doc: &lopdf::Document, node: &lopdf::Dictionary, out: &mut BTreeMap<String, Vec<u8>>) {
        if let Ok(names) = node.get_deref(b"Names", doc).and_then(|o| o.as_array()) {
            for pair in names.chunks(2) {
                let [key, value] = pair else { continue };
                let Ok(name) = doc.dereference(key).and_then(|(_, o)| o.as_str()) else {
                    continue;
                };
                let data = doc
                    .dereference(value)
                    .and_then(|(_, o)| o.as_dict())
                    .and_then(|spec| spec.get_deref(b"EF", doc))
                    .and_then(|ef| ef.as_dict())
                    .and_then(|ef| ef.get_deref(b"F", doc))
                    .and_then(|f| f.as_stream());
                if let Ok(stream) = data {
                    let bytes = stream
                        .decompressed_content()
                        .unwrap_or_else(|_| stream.content.clone());
                    out.insert(String::from_utf8_lossy(name).into_owned(), bytes);
                }
            }
        }
        if let Ok(kids) = node.get_deref(b"Kids", doc).and_then(|o| o.as_array()) {
            for kid in kids {
                if let Ok((_, k)) = doc.dereference(kid) {
                    if let Ok(d) = k.as_dict() {
                        walk(doc, d, out);
                    }
                }
            }
        }
    }
    let mut out = BTreeMap::new();
    let root = doc
        .catalog()
        .and_then(|c| c.get_deref(b"Names", doc))
        .and_then(|n| n.as_dict())
        .and_then(|n| n.get_deref(b"EmbeddedFiles", doc))
        .and_then(|e| e.as_dict());
    if let Ok(root) = root {
        walk(doc, root, &mut out);
    }
    out
}

/// The QR codes on page 1, as drawn: the page rasterised (3 px per point), then decoded.
fn qr_on_first_page(bytes: &[u8]) -> Result<Vec<String>, String> {
    let crate::raster::Raster {
        width: w,
        height: h,
        rgba,
    } = crate::raster::raster_page(bytes, 0, 3.0)?;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        let i = (y * w + x) * 4;
        let v = (u32::from(rgba[i]) * 299
            + u32::from(rgba[i + 1]) * 587
            + u32::from(rgba[i + 2]) * 114)
            / 1000;
        v as u8
    });
    Ok(img
        .detect_grids()
        .into_iter()
        .filter_map(|g| g.decode().ok().map(|(_, text)| text))
        .collect())
}

/// Checks `bytes` (see the module documentation). `trusted` are authority key
/// fingerprints (lowercase hex SHA-256 of the raw key) the caller trusts. Never fails:
/// an unreadable file or proof is a failed check.
pub fn verify_pdf(bytes: &[u8], trusted: &[String]) -> Verification {
    let mut checks = Vec::new();
    let mut result = Verification {
        valid: false,
        number: None,
        status: None,
        checks: Vec::new(),
    };
    let doc = match lopdf::Document::load_mem(bytes) {
        Ok(d) => d,
        Err(e) => {
            result
                .checks
                .push(check("proof", false, format!("not a readable PDF: {e}")));
            return result;
        }
    };
    let files = embedded_files(&doc);
    let envelope: Option<Envelope> = files
        .get(ENVELOPE_FILE)
        .and_then(|b| serde_json::from_slice(b).ok());
    let Some(env) = envelope else {
        result.checks.push(check(
            "proof",
            false,
            format!("no readable {ENVELOPE_FILE} is embedded: this PDF carries no proof"),
        ));
        return result;
    };
    let inv = &env.invoice;
    result.number = Some(inv.number.clone());
    checks.push(check("proof", true, format!("{ENVELOPE_FILE} embedded")));

    // 2. The device signature and the hash.
    let device_key = files
        .get(DEVICE_KEY_FILE)
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v["public_key"].as_str().map(str::to_string))
        .and_then(|k| PublicKey::from_base64(&k).ok());
    checks.push(match device_key {
        None => check(
            "device_signature",
            false,
            format!("no readable {DEVICE_KEY_FILE} is embedded"),
        ),
        Some(key) => match kaipiao_core::sign::verify_envelope(&key, &env) {
            Ok(()) => check(
                "device_signature",
                true,
                "the hash is the invoice's and the device signature verifies",
            ),
            Err(e) => check(
                "device_signature",
                false,
                format!("the embedded invoice does not verify: {e}"),
            ),
        },
    });

    // 3. The receipt.
    let receipt_text = files
        .get(RECEIPT_FILE)
        .map(|b| String::from_utf8_lossy(b).into_owned());
    let mut receipt: Option<Receipt> = None;
    match &receipt_text {
        None => {
            result.status = Some("pending".into());
            checks.push(check(
                "receipt",
                true,
                "pending: no receipt of the authority is embedded",
            ));
        }
        Some(text) => {
            let key = files
                .get(AUTHORITY_KEY_FILE)
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
                .and_then(|v| v["public_key"].as_str().map(str::to_string))
                .and_then(|k| PublicKey::from_base64(&k).ok());
            checks.push(match key {
                None => check("receipt", false, format!("no readable {AUTHORITY_KEY_FILE} is embedded")),
                Some(key) => {
                    let fingerprint = key.fingerprint();
                    match Receipt::verify_json(text, &key) {
                        Err(e) => check("receipt", false, format!("the receipt does not verify: {e}")),
                        Ok((r, _)) if r.invoice_id != inv.id || r.hash != env.hash || r.number != inv.number => {
                            check("receipt", false, "the receipt names another invoice")
                        }
                        Ok((r, _)) => {
                            result.status = Some(r.status.clone());
                            let ok = trusted.iter().any(|t| t.eq_ignore_ascii_case(&fingerprint));
                            receipt = Some(r);
                            if ok {
                                check("receipt", true, format!("signed by the authority key {fingerprint}"))
                            } else {
                                check("receipt", false, format!("unverified: signed by the embedded key {fingerprint}, which is neither the pinned one nor one given with --authority-key"))
                            }
                        }
                    }
                }
            });
        }
    }
    let code = receipt.as_ref().map(|r| r.authority_code.clone());

    // 4. The printed text.
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc.extract_text(&pages).unwrap_or_default();
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let date = china_date(&inv.issued_at).map(|d| d.format("%Y年%m月%d日").to_string());
    let mut wanted = vec![
        ("number", inv.number.clone()),
        ("date", date.unwrap_or_default()),
        ("buyer", inv.buyer.name.clone()),
        ("seller", inv.seller.name.clone()),
        ("total", format!("¥{}", inv.total)),
        ("total_amount", format!("¥{}", inv.total_amount)),
        ("total_tax", format!("¥{}", inv.total_tax)),
        (
            "total_in_words",
            kaipiao_core::words::total_in_words(&inv.total),
        ),
    ];
    if let Some(c) = &code {
        wanted.push(("authority_code", c.clone()));
    }
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(_, v)| {
            let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            !compact.contains(&v)
        })
        .map(|(what, v)| format!("{what} {v}"))
        .collect();
    checks.push(if missing.is_empty() {
        check(
            "printed_text",
            true,
            "the page shows the number, date, buyer, seller and totals of the embedded invoice",
        )
    } else {
        check(
            "printed_text",
            false,
            format!(
                "the page does not show the embedded invoice's {}",
                missing.join(", ")
            ),
        )
    });

    // 5. The QR code as drawn.
    let expected = |credited: Option<Kind>| qr_payload(inv, credited, code.as_deref());
    checks.push(match qr_on_first_page(bytes) {
        Err(e) => check("qr", false, e),
        Ok(found) => {
            // A credit note's type is its original's, which the PDF does not carry: either.
            let candidates: Vec<String> = if inv.kind == Kind::Credit {
                vec![
                    expected(Some(Kind::Ordinary)),
                    expected(Some(Kind::Special)),
                ]
            } else {
                vec![expected(None)]
            };
            match found.iter().find(|f| candidates.contains(f)) {
                Some(f) => check("qr", true, format!("the QR code reads {f}")),
                None if found.is_empty() => {
                    check("qr", false, "no QR code could be read on page 1")
                }
                None => check(
                    "qr",
                    false,
                    format!(
                        "the QR code reads {} where the embedded invoice gives {}",
                        found.join(" | "),
                        candidates.join(" or ")
                    ),
                ),
            }
        }
    });

    result.valid = checks.iter().all(|c| c.ok);
    result.checks = checks;
    result
}
