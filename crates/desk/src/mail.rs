//! Delivery by email (issue 11, item 7), for both front ends: the message (the PDF, the
//! envelope as JSON, a zh/en body), the SMTP transport (lettre) built from the shop's
//! settings, and [`send_queued`], which claims due deliveries one at a time, sends each
//! and records the outcome. `kaipiao deliver` and the app's Email… try at once;
//! `kaipiao sync` and the app's mail thread send what is queued.

use crate::print::{record_pdf, PrintError};
use chrono::{DateTime, Utc};
use kaipiao_core::time::china_date;
use kaipiao_core::{Code, DeviceKey, Kind, Lang, Msg};
use kaipiao_ledger::{Delivery, DeliveryStatus, Ledger, LedgerError, MailSecurity, MailSettings};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, Message, SmtpTransport, Transport};
use serde::Serialize;
use std::time::Duration;

/// How long one attempt may take (connect, TLS, the whole conversation).
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);
/// A claimed delivery is left alone by other senders this long: far beyond the longest
/// SMTP conversation ([`SMTP_TIMEOUT`] per step, a handful of steps).
const CLAIM_HOLD: chrono::Duration = chrono::Duration::minutes(10);
/// The shortest retry delay, whatever `KAIPIAO_MAIL_RETRY_MS` says.
const MIN_DELAY_MS: i64 = 100;
/// The first retry's delay; each next one doubles, up to [`MAX_DELAY`].
const FIRST_DELAY: chrono::Duration = chrono::Duration::seconds(60);
const MAX_DELAY: chrono::Duration = chrono::Duration::hours(6);

/// The delay before attempt `attempts + 1`: doubling from a minute to six hours, with
/// ±20% jitter. `KAIPIAO_MAIL_RETRY_MS` sets the first delay (tests).
pub fn retry_delay(attempts: u32) -> chrono::Duration {
    let first = std::env::var("KAIPIAO_MAIL_RETRY_MS")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
        .map(|ms| chrono::Duration::milliseconds(ms.max(MIN_DELAY_MS)))
        .unwrap_or(FIRST_DELAY);
    let base = first
        .checked_mul(1i32 << attempts.saturating_sub(1).min(16))
        .unwrap_or(MAX_DELAY)
        .min(MAX_DELAY);
    let ms = base.num_milliseconds();
    let jitter = (rand::random::<f64>() * 0.4 - 0.2) * ms as f64;
    chrono::Duration::milliseconds(ms + jitter as i64)
}

/// Why a mail action was refused: the code, its field and the words.
#[derive(Debug, Clone)]
pub struct MailError {
    pub code: Code,
    pub field: String,
    pub msg: MailText,
}

/// The words of a [`MailError`]: a message id, or a ledger error's own text.
#[derive(Debug, Clone)]
pub enum MailText {
    Msg(Msg),
    Plain(String),
}

impl MailError {
    pub fn text(&self, lang: Lang) -> String {
        match &self.msg {
            MailText::Msg(m) => m.text(lang),
            MailText::Plain(s) => s.clone(),
        }
    }

    fn ledger(e: LedgerError, lang: Lang) -> MailError {
        let field = match &e {
            LedgerError::NotFound(_) => "number".to_string(),
            other => other.field().to_string(),
        };
        MailError {
            code: e.code(),
            field,
            msg: MailText::Plain(e.message(lang)),
        }
    }
}

/// An email address as typed, checked (lettre's parser); names `field` when it is not one.
pub fn check_address(typed: &str, field: &str) -> Result<Address, MailError> {
    typed.trim().parse::<Address>().map_err(|_| MailError {
        code: Code::InvalidEmail,
        field: field.into(),
        msg: MailText::Msg(Msg::new("invalid_email").arg("value", typed.trim())),
    })
}

/// What a sending run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MailRun {
    pub sent: u32,
    /// Failed this time for a passing reason, queued again with backoff.
    pub retrying: u32,
    /// Given up (refused for good, or out of attempts).
    pub failed: u32,
    /// Why the run stopped early (the mail server unreachable), if it did.
    pub stopped: Option<String>,
}

