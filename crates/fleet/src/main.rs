//! `fleet`: runs the issue-4 fleet with the naive client and with Kaipiao's policy,
//! writes `fleet.svg` and `fleet.md` into `--out`, and prints the table; then the issue-13
//! sweep (today's recovery plan against the authority's pacing, two mixes, five
//! capacities, with late returns, live traffic and offline windows), written as
//! `fleet.json` and appended to `fleet.md`.

use anyhow::Context;
use clap::Parser;
use kaipiao_fleet::paced::{out_of_window, simulate_paced, window_deadlines, PacedScenario};
use kaipiao_fleet::{plot, report, simulate, Scenario, Strategy};
use kaipiao_sync::policy::Params;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "fleet",
    about = "Simulates 10,000 Kaipiao clients draining into a recovering authority (issue 4)."
)]
struct Args {
    /// Where fleet.svg, fleet.md, fleet.json and the per-capacity charts go.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    clients: u32,
    /// Invoices queued per client.
    #[arg(long, default_value_t = 20)]
    backlog: u32,
    /// Invoices per second the authority processes.
    #[arg(long, default_value_t = 1000.0)]
    capacity: f64,
    /// Invoices per request (the client's batch size; 1: one request per invoice).
    #[arg(long, default_value_t = kaipiao_sync::DEFAULT_BATCH_SIZE as u32)]
    batch: u32,
    #[arg(long, default_value_t = 4)]
    seed: u64,
    /// Only the issue-4 runs (no issue-13 sweep).
    #[arg(long)]
    no_sweep: bool,
}

/// A mix of shops: name, (shops, invoices) groups.
struct Mix {
    name: &'static str,
    groups: Vec<(u32, u32)>,
}

fn mixes() -> Vec<Mix> {
    vec![
        Mix {
            name: "10000x20",
            groups: vec![(10_000, 20)],
        },
        Mix {
            name: "9000x5+1000x200",
            groups: vec![(9_000, 5), (1_000, 200)],
        },
    ]
}

fn backlogs(groups: &[(u32, u32)]) -> Vec<u32> {
    groups
        .iter()
        .flat_map(|(n, b)| std::iter::repeat_n(*b, *n as usize))
        .collect()
}

/// The issue-13 sweep: one record per policy, mix and capacity, and a chart per capacity
/// of the first mix (file name, SVG).
fn issue13_sweep(seed: u64) -> (Vec<serde_json::Value>, Vec<(String, String)>) {
    let mut records = Vec::new();
    let mut charts = Vec::new();
    for mix in mixes() {
        let backlog = backlogs(&mix.groups);
        let total: u64 = backlog.iter().map(|b| u64::from(*b)).sum();
        for capacity in [250u32, 500, 1000, 2000, 4000] {
            let ideal = total as f64 / f64::from(capacity);
            // Windows that close between 0.3x and 1.5x the ideal drain: an
            // earliest-deadline-first schedule at capacity finishes most shops in time.
            let windows = Some((0.3 * ideal, 1.5 * ideal));
            let base = PacedScenario {
                groups: mix.groups.clone(),
                capacity,
                latency_ms: (10, 40),
                seed,
                horizon_s: (ideal * 6.0) as u64 + 600,
                warm_up_s: 5,
                no_show: 0.0,
                live: 0.0,
                deadlines: None,
                return_ms: 2_000,
            };
            let main = simulate_paced(&base);
            let late = simulate_paced(&PacedScenario {
                no_show: 0.01,
                ..base.clone()
            });
            let live = simulate_paced(&PacedScenario {
                live: 0.1,
                ..base.clone()
            });
            let windowed = simulate_paced(&PacedScenario {
                deadlines: windows,
                ..base.clone()
            });
            let returning: Vec<u32> = backlog.clone();
            records.push(json!({
                "policy": "paced",
                "mix": mix.name,
                "capacity": capacity,
                "ideal_drain_s": ideal,
                "drain_x_ideal": main.drain_x_ideal(capacity),
                "peak_after_5s_x_capacity": main.peak_after(5, capacity),
                "wasted_fraction": main.wasted_fraction(),
                "late_returns_drain_x_ideal": late.drain_x_ideal(capacity),
                "live_ack_p99_s": live.live_ack_p99(),
                "live_drain_x_ideal": live.drain_x_ideal(capacity),
                "shops_out_of_window": out_of_window(&windowed.finished, &returning, f64::from(capacity)),
                "admission_requests_per_invoice": main.asks as f64 / total as f64,
                "submissions": main.submissions,
            }));
            // Today's plan: the client's own recovery spread against a token bucket of
            // invoices (the issue-4 simulation).
            let (small, large) = (mix.groups[0], mix.groups.get(1).copied());
            let old = Scenario {
                clients: backlog.len() as u32,
                backlog: small.1,
                large,
                capacity: f64::from(capacity),
                seed,
                warm_up: Duration::from_secs(5),
                horizon: Duration::from_secs((ideal * 8.0) as u64 + 900),
                ..Scenario::issue4()
            };
            let m = simulate(&old, Strategy::Kaipiao(Params::default()));
            let offered: u64 = m.seconds.iter().map(|s| u64::from(s.offered)).sum();
            let accepted: u64 = m.seconds.iter().map(|s| u64::from(s.accepted)).sum();
            // The old plan does not know the windows: its run is measured against the
            // same draw the paced one met.
            let finished: Vec<(Option<f64>, f64)> = m
                .finished
                .iter()
                .copied()
                .zip(window_deadlines(seed, backlog.len(), windows))
                .collect();
            records.push(json!({
                "policy": "recovery plan",
                "mix": mix.name,
                "capacity": capacity,
                "ideal_drain_s": ideal,
                "drain_x_ideal": m.drain_ratio(),
                "peak_after_5s_x_capacity": m.peak_after_warm_up(),
                "wasted_fraction": if accepted == 0 { 0.0 } else { (offered - accepted) as f64 / accepted as f64 },
                "late_returns_drain_x_ideal": null,
                "live_ack_p99_s": null,
                "shops_out_of_window": out_of_window(&finished, &backlog, f64::from(capacity)),
            }));
            if mix.name == "10000x20" {
                let title = format!(
                    "{}: capacity {capacity} invoices/s, ideal drain {ideal:.0} s",
                    mix.name
                );
                match plot::capacity_chart(&title, f64::from(capacity), &m, &main) {
                    Ok(svg) => charts.push((format!("fleet-{capacity}.svg"), svg)),
                    Err(e) => eprintln!("chart for {capacity}/s: {e}"),
                }
            }
            eprintln!("swept {} at {capacity}/s", mix.name);
        }
    }
    (records, charts)
}

