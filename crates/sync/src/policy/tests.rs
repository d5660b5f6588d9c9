//! The pacer as a whole: what the relay and the fleet simulator rely on.

use super::*;
use rand::rngs::mock::StepRng;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

fn s(secs: f64) -> Duration {
    Duration::from_secs_f64(secs)
}

/// Draws 0 for every jitter: backoff waits are zero, breaker cool-downs half, and the
/// throttle never rejects (0 < p is false only for p = 0, so tests that need throttling
/// use a seeded RNG).
fn low() -> StepRng {
    StepRng::new(0, 0)
}

/// An endpoint that is down or broken (not the authority declining for overload).
fn failed(ra: Option<f64>) -> Outcome {
    Outcome::Failed {
        retry_after: ra.map(s),
        overload: false,
    }
}

/// 503 overloaded.
fn overloaded() -> Outcome {
    Outcome::Failed {
        retry_after: Some(s(1.0)),
        overload: true,
    }
}

#[test]
fn a_healthy_authority_is_never_held_up() {
    let mut p = Pacer::new(Params::default(), 1, s(0.0));
    let mut rng = StdRng::seed_from_u64(1);
    for i in 0..1000 {
        let now = s(f64::from(i) * 0.01);
        assert_eq!(
            p.next(now, &mut rng),
            Next::Send {
                endpoint: 0,
                retry: false
            }
        );
        p.record(now, 0, Outcome::Accepted, &mut rng);
    }
}

#[test]
fn retry_after_is_a_floor_and_429_holds_every_endpoint() {
    let mut rng = low();
    let mut p = Pacer::new(Params::default(), 2, s(0.0));
    assert!(matches!(
        p.next(s(0.0), &mut rng),
        Next::Send { endpoint: 0, .. }
    ));
    p.record(
        s(0.0),
        0,
        Outcome::Busy {
            retry_after: Some(s(7.0)),
            everywhere: true,
        },
        &mut rng,
    );
    assert_eq!(
        p.next(s(0.0), &mut rng),
        Next::Wait {
            until: s(7.0),
            hold: Hold::RetryAfter
        }
    );
    // "Sync now" does not skip it either.
    p.sync_now(s(1.0));
    assert!(matches!(p.next(s(1.0), &mut rng), Next::Wait { until, .. } if until == s(7.0)));
    assert_eq!(
        p.next(s(7.0), &mut rng),
        Next::Send {
            endpoint: 0,
            retry: true
        }
    );
}

#[test]
fn a_failed_endpoint_fails_over_at_once_and_a_503_floor_is_per_endpoint() {
    let mut rng = low();
    let mut p = Pacer::new(Params::default(), 2, s(0.0));
    assert!(matches!(
        p.next(s(0.0), &mut rng),
        Next::Send { endpoint: 0, .. }
    ));
    p.record(s(0.0), 0, failed(Some(30.0)), &mut rng);
    // Backoff drew zero: the retry goes to the backup now, not after the primary's 30 s.
    assert_eq!(
        p.next(s(0.0), &mut rng),
        Next::Send {
            endpoint: 1,
            retry: true
        }
    );
    p.record(s(0.1), 1, Outcome::Accepted, &mut rng);
    // The primary's Retry-After still stands for the next item.
    assert!(matches!(
        p.next(s(0.2), &mut rng),
        Next::Send { endpoint: 1, .. }
    ));
    p.record(s(0.2), 1, Outcome::Accepted, &mut rng);
    assert!(matches!(
        p.next(s(30.0), &mut rng),
        Next::Send { endpoint: 0, .. }
    ));
}

#[test]
fn five_failures_open_the_primary_and_a_probe_brings_traffic_back() {
    let mut rng = low();
    let mut p = Pacer::new(Params::default(), 2, s(0.0));
    let mut now = s(0.0);
    let mut primary_tries = 0;
    // The primary is dead: each item tries it, fails, goes to the backup.
    for _ in 0..10 {
        match p.next(now, &mut rng) {
            Next::Send { endpoint: 0, .. } => {
                primary_tries += 1;
                p.record(now, 0, failed(None), &mut rng);
                assert!(matches!(
                    p.next(now, &mut rng),
                    Next::Send { endpoint: 1, .. }
                ));
                p.record(now, 1, Outcome::Accepted, &mut rng);
            }
            Next::Send { endpoint: 1, .. } => p.record(now, 1, Outcome::Accepted, &mut rng),
            other => panic!("{other:?}"),
        }
        now += s(0.1);
    }
    assert_eq!(primary_tries, 5, "the breaker opens after five");
    assert!(!p.closed(0));
    // After the cool-down (2.5 s with the low draw) the next request probes the primary.
    let reopen = s(0.4 + 2.5);
    assert!(matches!(
        p.next(reopen - s(0.01), &mut rng),
        Next::Send { endpoint: 1, .. }
    ));
    p.record(reopen - s(0.01), 1, Outcome::Accepted, &mut rng);
    assert!(matches!(
        p.next(reopen, &mut rng),
        Next::Send { endpoint: 0, .. }
    ));
    p.record(reopen, 0, Outcome::Accepted, &mut rng);
    assert!(p.closed(0));
    assert!(matches!(
        p.next(reopen, &mut rng),
        Next::Send { endpoint: 0, .. }
    ));
}

