//! A stopped queue is always recoverable (issue 10, item 1), end to end over real
//! processes: `kaipiao queue` says why and what to do, `kaipiao queue resume` reconciles
//! first and lifts the stop only when the authority's records explain it.

use kaipiao_tests::*;
use serde_json::json;

/// `queue resume` refuses (exit 4) with a reason that says `why`, and the queue stays
/// stopped.
#[track_caller]
fn resume_is_refused(shop: &Shop, why: &str) {
    let out = shop.kaipiao(&["--json", "queue", "resume"]);
    out.expect_code(4);
    let doc = out.json();
    assert_eq!(doc["resumed"], json!(false), "{doc}");
    assert!(
        doc["reason"].as_str().is_some_and(|r| r.contains(why)),
        "{doc}"
    );
    let state = shop.kaipiao(&["--json", "queue"]).json();
    assert_eq!(state["stopped"], json!(true), "{state}");
}

/// The authority loses its lease records (an operator's mistake): the shop's next invoice
/// lies "outside every lease", a signed 422 `integrity` stops the queue. Resuming while
/// the authority still refuses leaves it stopped, with the authority's reason; once the
/// authority's records are put back, `queue resume` reconciles, resumes and files it.
#[test]
fn a_stopped_queue_is_resumed_after_reconcile() {
    let mut taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.issue(&small_draft("客户甲", "10.00"));
    shop.sync().expect_code(0);

    // The queue runs: exit 0, nothing to do.
    let out = shop.kaipiao(&["--json", "queue"]);
    out.expect_code(0);
    let doc = out.json();
    assert_eq!(doc["stopped"], json!(false), "{doc}");
    assert_eq!(u(&doc, "/local_head/seq"), 1, "{doc}");
    assert_eq!(u(&doc, "/authority_head/seq"), 1, "{doc}");
    assert!(
        doc["advice"].as_str().is_some_and(|a| !a.is_empty()),
        "{doc}"
    );

    // The authority's backup of its database, then the loss of its lease records.
    taxd.stop();
    let backup = tempfile::tempdir().expect("tempdir");
    let saved = backup.path().join("taxd.db");
    std::fs::copy(&taxd.db, &saved).expect("copy the taxd db");
    for suffix in ["-wal", "-shm"] {
        let wal = taxd.db.with_file_name(format!("taxd.db{suffix}"));
        assert!(!wal.exists(), "taxd checkpoints its WAL on a clean stop");
    }
    taxd.edit_db("DELETE FROM leases;");

    let issued = shop.issue(&small_draft("客户乙", "20.00"));
    let number = issued["invoice"]["number"]
        .as_str()
        .expect("number")
        .to_string();
    let out = shop.sync();
    out.expect_code(4);

    let out = shop.kaipiao(&["--json", "queue"]);
    out.expect_code(0);
    let doc = out.json();
    assert_eq!(doc["stopped"], json!(true), "{doc}");
    let reason = doc["reason"].as_str().expect("reason");
    assert!(
        reason.contains(&number) && reason.contains("integrity"),
        "{doc}"
    );
    assert!(doc["since"].is_string(), "{doc}");
    let alert_id = doc["alert_id"].as_i64().expect("the stop's alert");
    assert_eq!(u(&doc, "/local_head/seq"), 2, "{doc}");
    assert_eq!(u(&doc, "/authority_head/seq"), 1, "{doc}");
    assert!(
        doc["advice"]
            .as_str()
            .is_some_and(|a| a.contains("queue resume")),
        "{doc}"
    );
    let alerts = shop.kaipiao(&["--json", "alerts"]).json();
    assert!(
        alerts["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["id"].as_i64() == Some(alert_id) && a["number"] == json!(number)),
        "{alerts}"
    );

    // The authority still refuses: the queue stays stopped, and says why.
    resume_is_refused(&shop, "stopped the queue again");

    // The authority's operator puts its records back: resume reconciles, lifts the stop
    // and files the invoice.
    taxd.stop();
    std::fs::copy(&saved, &taxd.db).expect("restore the taxd db");
    taxd.restart();
    let out = shop.kaipiao(&["--json", "queue", "resume"]);
    out.expect_code(0);
    let doc = out.json();
    assert_eq!(doc["was_stopped"], json!(true), "{doc}");
    assert_eq!(doc["resumed"], json!(true), "{doc}");
    assert_eq!(u(&doc, "/reconcile/accounted_for"), 1, "{doc}");
    assert_eq!(u(&doc, "/sync/accepted"), 1, "{doc}");
    assert_eq!(u(&doc, "/sync/pending"), 0, "{doc}");

    let doc = shop.kaipiao(&["--json", "queue"]).json();
    assert_eq!(doc["stopped"], json!(false), "{doc}");
    assert_eq!(doc["alert_id"], json!(null), "{doc}");
    assert_eq!(u(&doc, "/authority_head/seq"), 2, "{doc}");
    // The stop's alert was dismissed with it; the chain verifies.
    let alerts = shop.kaipiao(&["--json", "alerts"]).json();
    assert!(
        !alerts["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["id"].as_i64() == Some(alert_id)),
        "{alerts}"
    );
    shop.kaipiao(&["verify"]).expect_code(0);
    assert_eq!(taxd.receipts_of(&shop.device_id).len(), 2);
}

/// A fork (an old copy of the data directory issued its own seq 3): reconciliation finds
/// the authority's seq 3 is another invoice, so `queue resume` refuses and says so.
#[test]
fn a_stop_that_reconciliation_does_not_explain_is_not_resumed() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.issue(&small_draft("客户甲", "10.00"));
    shop.sync().expect_code(0);
    let old = shop.copy();
    shop.issue(&small_draft("客户乙", "20.00"));
    shop.sync().expect_code(0);

    old.issue(&small_draft("客户丙", "30.00"));
    old.sync().expect_code(4);
    let doc = old.kaipiao(&["--json", "queue"]).json();
    assert_eq!(doc["stopped"], json!(true), "{doc}");

    resume_is_refused(&old, "does not explain");
    assert_eq!(taxd.receipts_of(&shop.device_id).len(), 2);
}

/// A data directory copied back by hand from an older copy is behind the authority: its
/// sync stops the queue. `queue resume` brings back what the authority holds (as
/// `restore` does), gives up the numbers the newer copy may have used, takes a fresh
/// block past them, and resumes: nothing is lost and no number comes back.
#[test]
fn a_ledger_behind_the_authority_is_brought_back_by_resume() {
    let taxd = Taxd::start(&["--lease-size", "5"]);
    let shop = Shop::new(&taxd);
    shop.issue(&small_draft("客户甲", "10.00"));
    shop.sync().expect_code(0);
    let old = shop.copy();
    shop.issue(&small_draft("客户乙", "20.00"));
    shop.issue(&small_draft("客户丙", "30.00"));
    shop.sync().expect_code(0);
    // Issued by the newer copy and never filed before it was abandoned.
    let unfiled = shop.issue(&small_draft("未上传", "40.00"))["invoice"]["number"]
        .as_str()
        .expect("number")
        .to_string();

    // The old copy is put back: its sync finds the authority ahead (exit 4), and
    // `kaipiao queue` says so and what to do.
    old.sync().expect_code(4);
    let doc = old.kaipiao(&["--json", "queue"]).json();
    assert_eq!(u(&doc, "/authority_head/seq"), 3, "{doc}");
    assert_eq!(u(&doc, "/local_head/seq"), 1, "{doc}");
    assert!(s(&doc, "/advice").contains("queue resume"), "{doc}");

    let out = old.kaipiao(&["--json", "queue", "resume"]);
    out.expect_code(0);
    let doc = out.json();
    assert_eq!(doc["resumed"], json!(true), "{doc}");
    let caught = &doc["brought_back"];
    assert_eq!(caught["invoices_brought_back"], json!(2), "{doc}");
    let ranges = caught["numbers_possibly_used"].as_array().expect("ranges");
    let tail = |n: &str| n[12..].parse::<u64>().expect("number");
    assert!(
        ranges
            .iter()
            .any(|r| (tail(s(r, "/first"))..=tail(s(r, "/last"))).contains(&tail(&unfiled))),
        "{doc}"
    );
    // The old copy issues from the fresh block only, and everything settles.
    let fresh_first = tail(s(caught, "/fresh_lease/first"));
    let next = old.issue(&small_draft("客户丁", "50.00"));
    let number = s(&next, "/invoice/number").to_string();
    assert_ne!(number, unfiled);
    assert!(tail(&number) >= fresh_first, "{number} {doc}");
    old.sync().expect_code(0);
    assert_settled(&old, &taxd, 4, Receipts::Identical);
}

/// `queue resume` on a queue that runs changes nothing (exit 0).
#[test]
fn resuming_a_running_queue_does_nothing() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let out = shop.kaipiao(&["--json", "queue", "resume"]);
    out.expect_code(0);
    let doc = out.json();
    assert_eq!(doc["was_stopped"], json!(false), "{doc}");
    assert_eq!(doc["reconcile"], json!(null), "{doc}");
}