fn table(records: &[serde_json::Value]) -> String {
    let f = |v: &serde_json::Value, k: &str, unit: &str| match v[k].as_f64() {
        Some(x) => format!("{x:.2}{unit}"),
        None => "—".into(),
    };
    let mut out = String::from(
        "| mix | capacity (invoices/s) | policy | drain (x ideal) | peak after 5 s (x capacity) | wasted | 1% late returns: drain (x ideal) | live ack p99 | shops out of window (EDF could serve) |\n|---|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in records {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.1}% | {} | {} | {} |\n",
            r["mix"].as_str().unwrap_or(""),
            r["capacity"],
            r["policy"].as_str().unwrap_or(""),
            f(r, "drain_x_ideal", "x"),
            f(r, "peak_after_5s_x_capacity", "x"),
            100.0 * r["wasted_fraction"].as_f64().unwrap_or(0.0),
            f(r, "late_returns_drain_x_ideal", "x"),
            f(r, "live_ack_p99_s", " s"),
            r["shops_out_of_window"],
        ));
    }
    out
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let scenario = Scenario {
        clients: args.clients,
        backlog: args.backlog,
        capacity: args.capacity,
        batch: args.batch,
        seed: args.seed,
        ..Scenario::issue4()
    };
    let params = Params::default();
    let naive = simulate(
        &scenario,
        Strategy::Naive {
            interval: Duration::from_secs(1),
        },
    );
    let policy = simulate(&scenario, Strategy::Kaipiao(params));
    let sweep: Vec<_> = [0.5, 0.75, 1.0, 1.5, 2.0]
        .iter()
        .map(|f| {
            let s = Scenario {
                capacity: scenario.capacity * f,
                ..scenario.clone()
            };
            simulate(&s, Strategy::Kaipiao(params))
        })
        .collect();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let svg = args.out.join("fleet.svg");
    let chart = plot::chart(&naive, &policy).map_err(anyhow::Error::msg)?;
    std::fs::write(&svg, chart).with_context(|| format!("writing {}", svg.display()))?;
    let md = args.out.join("fleet.md");
    let mut document = report::document(&scenario, &params, &naive, &policy, &sweep);
    if !args.no_sweep {
        let (records, charts) = issue13_sweep(args.seed);
        let json_path = args.out.join("fleet.json");
        std::fs::write(&json_path, serde_json::to_string_pretty(&records)?)
            .with_context(|| format!("writing {}", json_path.display()))?;
        document.push_str("\n## Recovery paced by the authority (issue 13)\n\n");
        document.push_str(&table(&records));
        document.push('\n');
        for (name, text) in charts {
            let path = args.out.join(&name);
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            document.push_str(&format!("![{name}]({name})\n\n"));
        }
        eprintln!("wrote {}", json_path.display());
    }
    std::fs::write(&md, &document).with_context(|| format!("writing {}", md.display()))?;
    println!("{document}");
    eprintln!("wrote {} and {}", svg.display(), md.display());
    Ok(())
}