#[test]
fn with_every_breaker_open_it_waits_and_sync_now_probes_at_once() {
    let mut rng = low();
    let mut p = Pacer::new(Params::default(), 1, s(0.0));
    for _ in 0..5 {
        assert!(matches!(p.next(s(0.0), &mut rng), Next::Send { .. }));
        p.record(s(0.0), 0, failed(None), &mut rng);
    }
    assert_eq!(
        p.next(s(0.0), &mut rng),
        Next::Wait {
            until: s(2.5),
            hold: Hold::Breaker
        }
    );
    p.sync_now(s(1.0));
    assert!(matches!(p.next(s(1.0), &mut rng), Next::Send { .. }));
}

#[test]
fn the_budget_stops_retries_under_half_and_time_refills_it() {
    let mut rng = low();
    let mut p = Pacer::new(Params::default(), 1, s(0.0));
    // A first attempt and six retries (10 tokens -> 4) fail at once; the breaker is
    // kept out of the way with "Sync now" each time.
    let mut sent = 0;
    for _ in 0..7 {
        p.sync_now(s(0.0));
        if let Next::Send { .. } = p.next(s(0.0), &mut rng) {
            sent += 1;
            p.record(s(0.0), 0, failed(None), &mut rng);
        }
    }
    assert_eq!(sent, 7);
    p.sync_now(s(0.0));
    // 4 tokens, half is 5: 10 s at one token per 10 s.
    assert_eq!(
        p.next(s(0.0), &mut rng),
        Next::Wait {
            until: s(10.0),
            hold: Hold::Budget
        }
    );
    assert!(matches!(
        p.next(s(10.0), &mut rng),
        Next::Send { retry: true, .. }
    ));
}

#[test]
fn backoff_grows_with_consecutive_failures_and_resets_on_success() {
    let mut rng = StepRng::new(u64::MAX, 0);
    let mut p = Pacer::new(Params::default(), 1, s(0.0));
    let mut now = s(0.0);
    for expected in [0.5, 1.0, 2.0, 4.0] {
        assert!(matches!(p.next(now, &mut rng), Next::Send { .. }));
        p.record(now, 0, failed(None), &mut rng);
        // The max draw: the whole ceiling.
        let Next::Wait { until, hold } = p.next(now, &mut rng) else {
            panic!("no wait");
        };
        assert_eq!(hold, Hold::Backoff);
        assert!((until - now).as_secs_f64() > expected * 0.999, "{until:?}");
        now = until;
    }
    let mut low = low();
    assert!(matches!(p.next(now, &mut low), Next::Send { .. }));
    p.record(now, 0, Outcome::Accepted, &mut low);
    assert_eq!(p.failures(), 0);
    assert!(matches!(
        p.next(now, &mut low),
        Next::Send { retry: false, .. }
    ));
}

#[test]
fn throttling_sheds_a_share_of_requests_while_the_authority_refuses() {
    let mut rng = StdRng::seed_from_u64(9);
    // A budget that never binds and backoff that stays short, to see throttling alone.
    let mut params = Params::default();
    params.budget.per_second = 100.0;
    params.backoff.cap = s(0.5);
    params.breaker.threshold = u32::MAX;
    let mut p = Pacer::new(params, 1, s(0.0));
    for _ in 0..4 {
        assert!(matches!(p.next(s(0.0), &mut rng), Next::Send { .. }));
        p.record(s(0.0), 0, Outcome::Accepted, &mut rng);
    }
    // Then every request is refused for overload; the client asks every 0.2 s.
    let (mut throttled, mut sent) = (0, 0);
    for i in 0..400 {
        let now = s(1.0 + f64::from(i) * 0.2);
        match p.next(now, &mut rng) {
            Next::Send { .. } => {
                sent += 1;
                p.record(now, 0, overloaded(), &mut rng);
            }
            Next::Wait {
                hold: Hold::Throttle,
                ..
            } => throttled += 1,
            Next::Wait { .. } => {}
            Next::NoEndpoint => panic!("no endpoint"),
        }
    }
    assert!(
        sent > 0 && throttled > sent,
        "throttled {throttled}, sent {sent}"
    );
    assert!(p.reject_probability(s(80.0)) > 0.5);
    // Two minutes of quiet later the window is empty and nothing is shed.
    assert_eq!(p.reject_probability(s(300.0)), 0.0);
}

