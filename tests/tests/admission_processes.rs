//! Issue 13 in real processes: 50 ledgers, each its own `kaipiao sync --background`
//! process, all started at once against one taxd pacing recovery with
//! `--admission-capacity 20` (invoices per second). Each asks `POST /v1/admission`, waits
//! for the slot it was given (or for its turn, asking again when told), and sends its
//! share under its ticket. Asserted from taxd's request log and the ledgers, outcomes not
//! timings: every shop drained with one receipt per invoice, no submission arrived before
//! the slot its ticket was given for, nothing was refused for overload, and the
//! invoices taken in any second stayed within the capacity.
//!
//! A second test: the same client against an authority without admission falls back to
//! today's recovery plan (`tests/tests/fleet_processes.rs` measures that plan at scale).

use kaipiao_tests::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const SHOPS: usize = 50;
/// One share each: the budget is 18 a second (20 less the 10% live reserve).
const INVOICES: usize = 18;
const CAPACITY: u32 = 20;

fn time_of(r: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(r["time"].as_str().expect("time in the request log"))
        .expect("RFC 3339")
}

#[test]
fn fifty_shops_follow_the_authoritys_schedule_and_none_is_refused() {
    // Set-up without admission: enrolment is not what is measured.
    let mut taxd = Taxd::start(&[]);
    let shops: Vec<Shop> = (0..SHOPS)
        .map(|s| {
            let shop = Shop::new(&taxd);
            let drafts: Vec<Value> = (1..=INVOICES)
                .map(|i| small_draft(&format!("排队{s}-{i}"), &format!("{i}.20")))
                .collect();
            assert_eq!(shop.import(&drafts)["issued"], json!(INVOICES));
            shop
        })
        .collect();
    let capacity = CAPACITY.to_string();
    taxd.restart_with(&["--admission-capacity", &capacity]);
    let health = taxd.get("/v1/health").json();
    assert_eq!(health["admission"]["live_max"], json!(5), "{health}");
    let before = taxd.requests().len();

    let running: Vec<Background> = shops
        .iter()
        .map(|shop| shop.spawn(&["--json", "sync", "--background"]))
        .collect();
    let outs: Vec<Output> = running
        .into_iter()
        .map(|b| b.wait(Duration::from_secs(240)))
        .collect();

    for (shop, out) in shops.iter().zip(&outs) {
        out.expect_code(0);
        let doc = out.json();
        assert_eq!(
            (&doc["submitted"], &doc["accepted"], &doc["pending"]),
            (&json!(INVOICES), &json!(INVOICES), &json!(0)),
            "{out}"
        );
        let status = shop.status();
        assert_eq!(status["head"]["seq"], json!(INVOICES));
        assert_eq!(doc["server_head"], status["head"], "{out}");
        shop.kaipiao(&["verify"]).expect_code(0);
    }

    let log = taxd.requests();
    let fleet = &log[before..];
    // Nothing refused for overload (no 503, no 429), nothing failed.
    let refused: Vec<&Value> = fleet
        .iter()
        .filter(|r| r["status"].as_u64().unwrap_or(0) >= 400)
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}");
    // Every ticket used no earlier than the slot it was given for.
    let granted: HashMap<&str, chrono::DateTime<chrono::FixedOffset>> = fleet
        .iter()
        .filter_map(|r| {
            let not_before = r["not_before"].as_str()?;
            Some((
                r["granted"].as_str()?,
                chrono::DateTime::parse_from_rfc3339(not_before).ok()?,
            ))
        })
        .collect();
    let mut submissions = 0;
    let mut per_second: BTreeMap<String, u64> = BTreeMap::new();
    for r in fleet {
        let path = r["path"].as_str().unwrap_or_default();
        if !path.starts_with("/v1/invoices") || r["method"] != json!("POST") {
            continue;
        }
        submissions += 1;
        let ticket = r["ticket"]
            .as_str()
            .unwrap_or_else(|| panic!("a backlog sent without a ticket: {r}"));
        let slot = granted
            .get(ticket)
            .unwrap_or_else(|| panic!("a ticket taxd never gave: {r}"));
        assert!(time_of(r) >= *slot, "sent before its slot {slot}: {r}");
        let time = r["time"].as_str().unwrap_or_default();
        *per_second.entry(time[..19].to_string()).or_default() +=
            r["invoices"].as_u64().unwrap_or(0);
    }
    assert!(submissions >= SHOPS, "{submissions} submissions");
    let peak = per_second.values().copied().max().unwrap_or(0);
    let first = fleet.first().map(time_of).expect("requests");
    let last = fleet.last().map(time_of).expect("requests");
    let drain = (last - first).num_milliseconds() as f64 / 1000.0;
    let ideal = (SHOPS * INVOICES) as f64 / f64::from(CAPACITY);
    let asks = fleet
        .iter()
        .filter(|r| r["path"] == json!("/v1/admission"))
        .count();
    eprintln!(
        "{SHOPS} shops x {INVOICES}: drained in {drain:.1} s = {:.2}x backlog / capacity ({ideal:.0} s); peak {peak} invoices/s against {CAPACITY}; {asks} admission requests, {submissions} submissions, {} requests in all",
        drain / ideal,
        fleet.len()
    );
    // Within 1.05x the capacity in every second, the bound (the plan keeps 10%
    // for live traffic; the log's time is taken when an answer is ready, so a request
    // that came at the end of its second may be counted in the next).
    let limit = u64::from(CAPACITY) * 105 / 100;
    assert!(
        peak <= limit,
        "peak {peak} invoices in one second > {limit}: {per_second:?}"
    );
}

