//! The command line of `taxd` (SPEC 7), parsed by clap. Every value is checked here, so a
//! bad flag is refused at start with a message naming it (clap exits 2), never later.

use clap::Parser;
use kaipiao_core::money::parse_decimal;
use rust_decimal::Decimal;
use std::net::ToSocketAddrs;
use std::path::PathBuf;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8787";
pub const DEFAULT_TOKEN: &str = "sandbox";
pub const DEFAULT_LEASE_SIZE: u64 = 1000;
pub const DEFAULT_OFFLINE_HOURS: u64 = 72;
/// Sequence numbers are 8 digits (SPEC 3), so no lease can reach past this.
pub const MAX_SEQUENCE: u64 = 99_999_999;

/// A random delay range in milliseconds, `MIN..MAX` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayRange {
    pub min_ms: u64,
    pub max_ms: u64,
}

/// All of taxd's flags.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "taxd",
    version,
    about = "Kaipiao's sandbox tax-authority server (SPEC 7): enrolment, leases, receipts, with overload and fault injection for tests."
)]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (the bound address is printed).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN, value_parser = parse_listen)]
    pub listen: String,
    /// SQLite database holding everything: signing key, devices, leases, receipts.
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// Enrolment token every device presents (reusable).
    #[arg(long, value_name = "T", default_value = DEFAULT_TOKEN, value_parser = parse_token)]
    pub enrollment_token: String,
    /// Invoice numbers per lease.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_LEASE_SIZE, value_parser = parse_lease_size, allow_negative_numbers = true)]
    pub lease_size: u64,
    /// Offline window granted with each lease, hours.
    #[arg(long, value_name = "H", default_value_t = DEFAULT_OFFLINE_HOURS, value_parser = parse_hours, allow_negative_numbers = true)]
    pub offline_hours: u64,
    /// Cap on the unsynced amount granted with each lease (CNY).
    #[arg(long, value_name = "X", default_value = "1000000.00", value_parser = parse_money_flag, allow_negative_numbers = true)]
    pub offline_amount_cap: Decimal,
    /// Cap on one invoice's |total_amount| granted with each lease (CNY).
    #[arg(long, value_name = "X", default_value = "100000.00", value_parser = parse_money_flag, allow_negative_numbers = true)]
    pub single_invoice_cap: Decimal,
    /// Requests per second across the server before 503 overloaded (absent: unlimited).
    #[arg(long, value_name = "N", value_parser = parse_rate, allow_negative_numbers = true)]
    pub capacity: Option<f64>,
    /// Admission (issue 13): invoices per second the authority takes; a device with a
    /// backlog asks `POST /v1/admission` for its turn, and the backlog is paced earliest
    /// deadline first with room kept for live traffic (absent: no admission).
    #[arg(long, value_name = "N", value_parser = parse_admission_capacity, allow_negative_numbers = true)]
    pub admission_capacity: Option<u32>,
    /// Requests per second per device before 429 rate_limited (absent: unlimited).
    #[arg(long, value_name = "N", value_parser = parse_rate, allow_negative_numbers = true)]
    pub device_rate: Option<f64>,
    /// Checks per second per peer address on the public 查验 endpoint (`GET /v1/check`)
    /// before 429 rate_limited.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CHECK_RATE, value_parser = parse_rate, allow_negative_numbers = true)]
    pub check_rate: f64,
    /// Probability (0..1) that a submission is committed and its connection then dropped.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability, allow_negative_numbers = true)]
    pub fault_drop_after_commit: f64,
    /// Probability (0..1) of answering 503 before doing anything.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability, allow_negative_numbers = true)]
    pub fault_error_rate: f64,
    /// Random delay before handling each request, milliseconds.
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_delay)]
    pub fault_delay_ms: Option<DelayRange>,
    /// Send every receipt (submission answers, batch items, GET /v1/invoices/{id}) signed
    /// with a key other than the published authority key; the stored receipt stays good.
    #[arg(long)]
    pub fault_wrong_signing_key: bool,
    /// Probability (0..1) that a receipt is sent as broken (truncated) JSON after the
    /// commit; the stored receipt stays good.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = parse_probability, allow_negative_numbers = true)]
    pub fault_malformed_receipt: f64,
    /// Append one JSON line per request to this file.
    #[arg(long, value_name = "FILE")]
    pub request_log: Option<PathBuf>,
    /// Say in `/v1/health` that this is not a sandbox (`"sandbox": false`): its invoices
    /// print without the "SANDBOX 样票" mark. For tests of the plain page; taxd is always
    /// a sandbox authority otherwise.
    #[arg(long)]
    pub not_sandbox: bool,
}

impl Config {
    /// The defaults of every flag, with the given database: what tests start from.
    pub fn new(db: impl Into<PathBuf>) -> Config {
        Config {
            listen: DEFAULT_LISTEN.to_string(),
            db: db.into(),
            enrollment_token: DEFAULT_TOKEN.to_string(),
            lease_size: DEFAULT_LEASE_SIZE,
            offline_hours: DEFAULT_OFFLINE_HOURS,
            offline_amount_cap: Decimal::new(100_000_000, 2),
            single_invoice_cap: Decimal::new(10_000_000, 2),
            capacity: None,
            admission_capacity: None,
            device_rate: None,
            check_rate: DEFAULT_CHECK_RATE,
            fault_drop_after_commit: 0.0,
            fault_error_rate: 0.0,
            fault_delay_ms: None,
            fault_wrong_signing_key: false,
            fault_malformed_receipt: 0.0,
            request_log: None,
            not_sandbox: false,
        }
    }
}

