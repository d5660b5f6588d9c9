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
