//! The end of every story: the independent verifier of SPEC 4 over an export, and the
//! checks that nothing was lost and nothing duplicated between a shop and its taxd.

use crate::cli::Shop;
use crate::inspect::{s, u};
use crate::process::{run_with_deadline, workspace_dir, COMMAND_DEADLINE};
use crate::taxd::Taxd;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The independent verifier of SPEC 4 (shared/tools/verify_export.py beside the repo).
pub fn verifier_path() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("KAIPIAO_VERIFY_EXPORT") {
        candidates.push(PathBuf::from(p));
    }
    let ws = workspace_dir();
    candidates.push(ws.join("../shared/tools/verify_export.py"));
    // The verbatim copy in the repository, for a clone that has no shared/ beside it.
    candidates.push(ws.join("tools/verify_export.py"));
    candidates.push(ws.join("shared/tools/verify_export.py"));
    candidates.push(PathBuf::from("/work/shared/tools/verify_export.py"));
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "verify_export.py not found (looked in {candidates:?}); set KAIPIAO_VERIFY_EXPORT to \
         its path"
    );
}

/// Runs `python3 verify_export.py FILE --authority-key KEY`; panics (the test fails) when
/// python3 or its modules are missing, or when the export does not verify. Returns the
/// verifier's (invoices, receipts) figures.
#[track_caller]
pub fn verify_export(file: &Path, authority_key: &str) -> (u64, u64) {
    let probe = Command::new("python3")
        .args(["-c", "import rfc8785, cryptography"])
        .output();
    match probe {
        Err(e) => panic!(
            "python3 is required to run the independent verifier ({e}); install python3 and \
             `pip install rfc8785 cryptography` (make deps does)"
        ),
        Ok(o) if !o.status.success() => panic!(
            "python3 lacks the verifier's modules: {}; `pip install rfc8785 cryptography` \
             (make deps does)",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {}
    }
    let mut cmd = Command::new("python3");
    cmd.arg(verifier_path())
        .arg(file)
        .arg("--authority-key")
        .arg(authority_key);
    let out = run_with_deadline(
        cmd,
        format!(
            "python3 verify_export.py {} --authority-key {authority_key}",
            file.display()
        ),
        None,
        COMMAND_DEADLINE,
    );
    assert_eq!(
        out.code, 0,
        "the independent verifier rejects the export\n{out}"
    );
    let last = out.stdout.lines().last().unwrap_or_default().to_string();
    let figures: Vec<u64> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        last.starts_with("verified ") && figures.len() == 2,
        "unexpected verifier output\n{out}"
    );
    (figures[0], figures[1])
}

/// How the receipts the client stored compare with the ones the authority holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipts {
    /// The very receipt the authority stored, field for field: it is what it sent.
    Identical,
    /// The authority lost some receipts (restored from a backup) and issued them again
    /// when the client resubmitted; the client keeps its first receipt, which must name
    /// the same invoice, number, hash and status.
    SameInvoices,
}

/// The checks every fault story ends with, once the faults are off: nothing lost (every
/// one of the `n` local invoices is final, nothing pending, the queue running), nothing
/// duplicated (the authority's `--db` holds exactly one receipt per local invoice, in
/// the same chain order, and no other receipt for this device), the chain heads agree,
/// `kaipiao verify` exits 0 and the export passes the independent verifier.
#[track_caller]
pub fn assert_settled(shop: &Shop, taxd: &Taxd, n: u64, receipts: Receipts) {
    let st = shop.status();
    assert_eq!(st["pending"], json!(0), "nothing may stay pending: {st}");
    assert!(st["queue_stopped"].is_null(), "the queue runs: {st}");
    assert_eq!(u(&st, "/head/seq"), n, "{st}");

    let (file, records) = shop.export();
    assert_eq!(records.len() as u64, n + 1, "device line + {n} invoices");
    let invoices = &records[1..];
    for rec in invoices {
        let status = s(rec, "/status");
        assert!(
            status == "accepted" || status == "rejected",
            "every invoice is final: {rec}"
        );
        assert!(
            rec["receipt"].is_object(),
            "a final invoice has its receipt: {rec}"
        );
    }

    let held = taxd.receipts_of(&shop.device_id);
    let local_ids: Vec<&str> = invoices.iter().map(|r| s(r, "/invoice/id")).collect();
    let held_ids: Vec<&str> = held.iter().map(|r| s(r, "/invoice_id")).collect();
    assert_eq!(
        held_ids, local_ids,
        "the authority holds exactly one receipt per invoice, in chain order"
    );
    for (rec, h) in invoices.iter().zip(&held) {
        assert_eq!(h["seq"], rec["invoice"]["seq"], "{h}");
        assert_eq!(h["status"], rec["status"], "{h}");
        match receipts {
            Receipts::Identical => assert_eq!(
                h["body"], rec["receipt"],
                "the client stored the receipt the authority stored"
            ),
            Receipts::SameInvoices => {
                for field in ["/invoice_id", "/number", "/hash", "/status"] {
                    assert_eq!(
                        h["body"].pointer(field),
                        rec["receipt"].pointer(field),
                        "{field} of {h} and of the client's {}",
                        rec["receipt"]
                    );
                }
            }
        }
    }

    let key = shop.device_key();
    let head = taxd.device_get(
        &shop.device_id,
        &key,
        &format!("/v1/devices/{}/head", shop.device_id),
    );
    assert_eq!(head.status, 200, "GET head: {}", head.text());
    assert_eq!(
        head.json(),
        st["head"],
        "the authority's head is the local head"
    );

    shop.kaipiao(&["verify"]).expect_code(0);
    assert_eq!(verify_export(&file, &taxd.authority_key()), (n, n));
}