/// The public 查验 endpoint's default rate per address: a person checking invoices by
/// hand never meets it; a scraper walking numbers does.
pub const DEFAULT_CHECK_RATE: f64 = 2.0;

fn parse_listen(s: &str) -> Result<String, String> {
    match s.to_socket_addrs() {
        Ok(addrs) if addrs.len() > 0 => Ok(s.to_string()),
        Ok(_) => Err(format!("{s:?} resolves to no address")),
        Err(e) => Err(format!("{s:?} is not HOST:PORT (e.g. 127.0.0.1:8787): {e}")),
    }
}

fn parse_token(s: &str) -> Result<String, String> {
    if s.is_empty() {
        Err("the enrolment token must not be empty".into())
    } else {
        Ok(s.to_string())
    }
}

fn parse_lease_size(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_SEQUENCE).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a whole number from 1 to {MAX_SEQUENCE}"
        )),
    }
}

fn parse_hours(s: &str) -> Result<u64, String> {
    // A century of hours: anything larger is a typo, and keeps hour arithmetic far from overflow.
    const MAX_HOURS: u64 = 876_000;
    match s.trim().parse::<u64>() {
        Ok(n) if n <= MAX_HOURS => Ok(n),
        _ => Err(format!(
            "{s:?} is not a whole number of hours from 0 to {MAX_HOURS}"
        )),
    }
}

fn parse_money_flag(s: &str) -> Result<Decimal, String> {
    let err =
        || format!("{s:?} is not an amount such as 100000.00 (at most 2 decimals, not negative)");
    let d = parse_decimal(s, 2).map_err(|_| err())?;
    // Leases write the cap as money; keep it below what an invoice amount can reach so
    // comparisons never overflow.
    if d.is_sign_negative() || d > Decimal::new(999_999_999_999_999, 0) {
        return Err(err());
    }
    Ok(d)
}

/// The rates `--capacity` and `--device-rate` accept, in requests per second: from one
/// request in 1,000 s (a slower bucket would tell clients to wait for weeks) to a million.
pub const MIN_RATE: f64 = 0.001;
pub const MAX_RATE: f64 = 1_000_000.0;

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(r) if (MIN_RATE..=MAX_RATE).contains(&r) => Ok(r),
        _ => Err(format!(
            "{s:?} is not a number of requests per second from {MIN_RATE} to {MAX_RATE}"
        )),
    }
}

/// The largest `--admission-capacity`, invoices per second.
pub const MAX_ADMISSION_CAPACITY: u32 = 1_000_000;

fn parse_admission_capacity(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_ADMISSION_CAPACITY).contains(&n) => Ok(n),
        _ => Err(format!(
            "{s:?} is not a whole number of invoices per second from 1 to {MAX_ADMISSION_CAPACITY}"
        )),
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?} is not a probability from 0 to 1")),
    }
}

fn parse_delay(s: &str) -> Result<DelayRange, String> {
    let err = || format!("{s:?} is not MIN..MAX in milliseconds (e.g. 50..500)");
    let (min, max) = s.split_once("..").ok_or_else(err)?;
    let min_ms = min.trim().parse::<u64>().map_err(|_| err())?;
    let max_ms = max.trim().parse::<u64>().map_err(|_| err())?;
    // An hour is already far beyond any client timeout.
    if min_ms > max_ms || max_ms > 3_600_000 {
        return Err(err());
    }
    Ok(DelayRange { min_ms, max_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_new() {
        let parsed = Config::try_parse_from(["taxd", "--db", "x.db"]).unwrap();
        let built = Config::new("x.db");
        assert_eq!(format!("{parsed:?}"), format!("{built:?}"));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for args in [
            vec!["--lease-size", "0"],
            vec!["--fault-error-rate", "1.5"],
            vec!["--fault-delay-ms", "10..5"],
            vec!["--fault-malformed-receipt", "2"],
            vec!["--single-invoice-cap", "-1"],
            vec!["--single-invoice-cap", "1.234"],
            vec!["--capacity", "0"],
            vec!["--capacity", "1e-300"],
            vec!["--capacity", "NaN"],
            vec!["--capacity", "inf"],
            vec!["--device-rate", "1e300"],
            vec!["--device-rate", "-1"],
            vec!["--listen", "nonsense"],
        ] {
            let flag = args[0];
            let mut argv = vec!["taxd", "--db", "x.db"];
            argv.extend(args);
            let err = Config::try_parse_from(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(flag), "{err}");
        }
        let err = Config::try_parse_from(["taxd"]).unwrap_err();
        assert!(err.to_string().contains("--db"), "{err}");
    }

    #[test]
    fn receipt_fault_flags() {
        let parsed = Config::try_parse_from([
            "taxd",
            "--db",
            "x.db",
            "--fault-wrong-signing-key",
            "--fault-malformed-receipt",
            "0.5",
        ])
        .unwrap();
        assert!(parsed.fault_wrong_signing_key);
        assert_eq!(parsed.fault_malformed_receipt, 0.5);
        // A switch takes no value.
        let err =
            Config::try_parse_from(["taxd", "--db", "x.db", "--fault-wrong-signing-key=maybe"])
                .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("--fault-wrong-signing-key"),
            "{err}"
        );
    }

    #[test]
    fn delay_parses() {
        assert_eq!(
            parse_delay("5..50"),
            Ok(DelayRange {
                min_ms: 5,
                max_ms: 50
            })
        );
    }
}
