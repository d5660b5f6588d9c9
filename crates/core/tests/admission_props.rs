//! Properties of the authority's admission (issue 13, kaipiao_core::admission): whatever
//! the devices ask and when, the planned load of a second never passes the budget, a grant
//! is always within the horizon and its send time inside its second, the backlog is served
//! earliest deadline first, and a fleet that asks when told is drained near the budget.

use kaipiao_core::admission::{decide, Board, Decision, Params, Seconds};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn no_second_is_planned_over_the_budget_and_grants_are_in_their_second(
        capacity in 1u32..3000,
        asks in prop::collection::vec((0u32..40, 0u64..800, 0i64..100_000, 0i64..2_000), 1..300),
    ) {
        let params = Params::new(capacity);
        let mut board = Board::new();
        let mut now = 1_000_000i64;
        for (device, pending, deadline, step) in asks {
            now += step;
            let device = format!("d{device}");
            // Issued an hour before: a backlog, not live traffic.
            match board.ask(&params, &device, pending, now / 1000 - 3600, deadline, now) {
                Decision::Admitted { second, not_before_ms, not_after_ms, invoices } => {
                    prop_assert!(invoices >= 1 && invoices <= params.capacity.min(params.max_share));
                    prop_assert!(u64::from(invoices) <= pending);
                    // A grant still outstanding is answered again until its end.
                    prop_assert!(second <= now / 1000 + params.horizon_s);
                    prop_assert!(not_after_ms >= now);
                    prop_assert!(not_before_ms >= now);
                    prop_assert!(not_before_ms / 1000 == second || not_before_ms == now);
                    prop_assert!(not_after_ms > not_before_ms);
                }
                Decision::Waiting { turn_at_ms, ask_again_at_ms, .. } => {
                    prop_assert!(turn_at_ms > now);
                    prop_assert!(ask_again_at_ms > now && ask_again_at_ms <= turn_at_ms);
                }
                Decision::Open => prop_assert_eq!(pending, 0),
            }
            for s in now / 1000..=now / 1000 + params.horizon_s {
                prop_assert!(board.planned(s) <= params.budget(), "second {s}: {} > {}", board.planned(s), params.budget());
                prop_assert!(board.planned(s) + board.live(s) <= params.capacity, "second {s}: {} + {} > {}", board.planned(s), board.live(s), params.capacity);
            }
        }
    }

    #[test]
    fn more_ahead_never_brings_a_turn_earlier(
        capacity in 1u32..3000,
        share in 1u32..500,
        a in 0u64..100_000,
        b in 0u64..100_000,
        now in 0i64..10_000_000,
        planned in prop::collection::vec(0u32..3000, 0..21),
    ) {
        let params = Params::new(capacity);
        let (less, more) = (a.min(b), a.max(b));
        let at = |d: Decision| match d {
            Decision::Admitted { not_before_ms, .. } => not_before_ms,
            Decision::Waiting { turn_at_ms, .. } => turn_at_ms,
            Decision::Open => i64::MIN,
        };
        let planned: Vec<u32> = planned.into_iter().map(|p| p.min(params.budget())).collect();
        let seconds = Seconds { planned: &planned, live: &[], budget: params.budget() };
        prop_assert!(at(decide(&params, now, share, less, seconds)) <= at(decide(&params, now, share, more, seconds)));
    }
}

/// A fleet that asks when told and sends at its grant: served earliest deadline first,
/// and drained within a few percent of backlog / budget.
#[test]
fn a_fleet_that_follows_its_turns_drains_at_the_budget_earliest_deadline_first() {
    let params = Params::new(1000);
    let mut board = Board::new();
    // 2,000 devices of 20 invoices; deadlines descending with the device number, so the
    // last to arrive is the most urgent.
    let devices = 2_000usize;
    let mut left = vec![20u64; devices];
    let deadline = |d: usize| 10_000_000 - d as i64;
    // (time, device): the next ask.
    let mut asks: std::collections::BinaryHeap<std::cmp::Reverse<(i64, usize)>> = (0..devices)
        .map(|d| std::cmp::Reverse((d as i64, d)))
        .collect();
    let mut finished = vec![0i64; devices];
    let mut waited = vec![false; devices];
    while let Some(std::cmp::Reverse((now, d))) = asks.pop() {
        match board.ask(&params, &format!("d{d}"), left[d], -3600, deadline(d), now) {
            Decision::Admitted {
                not_before_ms,
                invoices,
                ..
            } => {
                left[d] -= u64::from(invoices);
                board.used(&format!("d{d}"), left[d]);
                if left[d] == 0 {
                    finished[d] = not_before_ms;
                } else {
                    asks.push(std::cmp::Reverse((not_before_ms + 1, d)));
                }
            }
            Decision::Waiting {
                ask_again_at_ms, ..
            } => {
                waited[d] = true;
                asks.push(std::cmp::Reverse((ask_again_at_ms, d)))
            }
            Decision::Open => unreachable!("20 pending is not live traffic"),
        }
    }
    let last = finished.iter().copied().max().unwrap();
    let ideal_ms = (devices as f64 * 20.0 / f64::from(params.budget()) * 1000.0) as i64;
    assert!(
        (last as f64) < ideal_ms as f64 * 1.05 + 2_000.0,
        "drained at {last} ms, ideal {ideal_ms} ms"
    );
    // Earliest deadline first: of the devices that had to wait (the first ones found room
    // at once), a more urgent one (higher number) is never served after a less urgent one
    // by more than the horizon. Not exactly in order: devices told to come back at the
    // same moment are answered one after the other, and a less urgent one answered first
    // may take the last room of the horizon that a more urgent one's share needed whole
    // (shares are not split across seconds); that one then waits for the next horizon.
    // Known limitation, measured (docs/ARCHITECTURE.md, admission).
    let slack = params.horizon_s * 1000;
    let late = (1..devices)
        .filter(|&d| waited[d] && waited[d - 1] && finished[d] > finished[d - 1] + slack)
        .count();
    assert!(waited.iter().filter(|w| **w).count() > devices / 4);
    let first_late: Vec<(usize, i64, i64)> = (1..devices)
        .filter(|&d| waited[d] && waited[d - 1] && finished[d] > finished[d - 1] + slack)
        .map(|d| (d, finished[d - 1], finished[d]))
        .take(3)
        .collect();
    assert_eq!(
        late, 0,
        "devices served out of deadline order: {first_late:?}"
    );
}