/// A forged stop is ignored (issue 10, item 1), through the real `kaipiao sync`: an
/// endpoint in front of the authority answers every submission with an unsigned 422
/// `idempotency_key_reused`. With the real authority as the other endpoint the run fails
/// over and files everything (exit 0) with an `unsigned_verdict` alert; alone, it ends the
/// run for a transient reason (exit 3, the summary printed). The queue is never stopped.
#[test]
fn a_forged_stop_is_ignored_and_the_run_fails_over() {
    use kaipiao_testkit::scripted::{Act, Req, Scripted};
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let forger = rt.block_on(Scripted::start(
        Some(taxd.url()),
        std::sync::Arc::new(|req: &Req, _| {
            if req.is_submission() {
                Act::each_item(req, |_| {
                    (422, Act::error_body("idempotency_key_reused", json!({})))
                })
            } else {
                Act::Proxy
            }
        }),
    ));
    let set_servers = |servers: &[String]| {
        let ledger = kaipiao_ledger::Ledger::open(&shop.data).expect("open the ledger");
        ledger.set_servers(servers).expect("set the servers");
    };
    set_servers(&[forger.url.clone(), taxd.url()]);
    shop.issue(&small_draft("客户甲", "10.00"));
    let out = shop.sync();
    out.expect_code(0);
    assert_eq!(out.json()["accepted"], json!(1), "{out}");
    let alerts = shop.kaipiao(&["--json", "alerts"]).json();
    assert!(
        alerts["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .any(|a| a["code"] == json!("unsigned_verdict")),
        "{alerts}"
    );
    assert_eq!(
        shop.kaipiao(&["--json", "queue"]).json()["stopped"],
        json!(false)
    );

    set_servers(std::slice::from_ref(&forger.url));
    shop.issue(&small_draft("客户乙", "20.00"));
    let out = shop.sync();
    out.expect_code(3);
    let doc = out.json();
    assert_eq!(doc["pending"], json!(1), "{doc}");
    assert_eq!(
        shop.kaipiao(&["--json", "queue"]).json()["stopped"],
        json!(false)
    );
    assert_eq!(taxd.receipts_of(&shop.device_id).len(), 1);
}
