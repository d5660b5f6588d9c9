//! The one vocabulary of error and reason codes: every code that leaves a process (the
//! wire protocol, a receipt's reasons, the CLI's `--json`, the app's IPC) is a [`Code`].
//!
//! Each code is written once below, as the exact string it serialises to. Those strings
//! are checked from outside (SPEC 7 and 9, docs/PROTOCOL.md, docs/CLI.md): a variant may
//! be added, but a string is never changed. `crates/core/tests/codes.rs` pins every one.
//!
//! A code says what happened; the words for it are the message's business. The UI and
//! scripts branch on the code and never parse the message.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Declares [`Code`] from one table of `Variant = "string"`, so that the enum, its serde
/// names (and through them the TypeScript union), [`Code::as_str`], [`Code::parse`] and
/// [`Code::ALL`] can never disagree.
macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, )+) => {
        /// A stable machine code. Serialises to its snake_case string (the string in the
        /// table of `code.rs`), exactly as SPEC 7 and 9 spell it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "ts", derive(ts_rs::TS))]
        pub enum Code {
            $( $(#[$doc])* #[serde(rename = $text)] $variant, )+
        }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),+];

            /// The code as it goes over the wire, e.g. `"invalid_tax_id"`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( Code::$variant => $text, )+
                }
            }

            /// The code a string names, None for a string that is no code of ours (e.g. a
            /// code from a newer or another authority).
            pub fn parse(text: &str) -> Option<Code> {
                match text {
                    $( $text => Some(Code::$variant), )+
                    _ => None,
                }
            }
        }
    };
}