#[test]
fn against_an_authority_without_admission_the_client_keeps_its_own_plan() {
    let mut taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let drafts: Vec<Value> = (1..=10)
        .map(|i| small_draft(&format!("旧法{i}"), &format!("{i}.10")))
        .collect();
    shop.import(&drafts);
    taxd.restart_with(&["--capacity", "20"]);
    let health = taxd.get("/v1/health").json();
    assert!(health.get("admission").is_none(), "{health}");
    let before = taxd.requests().len();
    let out = shop.kaipiao(&["--json", "sync", "--background", "--start-spread", "20"]);
    out.expect_code(0);
    assert_eq!(out.json()["pending"], json!(0), "{out}");
    // The recovery plan's shares, announced as such; no admission asked for.
    assert!(out.stderr.contains("next share in"), "{out}");
    let log = taxd.requests();
    assert!(
        log[before..]
            .iter()
            .all(|r| r["path"] != json!("/v1/admission")),
        "{:?}",
        &log[before..]
    );
}

#[test]
fn sync_now_never_goes_ahead_of_the_schedule_and_says_when_the_turn_is() {
    let mut taxd = Taxd::start(&[]);
    let first = Shop::new(&taxd);
    // 90 invoices at 3 a second: 30 s, longer than the 20 s in which the authority
    // gives slots, so the second shop is told its turn rather than given a slot.
    let drafts: Vec<Value> = (1..=90)
        .map(|i| small_draft(&format!("先到{i}"), &format!("{i}.30")))
        .collect();
    first.import(&drafts);
    let second = Shop::new(&taxd);
    let drafts: Vec<Value> = (1..=10)
        .map(|i| small_draft(&format!("后到{i}"), &format!("{i}.40")))
        .collect();
    second.import(&drafts);
    // Three invoices a second for the backlog (one kept for live traffic).
    taxd.restart_with(&["--admission-capacity", "4"]);
    let before = taxd.requests().len();
    let running = first.spawn(&["--json", "sync", "--background"]);
    wait_until(
        "the first shop's admission request",
        Duration::from_secs(30),
        || {
            taxd.requests()[before..]
                .iter()
                .any(|r| r["path"] == json!("/v1/admission"))
        },
    );
    // The second shop's window closes later (its invoices are younger): behind the first.
    let out = second.kaipiao(&["--json", "sync"]);
    out.expect_code(3);
    let doc = out.json();
    assert_eq!(doc["submitted"], json!(0), "{out}");
    assert_eq!(doc["pending"], json!(10), "{out}");
    let turn = doc["turn_at"]
        .as_str()
        .unwrap_or_else(|| panic!("no turn_at: {out}"));
    let turn = chrono::DateTime::parse_from_rfc3339(turn).expect("RFC 3339");
    assert!(turn > chrono::Utc::now(), "{out}");
    assert!(out.stderr.contains("turn is expected"), "{out}");
    // Nothing of the second shop was sent.
    let device = second.status()["device_id"].clone();
    let sent = taxd.requests()[before..]
        .iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .starts_with("/v1/invoices")
                && r["device"] == device
        })
        .count();
    assert_eq!(sent, 0);
    // The first shop drains on its own, in its turns.
    let out = running.wait(Duration::from_secs(120));
    out.expect_code(0);
    assert_eq!(out.json()["pending"], json!(0), "{out}");
}