fn transport(s: &MailSettings, password: &str) -> Result<SmtpTransport, String> {
    let builder = match s.security {
        MailSecurity::Tls => SmtpTransport::relay(&s.host).map_err(|e| e.to_string())?,
        MailSecurity::Starttls => {
            SmtpTransport::starttls_relay(&s.host).map_err(|e| e.to_string())?
        }
        MailSecurity::Plain => SmtpTransport::builder_dangerous(&s.host),
    };
    let mut builder = builder.port(s.port).timeout(Some(SMTP_TIMEOUT));
    if !s.user.is_empty() {
        builder = builder.credentials(Credentials::new(s.user.clone(), password.to_string()));
    }
    Ok(builder.build())
}

/// The message of `delivery`: the PDF and the envelope attached, the body in the
/// delivery's language first and the other one under it.
pub fn message(ledger: &Ledger, s: &MailSettings, d: &Delivery) -> Result<Message, String> {
    let rec = ledger.show(&d.number).map_err(|e| e.to_string())?;
    let pdf = record_pdf(ledger, &rec).map_err(|e| match e {
        PrintError::Ledger(e) => e.to_string(),
        PrintError::Refused { msg, .. } => msg.text(Lang::En),
        PrintError::Internal(why) => why,
    })?;
    let inv = &rec.envelope.invoice;
    let (code, credited) = (&pdf.authority_code, pdf.credited_kind);
    let date = china_date(&inv.issued_at)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| inv.issued_at.clone());
    let body_in = |lang: Lang| {
        let status = match code {
            Some(c) => Msg::new("mail-status-accepted").arg("code", c.as_str()),
            None => Msg::new("mail-status-pending"),
        }
        .text(lang);
        let credit = match (inv.kind, lang) {
            (Kind::Credit, Lang::Zh) => "红字",
            (Kind::Credit, Lang::En) => "a credit note (红字) to ",
            _ => "",
        };
        let title = match lang {
            Lang::Zh => kaipiao_pdf::title(inv.kind, credited).to_string(),
            Lang::En => match kaipiao_pdf::qr_type(inv.kind, credited) {
                "31" => "a special VAT e-invoice (电子发票（增值税专用发票）)".to_string(),
                _ => "an ordinary e-invoice (电子发票（普通发票）)".to_string(),
            },
        };
        Msg::new("mail-body")
            .arg("title", title)
            .arg("credit", credit)
            .arg("number", inv.number.as_str())
            .arg("seller", inv.seller.name.as_str())
            .arg("date", date.as_str())
            .arg("total", inv.total.to_string())
            .arg("status", status)
            .text(lang)
    };
    let first = if d.lang == "en" { Lang::En } else { Lang::Zh };
    let second = if first == Lang::Zh {
        Lang::En
    } else {
        Lang::Zh
    };
    let body = format!("{}\n\n----\n\n{}\n", body_in(first), body_in(second));
    let subject = Msg::new("mail-subject")
        .arg("number", inv.number.as_str())
        .arg("seller", inv.seller.name.as_str())
        .text(first);
    let from: Address = s
        .from
        .parse()
        .map_err(|e| format!("the sender {}: {e}", s.from))?;
    let to: Address = d
        .address
        .parse()
        .map_err(|e| format!("the address {}: {e}", d.address))?;
    let mut envelope = serde_json::json!({"envelope": rec.envelope});
    if let Some(r) = &rec.receipt {
        envelope["receipt"] = r.clone();
    }
    let envelope = serde_json::to_vec_pretty(&envelope).map_err(|e| e.to_string())?;
    let pdf_type = ContentType::parse("application/pdf").map_err(|e| e.to_string())?;
    let json_type = ContentType::parse("application/json").map_err(|e| e.to_string())?;
    Message::builder()
        .from(Mailbox::new(Some(inv.seller.name.clone()), from.clone()))
        .to(Mailbox::new(None, to))
        .subject(subject)
        .message_id(Some(format!("<{}@{}>", d.message_id, from.domain())))
        .date_now()
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(body))
                .singlepart(Attachment::new(pdf.file_name.clone()).body(pdf.bytes, pdf_type))
                .singlepart(
                    Attachment::new(format!("发票-{}.json", inv.number)).body(envelope, json_type),
                ),
        )
        .map_err(|e| e.to_string())
}