codes! {
    // ---- The wire protocol: an authority's refusals (SPEC 7, docs/PROTOCOL.md section 3).

    /// 400: a body that is not JSON or has the wrong shape; a bad admin update.
    InvalidRequest = "invalid_request",
    /// 400: a submission without a usable `Idempotency-Key`.
    IdempotencyKeyMissing = "idempotency_key_missing",
    /// 400: the key is not the envelope's `invoice.id`.
    IdempotencyKeyMismatch = "idempotency_key_mismatch",
    /// 401: a device-signed request more than 300 s from the authority's clock.
    ClockSkew = "clock_skew",
    /// 401: a device-signed request from a device the authority does not know.
    UnknownDevice = "unknown_device",
    /// 401: a `Kaipiao-*` header missing or malformed, or a signature that does not verify.
    BadRequestSignature = "bad_request_signature",
    /// 401: a device-signed request whose signature the authority has already seen within
    /// the skew window (a replay; every request carries a fresh `Kaipiao-Nonce`).
    ReplayedRequest = "replayed_request",
    /// 403: a wrong enrolment token.
    EnrollmentTokenInvalid = "enrollment_token_invalid",
    /// 403: another device's head; the admin API from a non-loopback peer.
    Forbidden = "forbidden",
    /// 404: no receipt for that invoice, no such endpoint. Also the ledger's and the app's
    /// "no such invoice / alert".
    NotFound = "not_found",
    /// 405: a known path with another method.
    MethodNotAllowed = "method_not_allowed",
    /// 409: a submission whose seq is ahead of the device's head + 1.
    ChainGap = "chain_gap",
    /// 409: the same idempotency key is being processed.
    RequestInProgress = "request_in_progress",
    /// 409: the device used all sequence numbers of its prefix.
    NumbersExhausted = "numbers_exhausted",
    /// 413: a body over the endpoint's limit.
    PayloadTooLarge = "payload_too_large",
    /// 422: a submission that cannot be authenticated or does not fit the chain or the
    /// leases. Also the ledger's own integrity failure (chain, hash, signature, receipt).
    Integrity = "integrity",
    /// 422: a different envelope under a key that already has a receipt.
    IdempotencyKeyReused = "idempotency_key_reused",
    /// 429: the per-device rate limit.
    RateLimited = "rate_limited",
    /// 500: the authority failed. Also a client's or the app's own unexpected failure.
    Internal = "internal",
    /// 503: the authority is over capacity.
    Overloaded = "overloaded",
    /// 503: taxd's simulated outage.
    Outage = "outage",
    /// 503: taxd's injected random failure.
    Unavailable = "unavailable",
    /// 503: taxd has no number prefix left for a new device.
    PrefixesExhausted = "prefixes_exhausted",

    // ---- Business rules: a rejected receipt's reasons, and the same rules as the client
    // ---- applies them to a draft before issuing (SPEC 2, kaipiao_core::rules, taxd).

    /// The invoice's format version is not one the rules know.
    InvalidVersion = "invalid_version",
    /// Not CNY.
    InvalidCurrency = "invalid_currency",
    /// A party as signed is not in its normalised form.
    NotNormalized = "not_normalized",
    /// A required field is empty or absent.
    MissingField = "missing_field",
    /// A text over its length limit.
    TooLong = "too_long",
    /// A text with a line break, tab or other control character.
    ControlCharacter = "control_character",
    /// A tax ID that fails GB 32100-2015.
    InvalidTaxId = "invalid_tax_id",
    /// No lines, or more than allowed.
    LineCount = "line_count",
    /// A tax classification code that is not 19 digits.
    InvalidTaxCode = "invalid_tax_code",
    /// Not one of the VAT rates of SPEC 2.
    InvalidTaxRate = "invalid_tax_rate",
    /// A treatment that does not fit the rate.
    InvalidTreatment = "invalid_treatment",
    /// A special treatment on a special invoice (专用发票).
    SpecialTreatment = "special_treatment",
    /// Not a decimal number.
    InvalidNumber = "invalid_number",
    /// A number outside the range the rules allow.
    OutOfRange = "out_of_range",
    /// A quantity of the wrong sign for the kind of invoice (corrections are credit notes).
    InvalidQuantity = "invalid_quantity",
    /// Totals that are not the sum of the lines.
    TotalMismatch = "total_mismatch",
    /// A credit note's original that is not an invoice of this device.
    OriginalUnknown = "original_unknown",
    /// An original on an invoice that is not a credit note.
    OriginalNotAllowed = "original_not_allowed",
    /// A draft's `credit_reason` that is not 01-04, or one on an invoice that is not a
    /// credit note.
    InvalidCreditReason = "invalid_credit_reason",
    /// A credit note against a credit note.
    OriginalIsCredit = "original_is_credit",
    /// A credit note against a rejected invoice.
    OriginalRejected = "original_rejected",
    /// A credit line with no matching line on the original.
    CreditLineNotInOriginal = "credit_line_not_in_original",
    /// A credit line at another price than the original's.
    CreditPriceMismatch = "credit_price_mismatch",
    /// A credit beyond what is left of the original.
    CreditExceedsOriginal = "credit_exceeds_original",
    /// An invoice id that is not a lowercase hyphenated UUID (taxd).
    InvalidId = "invalid_id",
    /// An `issued_at` that is not RFC 3339 UTC with whole seconds (taxd).
    InvalidTimestamp = "invalid_timestamp",
    /// An `issued_at` more than 300 s after the authority's clock (taxd).
    IssuedInFuture = "issued_in_future",
    /// An `issued_at` before the previous invoice's (taxd).
    IssuedAtBackwards = "issued_at_backwards",
    /// An `issued_at` more than 300 s before its number's lease was granted (taxd, SPEC
    /// 10: the authority checks the lease terms it can see).
    IssuedBeforeLease = "issued_before_lease",
    /// |total_amount| over the lease's single-invoice cap: a receipt's reason, and the
    /// issuing device's own refusal (SPEC 3).
    SingleInvoiceCap = "single_invoice_cap",
    /// A seller other than the one enrolled for the device (taxd).
    SellerMismatch = "seller_mismatch",

    // ---- Drafts: what refuses a draft before it becomes an invoice (client only).

    /// A draft member of the wrong JSON type.
    InvalidType = "invalid_type",
    /// A draft member the format does not have.
    UnknownField = "unknown_field",
    /// Not `ordinary`, `special` or `credit`.
    InvalidKind = "invalid_kind",
    /// A number with more decimal places than allowed.
    TooManyDecimals = "too_many_decimals",
    /// A line whose amounts cannot be computed.
    InvalidLine = "invalid_line",
    /// Amounts that rounding cannot reconcile with the price and quantity.
    RoundingTolerance = "rounding_tolerance",
    /// `price_includes_tax` on a credit note: credit lines carry the original's
    /// tax-exclusive price.
    CreditPriceIncludesTax = "credit_price_includes_tax",
    /// A negative unit price.
    InvalidUnitPrice = "invalid_unit_price",
    /// This computer's clock is before the last invoice's `issued_at`.
    ClockBehind = "clock_behind",
    /// Issuance refused: the authority measured this device's clock more than 300 s
    /// ahead of its own, so the invoice would be rejected as `issued_in_future`.
    ClockAhead = "clock_ahead",

    // ---- Leases and the offline limits (SPEC 3).

    /// A lease whose terms are not well formed.
    InvalidLease = "invalid_lease",
    /// The offline window is used up: sync first.
    OfflineHoursExceeded = "offline_hours_exceeded",
    /// The offline amount cap would be exceeded: sync first.
    OfflineAmountExceeded = "offline_amount_exceeded",

    // ---- The ledger (kaipiao-ledger).

    /// The data directory has no device yet.
    NotInitialized = "not_initialized",
    /// The data directory already has a device.
    AlreadyInitialized = "already_initialized",
    /// The device is not enrolled with an authority.
    NotEnrolled = "not_enrolled",
    /// No invoice numbers left in any lease.
    NoNumbers = "no_numbers",
    /// The authority key pinned at enrolment cannot be read.
    PinnedKeyUnreadable = "pinned_key_unreadable",
    /// The storage cannot give the durability the ledger needs.
    Storage = "storage",
    /// A receipt that does not verify or does not match its invoice; also the alert raised
    /// for one.
    BadReceipt = "bad_receipt",
    /// The device key cannot be sealed or unsealed (no keyring, damaged file...).
    Key = "key",
    /// The passphrase does not open the sealed device key.
    WrongPassphrase = "wrong_passphrase",
    /// An empty passphrase where one is needed.
    PassphraseEmpty = "passphrase_empty",
    /// Another process is syncing this data directory.
    Busy = "busy",
    /// The ledger was written by a newer Kaipiao.
    SchemaTooNew = "schema_too_new",
    /// SQLite failed.
    Database = "database",
    /// A file could not be read or written.
    Io = "io",
    /// Not a date or an RFC 3339 time.
    InvalidDate = "invalid_date",
    /// This computer's clock is set before 1970.
    ClockInvalid = "clock_invalid",
    /// A failed attempt that stands for no request.
    InvalidAttempts = "invalid_attempts",
    /// A lease whose signature does not verify against the pinned key.
    LeaseSignatureInvalid = "lease_signature_invalid",
    /// A lease granted to another device.
    LeaseWrongDevice = "lease_wrong_device",
    /// Another lease under a stored `lease_id`.
    LeaseConflict = "lease_conflict",
    /// A lease whose numbers overlap a stored one.
    LeaseOverlap = "lease_overlap",
    /// Not an `http://` or `https://` server address (ledger and sync engine).
    InvalidServer = "invalid_server",
    /// A text with characters it may not have (a device name with a line break...).
    InvalidText = "invalid_text",
    /// A device id that is not a lowercase hyphenated UUID.
    InvalidDeviceId = "invalid_device_id",
    /// A public key that is not 32 bytes of standard base64.
    InvalidPublicKey = "invalid_public_key",
    /// The authority named another device id than the one enrolled.
    DeviceIdChanged = "device_id_changed",
    /// The authority key differs from the one pinned at enrolment.
    AuthorityKeyChanged = "authority_key_changed",

    // ---- The sync engine (kaipiao-sync) and the alerts it raises.

    /// No endpoint served the request before the call gave up.
    Unreachable = "unreachable",
    /// The authority's answer did not have the shape of SPEC 7.
    InvalidResponse = "invalid_response",
    /// No server is configured.
    NoServers = "no_servers",
    /// The device is already enrolled.
    AlreadyEnrolled = "already_enrolled",
    /// Two endpoints name different authority keys.
    AuthorityKeyMismatch = "authority_key_mismatch",
    /// The unsealed key is not the ledger's device key.
    WrongKey = "wrong_key",
    /// Every endpoint refused the device.
    NoUsableEndpoint = "no_usable_endpoint",
    /// A 401 without an error code of its own.
    Unauthorized = "unauthorized",
    /// An error code the authority sent that is none of the above (a newer or another
    /// authority): the error keeps the authority's own string for its message.
    Unrecognized = "unrecognized",
    /// Alert: a lease the authority granted was refused.
    BadLease = "bad_lease",
    /// Alert: the authority's chain head differs from the local one.
    HeadMismatch = "head_mismatch",
    /// Alert: reconciliation found a receipt other than the stored one.
    ReceiptMismatch = "receipt_mismatch",
    /// Alert: reconciliation got an answer it cannot read.
    UnexpectedAnswer = "unexpected_answer",
    /// Alert: an answer that would stop the queue came without the authority's signature
    /// about the invoice sent (SPEC 10); the endpoint was not used again and the queue
    /// was not stopped.
    UnsignedVerdict = "unsigned_verdict",

    // ---- The `kaipiao` command line (SPEC 9, docs/CLI.md).

    /// A draft that is not valid JSON.
    InvalidJson = "invalid_json",
    /// A file that cannot be read.
    UnreadableFile = "unreadable_file",
    /// The two passphrases typed differ (also the app's set-up form).
    PassphraseMismatch = "passphrase_mismatch",
    /// `words`: an amount that is not a decimal with at most 2 places.
    InvalidAmount = "invalid_amount",
    /// Work remains for a transient reason (exit 3).
    Transient = "transient",
    /// `sync`: the queue is stopped, a human must look (exit 4).
    QueueStopped = "queue_stopped",
    /// `reconcile`: not everything is accounted for (exit 4).
    NotReconciled = "not_reconciled",
    /// An alert, not an error: `restore` or `queue resume` gave up numbers a lost or newer
    /// copy of the device may have used (the gap in the numbering, explained).
    NumbersGivenUp = "numbers_given_up",
    /// `pdf`: an invoice that cannot be printed as an invoice (a rejected one), or a
    /// character the invoice font lacks, named with its field (exit 2).
    NotPrintable = "not_printable",
    /// `restore`: the ledger it would replace still holds invoices the authority has not
    /// received (exit 2; `--replace-pending` replaces it anyway, kept aside).
    PendingInvoices = "pending_invoices",
    /// `deliver`, the app's Email…: no SMTP settings yet (`kaipiao smtp set`; exit 2).
    MailNotSet = "mail_not_set",
    /// An email address (`--email`, `--from`) that is not one (exit 2).
    InvalidEmail = "invalid_email",
    /// `deliver`: the SMTP server refused the message for good, or it kept failing until
    /// the delivery was given up (exit 4; the reason is in the delivery).
    DeliveryFailed = "delivery_failed",
    /// `import --xlsx`: a file that is not a workbook in the template's layout (no such
    /// sheet, no header row, a required column missing, too large; exit 2).
    InvalidWorkbook = "invalid_workbook",
    /// `import --xlsx`: a cell whose value cannot be read as its column asks (a date, a
    /// boolean, an error, a number where digits must be text; exit 2).
    InvalidCell = "invalid_cell",
    /// `import --xlsx`: a 发票流水号 used twice in the workbook, or issued before with
    /// other content (exit 2).
    SerialConflict = "serial_conflict",

    // ---- The desktop app (kaipiao-desk, src-tauri).

    /// The device key has not been unlocked yet.
    Locked = "locked",
    /// The data directory is fixed by the environment and cannot be changed.
    DataDirPinned = "data_dir_pinned",
    /// A path that cannot be a data directory.
    InvalidPath = "invalid_path",
    /// A passphrase too short to seal the device key.
    WeakPassphrase = "weak_passphrase",
    /// An invoice status filter that is not one.
    InvalidStatus = "invalid_status",
    /// A language setting that is not one.
    InvalidLanguage = "invalid_language",
    /// A theme setting that is not one.
    InvalidTheme = "invalid_theme",
    /// No credit note may be issued against this invoice.
    NotCreditable = "not_creditable",
    /// A sync run was interrupted before it could report.
    SyncStopped = "sync_stopped",
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is no [`Code`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Kaipiao error code")]
pub struct UnknownCode(pub String);

impl FromStr for Code {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Code, UnknownCode> {
        Code::parse(s).ok_or_else(|| UnknownCode(s.to_string()))
    }
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl From<Code> for String {
    fn from(code: Code) -> String {
        code.as_str().to_string()
    }
}

// Comparisons with strings, so that `assert_eq!(e.code, "invalid_tax_id")` reads as before.
impl PartialEq<str> for Code {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Code {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Code {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Code> for str {
    fn eq(&self, other: &Code) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Code> for &str {
    fn eq(&self, other: &Code) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Code> for String {
    fn eq(&self, other: &Code) -> bool {
        self == other.as_str()
    }
}
