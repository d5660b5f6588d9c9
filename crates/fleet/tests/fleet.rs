//! A scaled-down fleet, deterministic with a fixed seed: the qualitative behaviour the
//! full `make fleet` run reports, checked on every `cargo test`. No timing assertions.

use kaipiao_fleet::{simulate, Scenario, Strategy};
use kaipiao_sync::policy::Params;
use std::time::Duration;

/// 2,000 shops x 20 invoices against 200 requests/s: the same 200 s ideal drain as the
/// full run, so the shipped start delay fits it the same way.
fn small() -> Scenario {
    Scenario {
        clients: 2000,
        backlog: 20,
        capacity: 200.0,
        seed: 11,
        ..Scenario::issue4()
    }
}

#[test]
fn the_policy_stays_near_capacity_and_the_naive_herd_does_not() {
    let s = small();
    let policy = simulate(&s, Strategy::Kaipiao(Params::default()));
    let naive = simulate(
        &s,
        Strategy::Naive {
            interval: Duration::from_secs(1),
        },
    );
    // Everything drains, exactly once per invoice.
    assert_eq!(policy.accepted, s.invoices());
    assert_eq!(naive.accepted, s.invoices());
    // Load, averaged over 10 s windows after the warm-up: at a fifth of the full scale
    // whole 20-invoice bursts make single seconds lumpier than in the full run.
    let windows = |m: &kaipiao_fleet::Measured| -> f64 {
        m.seconds[10..]
            .chunks(10)
            .map(|c| c.iter().map(|x| f64::from(x.offered)).sum::<f64>() / c.len() as f64)
            .fold(0.0, f64::max)
            / s.capacity
    };
    assert!(
        windows(&policy) <= 1.1,
        "policy load {:.2}x",
        windows(&policy)
    );
    assert!(policy.refused_share() < 0.02, "{}", policy.refused_share());
    assert!(naive.refused_share() > 0.5, "{}", naive.refused_share());
    assert!(windows(&naive) > 3.0, "naive load {:.2}x", windows(&naive));
    // Drain within 1.25x of the ideal; the herd's retries multiply the requests.
    let ratio = policy.drain_ratio().unwrap_or(f64::INFINITY);
    assert!(ratio <= 1.25, "drain {ratio:.2}x ideal");
    assert!(policy.amplification() < 1.1, "{}", policy.amplification());
    assert!(naive.amplification() > 3.0 * policy.amplification());
}

#[test]
fn a_run_is_a_pure_function_of_its_scenario() {
    let s = Scenario {
        clients: 200,
        capacity: 10.0,
        ..small()
    };
    let a = simulate(&s, Strategy::Kaipiao(Params::default()));
    let b = simulate(&s, Strategy::Kaipiao(Params::default()));
    assert_eq!(a, b);
    let c = simulate(
        &Scenario { seed: 12, ..s },
        Strategy::Kaipiao(Params::default()),
    );
    assert_ne!(a.seconds, c.seconds);
}

#[test]
fn an_oversubscribed_authority_still_drains_with_bounded_amplification() {
    // Twice the backlog the start delay was made for: retries must take over. One
    // request per invoice (batch 1): every retry is one invoice's, as before batching.
    let s = Scenario {
        capacity: 100.0,
        batch: 1,
        ..small()
    };
    let policy = simulate(&s, Strategy::Kaipiao(Params::default()));
    assert_eq!(policy.accepted, s.invoices());
    assert!(policy.amplification() < 2.0, "{}", policy.amplification());
    // In batches (the client's default) a retry resends a whole batch: still everything
    // drains, once, with retries bounded by the budget.
    let batched = Scenario { batch: 200, ..s };
    let policy = simulate(&batched, Strategy::Kaipiao(Params::default()));
    assert_eq!(policy.accepted, batched.invoices());
    assert!(policy.amplification() < 4.0, "{}", policy.amplification());
}

#[test]
fn a_batch_carries_its_invoices_as_load() {
    // 10 shops x 20 invoices, batches of up to 200: each shop's recovery plan sends four
    // shares of five, so forty requests carry the 200 invoices.
    let s = Scenario {
        clients: 10,
        capacity: 10_000.0,
        ..small()
    };
    let m = simulate(&s, Strategy::Kaipiao(Params::default()));
    assert_eq!(m.accepted, 200);
    assert_eq!((m.requests, m.accepted_requests), (40, 40));
    assert_eq!(
        m.seconds.iter().map(|x| u64::from(x.offered)).sum::<u64>(),
        200
    );
    assert_eq!(m.amplification(), 1.0);
}

/// Issue 13: the authority's pacing (kaipiao_core::admission, as taxd runs it) with shops
/// following it as the client does: near the ideal, within capacity after the first
/// seconds, nothing refused, live invoices acknowledged in seconds.
#[test]
fn the_paced_recovery_drains_near_the_ideal_and_serves_the_most_urgent_first() {
    use kaipiao_fleet::paced::{simulate_paced, PacedScenario};
    let base = PacedScenario {
        groups: vec![(450, 5), (50, 60)],
        capacity: 100,
        latency_ms: (10, 40),
        seed: 13,
        horizon_s: 600,
        warm_up_s: 5,
        no_show: 0.0,
        live: 0.0,
        deadlines: None,
        return_ms: 2_000,
    };
    let m = simulate_paced(&base);
    let drain = m.drain_x_ideal(100).expect("drained");
    assert!(drain <= 1.2, "drain {drain:.2}x the ideal");
    assert!(
        m.peak_after(5, 100) <= 1.1,
        "peak {:.2}x",
        m.peak_after(5, 100)
    );
    assert_eq!(m.wasted, 0);
    assert_eq!(m.accepted_total, base.backlog_invoices());
    let live = simulate_paced(&PacedScenario {
        live: 0.1,
        ..base.clone()
    });
    let p99 = live.live_ack_p99().expect("live invoices");
    assert!(p99 <= 10.0, "live ack p99 {p99:.1} s");
    // Shops out of window that EDF at capacity would have served: measured in
    // `make fleet` (fleet.json), not yet zero (docs/BENCHMARKS.md).
}
