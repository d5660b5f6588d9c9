//! The figures as Markdown, to paste into docs/BENCHMARKS.md.

use crate::{Measured, Scenario};
use kaipiao_sync::policy::Params;
use std::fmt::Write;

fn drain(m: &Measured) -> String {
    match (m.drained_at, m.drain_ratio()) {
        (Some(t), Some(r)) => format!("{t:.0} s ({r:.2}x)"),
        _ => format!("not drained by {} s", m.scenario.horizon.as_secs()),
    }
}

/// The results table: one row per run.
pub fn table(runs: &[&Measured]) -> String {
    let mut out = String::new();
    out.push_str("| client | capacity (invoices/s) | batch | ideal drain | drain (x ideal) | peak load s 0-10 | peak load after 10 s | seconds > 1.1x after 10 s | retry amplification | refused by the authority | rejected locally |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for m in runs {
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {:.0} s | {} | {:.2}x | {:.2}x | {} | {:.2} | {:.1}% | {} |",
            m.strategy,
            m.scenario.capacity,
            m.scenario.batch,
            m.scenario.ideal_drain(),
            drain(m),
            m.peak_in_warm_up(),
            m.peak_after_warm_up(),
            m.seconds_over(1.1),
            m.amplification(),
            100.0 * m.refused_share(),
            m.local_rejects,
        );
    }
    out
}

/// The whole of docs/fleet.md.
pub fn document(
    scenario: &Scenario,
    params: &Params,
    naive: &Measured,
    policy: &Measured,
    sweep: &[Measured],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## The fleet, measured (`make fleet`)\n");
    let _ = writeln!(
        out,
        "A deterministic discrete-event simulation (crates/fleet, seed {}) of {} shops, each \
         with {} invoices queued, meeting an authority that recovers at t = 0 and processes \
         {:.0} invoices/s (a token bucket holding one second, a request costing the invoices \
         it carries, answering 503 with a Retry-After derived from the bucket). Each shop \
         sends its invoices in batches of up to {} (the relay's default), one request in \
         flight, {}-{} ms each way. Kaipiao's clients run the policy the client ships: the \
         background loop's recovery plan (`kaipiao_sync::policy::Recovery`: the backlog in \
         even shares across the spread) and `kaipiao_sync::policy::Pacer` for every request; \
         the naive client sends its whole backlog at once and resends a refused request \
         every second, without jitter or Retry-After. \"Load\" is the invoices in the \
         requests that reach the authority in a second, refused ones included; retry \
         amplification is requests that reached the authority per request it served. (taxd's `--capacity` counts \
         requests, as SPEC 7 says; an authority's real limit is its work, which is what is \
         modelled here. `--batch 1` gives one request per invoice.)\n",
        scenario.seed,
        scenario.clients,
        scenario.backlog,
        scenario.capacity,
        scenario.batch,
        scenario.latency_ms.0,
        scenario.latency_ms.1,
    );
    out.push_str(&table(&[naive, policy]));
    out.push_str("\n![load over time](fleet.svg)\n\n");
    let _ = writeln!(
        out,
        "Policy parameters: recovery plan over {} s (the client's spread for any outage of \
         16 minutes or more): shares of at least {} invoices at least {} s apart, the first \
         after a random delay within one share's interval; a share refused for overload \
         ends there and doubles the spacing of the shares left (the window at most {} s \
         from then), a share that goes through brings them a quarter closer again, never \
         closer than planned; backoff full jitter, \
         base {} ms, cap {} s, never before Retry-After; retry budget {} tokens, a retry \
         costs {}, a success earns {}, time earns {}/s, retries only while at least half \
         full; adaptive throttling K = {} over {} s (only 429 and 503 `overloaded` count as \
         refusals); \
         breaker opens after {} consecutive failures, half-open after {}-{} s, doubling per \
         failed probe up to {} s.\n",
        params.start_spread.as_secs(),
        kaipiao_sync::policy::MIN_SHARE,
        kaipiao_sync::policy::MIN_INTERVAL.as_secs(),
        kaipiao_sync::policy::MAX_STRETCH.as_secs(),
        params.backoff.base.as_millis(),
        params.backoff.cap.as_secs(),
        params.budget.capacity,
        params.budget.per_retry,
        params.budget.per_success,
        params.budget.per_second,
        params.throttle_k,
        params.throttle_window.as_secs(),
        params.breaker.threshold,
        params.breaker.cool_down.as_secs_f64() / 2.0,
        params.breaker.cool_down.as_secs(),
        params.breaker.cap.as_secs(),
    );
    out.push_str(
        "The same policy against other capacities (same fleet and backlog): the spread fits \
         a backlog the authority can absorb in about that time. With more capacity the \
         authority idles through part of the spread (no client can tell it has room to \
         spare); with less, refused shares stretch their plans and the retry side \
         (Retry-After, backoff, budget, throttling) keeps the overload bounded: nothing is \
         lost, but the first minutes run over capacity and the stretched plans leave a \
         tail.\n\n",
    );
    let rows: Vec<&Measured> = sweep.iter().collect();
    out.push_str(&table(&rows));
    out
}