#[test]
fn endpoint_failures_and_sync_now_are_not_throttled() {
    // A dead endpoint is not the authority's overload: it does not feed throttling.
    let mut rng = low();
    let mut p = Pacer::new(Params::default(), 2, s(0.0));
    for _ in 0..4 {
        assert!(matches!(p.next(s(0.0), &mut rng), Next::Send { .. }));
        p.record(s(0.0), 0, failed(None), &mut rng);
    }
    assert_eq!(p.reject_probability(s(0.0)), 0.0);
    // Overload does; "Sync now" still sends (the low draw would reject any p > 0).
    let mut p = Pacer::new(Params::default(), 1, s(0.0));
    assert!(matches!(p.next(s(0.0), &mut rng), Next::Send { .. }));
    p.record(s(0.0), 0, overloaded(), &mut rng);
    assert_eq!(p.reject_probability(s(2.0)), 0.5);
    assert!(matches!(
        p.next(s(2.0), &mut rng),
        Next::Wait {
            hold: Hold::Throttle,
            ..
        }
    ));
    p.sync_now(s(2.0));
    assert!(matches!(p.next(s(2.0), &mut rng), Next::Send { .. }));
}

#[test]
fn the_first_share_after_an_outage_is_uniform_over_its_interval() {
    let mut rng = StdRng::seed_from_u64(3);
    let spread = Params::default().start_spread;
    // 20 invoices over the full spread: four shares, a minute apart.
    let mut draws = Vec::new();
    for _ in 0..1000 {
        let plan = Recovery::plan(s(100.0), spread, 20, &mut rng);
        draws.push(plan.first() - s(100.0));
        assert_eq!(plan.end(), s(100.0) + spread);
    }
    assert!(draws.iter().all(|d| *d < s(60.0)));
    let mean = draws.iter().map(Duration::as_secs_f64).sum::<f64>() / 1000.0;
    assert!((mean / 60.0 - 0.5).abs() < 0.05, "{mean}");
    // Fewer invoices than a share: one send, uniform over the whole spread.
    let mean = (0..1000)
        .map(|_| {
            Recovery::plan(s(0.0), spread, 1, &mut rng)
                .first()
                .as_secs_f64()
        })
        .sum::<f64>()
        / 1000.0;
    assert!((mean / spread.as_secs_f64() - 0.5).abs() < 0.05, "{mean}");
}

#[test]
fn a_refused_endpoint_is_skipped_and_none_left_is_said() {
    let mut rng = low();
    let mut p = Pacer::new(Params::default(), 2, s(0.0));
    assert!(matches!(
        p.next(s(0.0), &mut rng),
        Next::Send { endpoint: 0, .. }
    ));
    p.record(s(0.0), 0, Outcome::Refused, &mut rng);
    assert!(matches!(
        p.next(s(0.0), &mut rng),
        Next::Send { endpoint: 1, .. }
    ));
    p.record(s(0.0), 1, Outcome::Refused, &mut rng);
    assert_eq!(p.next(s(0.0), &mut rng), Next::NoEndpoint);
}

