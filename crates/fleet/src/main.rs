//! `fleet`: runs the issue-4 fleet with the naive client and with Kaipiao's policy,
//! writes `fleet.png` and `fleet.md` into `--out`, and prints the table.

use anyhow::Context;
use clap::Parser;
use kaipiao_fleet::{plot, report, simulate, Scenario, Strategy};
use kaipiao_sync::policy::Params;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "fleet",
    about = "Simulates 10,000 Kaipiao clients draining into a recovering authority (issue 4)."
)]
struct Args {
    /// Where fleet.png and fleet.md go.
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
    let png = args.out.join("fleet.png");
    let file =
        std::fs::File::create(&png).with_context(|| format!("creating {}", png.display()))?;
    plot::chart(&naive, &policy, std::io::BufWriter::new(file))
        .with_context(|| format!("writing {}", png.display()))?;
    let md = args.out.join("fleet.md");
    let document = report::document(&scenario, &params, &naive, &policy, &sweep);
    std::fs::write(&md, &document).with_context(|| format!("writing {}", md.display()))?;
    println!("{document}");
    eprintln!("wrote {} and {}", png.display(), md.display());
    Ok(())
}