/// Sends `d` (already claimed) and records the outcome. Err(why) when the mail server
/// could not be reached at all: the caller stops its run there.
fn send_one(
    ledger: &Ledger,
    s: &MailSettings,
    mailer: &SmtpTransport,
    d: &Delivery,
) -> Result<Delivery, (Delivery, String)> {
    let message = match message(ledger, s, d) {
        Ok(m) => m,
        // The invoice cannot be mailed as it stands (rejected since, or a bug): for good.
        Err(why) => {
            return ledger
                .delivery_failed(d.id, &why, true, retry_delay, Utc::now())
                .map_err(|e| (d.clone(), e.to_string()));
        }
    };
    match mailer.send(&message) {
        Ok(_) => ledger
            .delivery_sent(d.id, Utc::now())
            .map_err(|e| (d.clone(), e.to_string())),
        Err(e) => {
            let why = e.to_string();
            let permanent = e.is_permanent();
            let reached = e.is_permanent() || e.is_transient();
            let after = ledger
                .delivery_failed(d.id, &why, permanent, retry_delay, Utc::now())
                .map_err(|e| (d.clone(), e.to_string()))?;
            if reached {
                Ok(after)
            } else {
                Err((after, why))
            }
        }
    }
}

/// The settings and a transport that reached the server and logged in, or why not.
fn connect(ledger: &Ledger, key: &DeviceKey) -> Result<(MailSettings, SmtpTransport), String> {
    let settings = match ledger.mail_settings() {
        Ok(Some(s)) => s,
        Ok(None) => return Err(Msg::new("mail_not_set").text(Lang::En)),
        Err(e) => return Err(e.to_string()),
    };
    let mailer = ledger
        .mail_password(key)
        .map_err(|e| e.to_string())
        .and_then(|p| transport(&settings, &p))?;
    // Connect, TLS and login once before any delivery is tried: a server that is down or
    // a password that no longer works is the server's problem, not each delivery's, and
    // uses up no delivery's attempts.
    match mailer.test_connection() {
        Ok(true) => Ok((settings, mailer)),
        Ok(false) => Err("the mail server closed the connection".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Sends every delivery due now, one claim at a time, each claimed at the time it is
/// taken. Nothing due: no connection is made. The server unreachable or refusing the
/// login: the run stops and the deliveries keep their attempts.
pub fn send_queued(ledger: &Ledger, key: &DeviceKey) -> MailRun {
    let mut run = MailRun::default();
    if !matches!(ledger.deliveries_due(Utc::now()), Ok(n) if n > 0) {
        return run;
    }
    let (settings, mailer) = match connect(ledger, key) {
        Ok(c) => c,
        Err(why) => {
            run.stopped = Some(why);
            return run;
        }
    };
    let mut tried = Vec::new();
    loop {
        let claimed = match ledger.claim_delivery(Utc::now(), CLAIM_HOLD) {
            Ok(Some(d)) if !tried.contains(&d.id) => d,
            // Nothing left, or only what this run already tried (due again at once
            // under a zero backoff): the rest waits for the next run.
            Ok(_) => break,
            Err(e) => {
                run.stopped = Some(e.to_string());
                break;
            }
        };
        tried.push(claimed.id);
        if let Err(why) = tally(&mut run, send_one(ledger, &settings, &mailer, &claimed)) {
            run.stopped = Some(why);
            break;
        }
    }
    run
}

/// Counts one outcome; Err(why) when the server could not be reached.
fn tally(run: &mut MailRun, outcome: Result<Delivery, (Delivery, String)>) -> Result<(), String> {
    let (d, unreachable) = match outcome {
        Ok(d) => (d, None),
        Err((d, why)) => (d, Some(why)),
    };
    match d.status {
        DeliveryStatus::Sent => run.sent += 1,
        DeliveryStatus::Failed => run.failed += 1,
        DeliveryStatus::Queued => run.retrying += 1,
    }
    unreachable.map_or(Ok(()), Err)
}

/// Sends the delivery `d` the caller holds (claimed with it when queued).
fn send_held(ledger: &Ledger, key: &DeviceKey, d: &Delivery) {
    match connect(ledger, key) {
        Ok((settings, mailer)) => {
            let _ = send_one(ledger, &settings, &mailer, d);
        }
        // Recorded on the delivery, so the clerk sees why it waits; retried with backoff.
        Err(why) => {
            let _ = ledger.delivery_failed(d.id, &why, false, retry_delay, Utc::now());
        }
    }
}

/// `kaipiao smtp set` and the app's settings: the settings checked, then stored with
/// the password sealed under the device key. An empty `password` with settings already
/// stored keeps the old password.
pub fn set_settings(
    ledger: &Ledger,
    key: &DeviceKey,
    settings: &MailSettings,
    password: Option<&str>,
    now: DateTime<Utc>,
    lang: Lang,
) -> Result<(), MailError> {
    check_address(&settings.from, "from")?;
    let refuse = |field: &str, msg: Msg| MailError {
        code: Code::InvalidRequest,
        field: field.into(),
        msg: MailText::Msg(msg),
    };
    let host = settings.host.trim();
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        return Err(refuse("host", Msg::new("invalid_request-smtp-host")));
    }
    if settings.port == 0 {
        return Err(refuse("port", Msg::new("invalid_request-smtp-port")));
    }
    let user = settings.user.trim();
    // A login goes in the clear only to this machine: elsewhere TLS or STARTTLS.
    let loopback = matches!(host, "127.0.0.1" | "::1" | "[::1]" | "localhost");
    if settings.security == MailSecurity::Plain && !user.is_empty() && !loopback {
        return Err(refuse(
            "security",
            Msg::new("invalid_request-smtp-plain-login"),
        ));
    }
    let stored = ledger
        .mail_settings()
        .map_err(|e| MailError::ledger(e, lang))?;
    let password = match password {
        Some(p) if !p.is_empty() => zeroize::Zeroizing::new(p.to_string()),
        // The stored password is kept only for the server and login it was given for,
        // never handed to another host or sent less protected than before.
        _ => match stored {
            Some(old)
                if old.host == host
                    && old.user == user
                    && (old.security == settings.security
                        || settings.security != MailSecurity::Plain) =>
            {
                ledger
                    .mail_password(key)
                    .map_err(|e| MailError::ledger(e, lang))?
            }
            _ if user.is_empty() => zeroize::Zeroizing::new(String::new()),
            _ => {
                return Err(refuse(
                    "password",
                    Msg::new("invalid_request-smtp-password"),
                ))
            }
        },
    };
    let settings = MailSettings {
        host: host.to_string(),
        from: settings.from.trim().to_string(),
        user: user.to_string(),
        ..settings.clone()
    };
    ledger
        .set_mail_settings(&settings, &password, key, now)
        .map_err(|e| MailError::ledger(e, lang))
}

/// `kaipiao deliver` and the app's Email…: the address checked, the delivery queued
/// (or the one already queued or sent to it answered, unless `again`), then tried at
/// once. The delivery as it stands afterwards.
pub fn deliver(
    ledger: &Ledger,
    key: &DeviceKey,
    number: &str,
    address: &str,
    again: bool,
    lang: Lang,
) -> Result<Delivery, MailError> {
    let address = check_address(address, "email")?;
    if ledger
        .mail_settings()
        .map_err(|e| MailError::ledger(e, lang))?
        .is_none()
    {
        return Err(MailError {
            code: Code::MailNotSet,
            field: "smtp".into(),
            msg: MailText::Msg(Msg::new("mail_not_set")),
        });
    }
    let lang_code = crate::config::lang_code(lang);
    let (queued, held) = ledger
        .queue_delivery(
            number,
            address.as_ref(),
            lang_code,
            again,
            Some(CLAIM_HOLD),
            Utc::now(),
        )
        .map_err(|e| MailError::ledger(e, lang))?;
    // Held: sent here and now. Queued but held by another sender (the app's mail thread
    // sending it this moment): answered as it stands.
    if held {
        send_held(ledger, key, &queued);
    }
    ledger
        .delivery(queued.id)
        .map_err(|e| MailError::ledger(e, lang))
}

// -------------------------------------------------------------------------------------
// The app: settings, Email…, and the mail thread that sends what is queued.
// -------------------------------------------------------------------------------------

use crate::dto::{DeliveryDto, SmtpSettingsDto, SmtpSettingsRequest};
use crate::engine::{lock, Engine};
use crate::error::{DeskError, DeskResult};
use std::sync::{mpsc, Arc, Weak};

/// How often the mail thread looks for deliveries whose time has come (shorter when
/// `KAIPIAO_MAIL_RETRY_MS` shortens the backoff, for tests).
fn look_every() -> Duration {
    let every = Duration::from_secs(30);
    std::env::var("KAIPIAO_MAIL_RETRY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|ms| Duration::from_millis(ms.max(100)).min(every))
        .unwrap_or(every)
}

impl DeliveryDto {
    pub fn of(d: &Delivery) -> DeliveryDto {
        DeliveryDto {
            id: d.id,
            number: d.number.clone(),
            address: d.address.clone(),
            status: match d.status {
                DeliveryStatus::Queued => "queued",
                DeliveryStatus::Sent => "sent",
                DeliveryStatus::Failed => "failed",
            }
            .to_string(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at.clone(),
            last_error: d.last_error.clone(),
            created_at: d.created_at.clone(),
            sent_at: d.sent_at.clone(),
        }
    }
}

impl Engine {
    fn mail_error(&self, e: MailError) -> DeskError {
        DeskError::new(e.code, &e.field, e.text(self.lang()))
    }

    /// A connection of its own for a send: the SMTP conversation never holds the
    /// writer connection the clerk's issuing uses.
    fn mail_ledger(&self) -> DeskResult<Ledger> {
        Ledger::open(self.data_dir()).map_err(|e| self.ledger_error(e))
    }

    /// The shop's SMTP settings (never the password); None until set.
    pub fn smtp_settings(&self) -> DeskResult<Option<SmtpSettingsDto>> {
        let s = self
            .reader()
            .mail_settings()
            .map_err(|e| self.ledger_error(e))?;
        Ok(s.map(|s| SmtpSettingsDto {
            host: s.host,
            port: s.port,
            user: s.user,
            from: s.from,
            security: s.security.as_str().to_string(),
            updated_at: s.updated_at,
        }))
    }

    /// Stores the SMTP settings; an empty password keeps the stored one.
    pub fn set_smtp_settings(
        &self,
        req: SmtpSettingsRequest,
    ) -> DeskResult<Option<SmtpSettingsDto>> {
        let key = self.key()?;
        let security = MailSecurity::parse(&req.security).ok_or_else(|| {
            DeskError::say(
                Code::InvalidRequest,
                "security",
                self.lang(),
                Msg::new("invalid_request-smtp-security"),
            )
        })?;
        let settings = MailSettings {
            host: req.host,
            port: req.port,
            user: req.user,
            from: req.from,
            security,
            updated_at: String::new(),
        };
        set_settings(
            &self.ledger(),
            &key,
            &settings,
            req.password.as_deref(),
            Utc::now(),
            self.lang(),
        )
        .map_err(|e| self.mail_error(e))?;
        self.smtp_settings()
    }

    /// Email…: queued, then tried at once; the delivery as it stands afterwards (sent,
    /// queued with the reason and the next attempt, or failed with the reason).
    pub fn deliver(&self, number: &str, address: &str, again: bool) -> DeskResult<DeliveryDto> {
        let key = self.key()?;
        let ledger = self.mail_ledger()?;
        let d = deliver(&ledger, &key, number, address, again, self.lang())
            .map_err(|e| self.mail_error(e))?;
        Ok(DeliveryDto::of(&d))
    }

    /// The mail thread's turn: whatever is due, while the key is unlocked.
    fn send_due_mail(&self, ledger: &Ledger) -> MailRun {
        let Ok(key) = self.key() else {
            return MailRun::default();
        };
        send_queued(ledger, &key)
    }
}

/// Starts the mail thread: every [`look_every`], the deliveries whose time has come are
/// sent, for as long as the engine lives. Dropping the returned sender stops it.
fn start(engine: Weak<Engine>, dir: std::path::PathBuf) -> std::io::Result<mpsc::Sender<()>> {
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("kaipiao-mail".into())
        .spawn(move || {
            let Ok(ledger) = Ledger::open(&dir) else {
                return;
            };
            loop {
                match engine.upgrade() {
                    Some(engine) => {
                        engine.send_due_mail(&ledger);
                    }
                    None => return,
                }
                match stopped.recv_timeout(look_every()) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            }
        })?;
    Ok(stop)
}

/// Keeps the mail thread's handle in the engine (see `Engine::open`).
pub(crate) fn attach(engine: &Arc<Engine>) {
    if let Ok(stop) = start(Arc::downgrade(engine), engine.data_dir().to_path_buf()) {
        *lock(&engine.mail_stop) = Some(stop);
    }
}