#[test]
fn state_carries_over_between_runs_and_absurd_times_are_capped() {
    let mut rng = low();
    let mut p = Pacer::new(Params::default(), 2, s(1000.0));
    assert!(matches!(p.next(s(1000.0), &mut rng), Next::Send { .. }));
    p.record(s(1000.0), 0, failed(Some(20.0)), &mut rng);
    for _ in 0..6 {
        p.record(s(1000.0), 1, failed(None), &mut rng);
    }
    let saved = p.save(s(1001.0));
    let json = serde_json::to_string(&saved).unwrap_or_default();
    let back: PacerState = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(back, saved);
    let mut q = Pacer::restore(Params::default(), 2, &back, s(1002.0));
    // The backup's breaker is open, the primary's Retry-After stands: wait for the
    // earlier of the two.
    assert!(!q.closed(1));
    assert!(matches!(q.next(s(1002.0), &mut rng), Next::Wait { .. }));
    assert!(matches!(
        q.next(s(1020.0), &mut rng),
        Next::Send {
            endpoint: 0,
            retry: true
        }
    ));
    // A saved Retry-After days ahead (a clock set back) is cut to an hour.
    let mut far = back.clone();
    if let Some(Some(e)) = far.endpoints.get_mut(0) {
        e.not_before_ms = u64::MAX;
    }
    far.endpoints[1] = None;
    let mut r = Pacer::restore(Params::default(), 2, &far, s(1002.0));
    assert!(matches!(
        r.next(s(1002.0), &mut rng),
        Next::Send { endpoint: 1, .. }
    ));
    let mut only = Pacer::restore(Params::default(), 1, &far, s(1002.0));
    match only.next(s(1002.0), &mut rng) {
        Next::Wait { until, .. } => assert!(until <= s(1002.0 + 3600.0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_start_spread_follows_the_outage_up_to_the_cap() {
    assert_eq!(start_spread_after(Duration::ZERO), Duration::ZERO);
    assert_eq!(start_spread_after(s(60.0)), s(15.0));
    assert_eq!(start_spread_after(s(16.0 * 60.0)), START_SPREAD);
    assert_eq!(start_spread_after(s(72.0 * 3600.0)), START_SPREAD);
    // A given spread is honoured, and never beyond the policy's cap.
    let mut rng = StdRng::seed_from_u64(5);
    for spread in [s(0.0), s(10.0), s(10_000.0)] {
        for backlog in [1, 20, 10_000] {
            let plan = Recovery::plan(s(100.0), spread, backlog, &mut rng);
            let window = spread.min(START_SPREAD);
            assert!(plan.first() - s(100.0) <= window, "{plan:?}");
            assert_eq!(plan.end(), s(100.0) + window);
        }
    }
}

/// The step the relay, the app's loop and the fleet simulator take when a share ends:
/// the plan adapts, then names the next turn and its size.
#[test]
fn after_each_share_the_plan_names_the_next_turn_and_its_size() {
    let secs = |n: u64| Duration::from_secs(n);
    let mut plan = Recovery::plan(s(0.0), s(240.0), 20, &mut StdRng::seed_from_u64(8));
    let first = plan.first();
    assert_eq!(plan.first_turn(0), None);
    assert_eq!(
        plan.first_turn(20),
        Some(Turn {
            at: first,
            share: 5
        })
    );
    // The first share went: the next a minute later, a third of the fifteen left.
    let t = first + secs(60);
    assert_eq!(
        plan.after_share(first, false, 15),
        Some(Turn { at: t, share: 5 })
    );
    // Refused for overload, nothing of it went: the three shares it and the rest had
    // go two minutes apart, so the next takes half of what is left.
    assert_eq!(
        plan.after_share(t, true, 15),
        Some(Turn {
            at: t + secs(120),
            share: 8
        })
    );
    // That one went: a quarter closer again, and the last share takes the rest.
    let t = t + secs(120);
    assert_eq!(
        plan.after_share(t, false, 7),
        Some(Turn {
            at: t + secs(90),
            share: 7
        })
    );
    // That was the last share of the window: the plan is over, and what is left
    // (invoices issued meanwhile) goes at once, without a share limit.
    let t = t + secs(90);
    assert_eq!(plan.after_share(t, false, 2), None);
    assert_eq!(plan.after_share(plan.end() + secs(5), false, 9), None);
    // Nothing left: the plan is over too.
    let mut early = Recovery::plan(s(0.0), s(240.0), 20, &mut StdRng::seed_from_u64(8));
    assert_eq!(early.after_share(early.first(), false, 0), None);
    // A refusal stretches the plan even when it leaves nothing to send.
    let fresh = Recovery::plan(s(0.0), s(240.0), 20, &mut StdRng::seed_from_u64(8));
    let (mut stepped, mut stretched) = (fresh, fresh);
    assert_eq!(stepped.after_share(fresh.first(), true, 0), None);
    stretched.stretch(fresh.first());
    assert_eq!(stepped, stretched);
}

#[test]
fn following_the_steps_sends_every_invoice_once_in_bounded_time() {
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..200 {
        let backlog: u64 = rng.gen_range(1..2000);
        let mut plan = Recovery::plan(s(0.0), START_SPREAD, backlog, &mut rng);
        let mut turn = plan.first_turn(backlog).expect("a first turn");
        let (mut pending, mut sent, mut turns) = (backlog, 0, 0);
        loop {
            turns += 1;
            assert!(turns < 10_000, "{plan:?}");
            assert!(
                turn.share >= 1 && turn.share <= pending,
                "{turn:?} of {pending}"
            );
            assert!(
                turn.share >= MIN_SHARE.min(pending),
                "{turn:?} of {pending}"
            );
            // Refused for overload now and then, early on: part of the share went.
            let refused = turns < 30 && rng.gen_bool(0.3);
            let went = if refused {
                rng.gen_range(0..turn.share)
            } else {
                turn.share
            };
            pending -= went;
            sent += went;
            let now = turn.at;
            match plan.after_share(now, refused, pending) {
                Some(next) => {
                    assert!(next.at > now && next.at < plan.end(), "{next:?} {plan:?}");
                    assert!(next.at <= now + MAX_STRETCH, "{next:?}");
                    turn = next;
                }
                None => {
                    // The plan is over: the rest goes at once.
                    sent += pending;
                    pending = 0;
                    break;
                }
            }
        }
        assert_eq!((pending, sent), (0, backlog));
    }
}
