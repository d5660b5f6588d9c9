//! The error codes are checked from outside (SPEC 7 and 9, docs/PROTOCOL.md, docs/CLI.md):
//! every string here is pinned byte for byte. A failure means a code's spelling changed;
//! change it back rather than this test.

use kaipiao_core::{Code, FieldError};
use std::collections::HashSet;
use std::str::FromStr;

/// Every code and the string it must serialise to. No wildcard arm: a new variant does not
/// compile until its string is pinned here too.
fn pinned(code: Code) -> &'static str {
    match code {
        Code::InvalidRequest => "invalid_request",
        Code::IdempotencyKeyMissing => "idempotency_key_missing",
        Code::IdempotencyKeyMismatch => "idempotency_key_mismatch",
        Code::ClockSkew => "clock_skew",
        Code::UnknownDevice => "unknown_device",
        Code::BadRequestSignature => "bad_request_signature",
        Code::ReplayedRequest => "replayed_request",
        Code::EnrollmentTokenInvalid => "enrollment_token_invalid",
        Code::Forbidden => "forbidden",
        Code::NotFound => "not_found",
        Code::MethodNotAllowed => "method_not_allowed",
        Code::ChainGap => "chain_gap",
        Code::RequestInProgress => "request_in_progress",
        Code::NumbersExhausted => "numbers_exhausted",
        Code::PayloadTooLarge => "payload_too_large",
        Code::Integrity => "integrity",
        Code::IdempotencyKeyReused => "idempotency_key_reused",
        Code::RateLimited => "rate_limited",
        Code::Internal => "internal",
        Code::Overloaded => "overloaded",
        Code::Outage => "outage",
        Code::Unavailable => "unavailable",
        Code::PrefixesExhausted => "prefixes_exhausted",
        Code::InvalidVersion => "invalid_version",
        Code::InvalidCurrency => "invalid_currency",
        Code::NotNormalized => "not_normalized",
        Code::MissingField => "missing_field",
        Code::TooLong => "too_long",
        Code::ControlCharacter => "control_character",
        Code::InvalidTaxId => "invalid_tax_id",
        Code::LineCount => "line_count",
        Code::InvalidTaxCode => "invalid_tax_code",
        Code::InvalidTaxRate => "invalid_tax_rate",
        Code::InvalidTreatment => "invalid_treatment",
        Code::SpecialTreatment => "special_treatment",
        Code::InvalidNumber => "invalid_number",
        Code::OutOfRange => "out_of_range",
        Code::InvalidQuantity => "invalid_quantity",
        Code::TotalMismatch => "total_mismatch",
        Code::OriginalUnknown => "original_unknown",
        Code::OriginalNotAllowed => "original_not_allowed",
        Code::OriginalIsCredit => "original_is_credit",
        Code::OriginalRejected => "original_rejected",
        Code::CreditLineNotInOriginal => "credit_line_not_in_original",
        Code::CreditPriceMismatch => "credit_price_mismatch",
        Code::CreditExceedsOriginal => "credit_exceeds_original",
        Code::InvalidId => "invalid_id",
        Code::InvalidTimestamp => "invalid_timestamp",
        Code::IssuedInFuture => "issued_in_future",
        Code::IssuedAtBackwards => "issued_at_backwards",
        Code::IssuedBeforeLease => "issued_before_lease",
        Code::SingleInvoiceCap => "single_invoice_cap",
        Code::SellerMismatch => "seller_mismatch",
        Code::InvalidType => "invalid_type",
        Code::UnknownField => "unknown_field",
        Code::InvalidKind => "invalid_kind",
        Code::TooManyDecimals => "too_many_decimals",
        Code::InvalidLine => "invalid_line",
        Code::RoundingTolerance => "rounding_tolerance",
        Code::CreditPriceIncludesTax => "credit_price_includes_tax",
        Code::InvalidUnitPrice => "invalid_unit_price",
        Code::ClockBehind => "clock_behind",
        Code::ClockAhead => "clock_ahead",
        Code::InvalidLease => "invalid_lease",
        Code::OfflineHoursExceeded => "offline_hours_exceeded",
        Code::OfflineAmountExceeded => "offline_amount_exceeded",
        Code::NotInitialized => "not_initialized",
        Code::AlreadyInitialized => "already_initialized",
        Code::NotEnrolled => "not_enrolled",
        Code::NoNumbers => "no_numbers",
        Code::PinnedKeyUnreadable => "pinned_key_unreadable",
        Code::Storage => "storage",
        Code::BadReceipt => "bad_receipt",
        Code::Key => "key",
        Code::WrongPassphrase => "wrong_passphrase",
        Code::PassphraseEmpty => "passphrase_empty",
        Code::Busy => "busy",
        Code::SchemaTooNew => "schema_too_new",
        Code::Database => "database",
        Code::Io => "io",
        Code::InvalidDate => "invalid_date",
        Code::ClockInvalid => "clock_invalid",
        Code::InvalidAttempts => "invalid_attempts",
        Code::LeaseSignatureInvalid => "lease_signature_invalid",
        Code::LeaseWrongDevice => "lease_wrong_device",
        Code::LeaseConflict => "lease_conflict",
        Code::LeaseOverlap => "lease_overlap",
        Code::InvalidServer => "invalid_server",
        Code::InvalidText => "invalid_text",
        Code::InvalidDeviceId => "invalid_device_id",
        Code::InvalidPublicKey => "invalid_public_key",
        Code::DeviceIdChanged => "device_id_changed",
        Code::AuthorityKeyChanged => "authority_key_changed",
        Code::Unreachable => "unreachable",
        Code::InvalidResponse => "invalid_response",
        Code::NoServers => "no_servers",
        Code::AlreadyEnrolled => "already_enrolled",
        Code::AuthorityKeyMismatch => "authority_key_mismatch",
        Code::WrongKey => "wrong_key",
        Code::NoUsableEndpoint => "no_usable_endpoint",
        Code::Unauthorized => "unauthorized",
        Code::Unrecognized => "unrecognized",
        Code::BadLease => "bad_lease",
        Code::HeadMismatch => "head_mismatch",
        Code::ReceiptMismatch => "receipt_mismatch",
        Code::UnexpectedAnswer => "unexpected_answer",
        Code::UnsignedVerdict => "unsigned_verdict",
        Code::InvalidJson => "invalid_json",
        Code::UnreadableFile => "unreadable_file",
        Code::PassphraseMismatch => "passphrase_mismatch",
        Code::InvalidAmount => "invalid_amount",
        Code::Transient => "transient",
        Code::QueueStopped => "queue_stopped",
        Code::NotReconciled => "not_reconciled",
        Code::Locked => "locked",
        Code::DataDirPinned => "data_dir_pinned",
        Code::InvalidPath => "invalid_path",
        Code::WeakPassphrase => "weak_passphrase",
        Code::InvalidStatus => "invalid_status",
        Code::InvalidLanguage => "invalid_language",
        Code::InvalidTheme => "invalid_theme",
        Code::NotCreditable => "not_creditable",
        Code::SyncStopped => "sync_stopped",
        Code::PendingInvoices => "pending_invoices",
        Code::NotPrintable => "not_printable",
        Code::NumbersGivenUp => "numbers_given_up",
        Code::MailNotSet => "mail_not_set",
        Code::InvalidEmail => "invalid_email",
        Code::DeliveryFailed => "delivery_failed",
        Code::InvalidWorkbook => "invalid_workbook",
        Code::InvalidCell => "invalid_cell",
        Code::SerialConflict => "serial_conflict",
        Code::InvalidCreditReason => "invalid_credit_reason",
    }
}

fn serialised(code: Code) -> String {
    serde_json::to_string(&code).expect("a code serialises")
}

fn round_trips(text: &str) {
    let code = Code::parse(text).unwrap_or_else(|| panic!("{text:?} is no Code"));
    assert_eq!(serialised(code), format!("\"{text}\""), "{text}");
    assert_eq!(code.as_str(), text);
    assert_eq!(code.to_string(), text);
    let back: Code = serde_json::from_str(&format!("\"{text}\"")).expect("deserialises");
    assert_eq!(back, code);
    assert_eq!(Code::from_str(text), Ok(code));
}

#[test]
fn every_code_serialises_to_its_pinned_string() {
    for &code in Code::ALL {
        let text = pinned(code);
        assert_eq!(serialised(code), format!("\"{text}\""), "{code:?}");
        assert_eq!(code.as_str(), text, "{code:?}");
        assert_eq!(code.to_string(), text, "{code:?}");
        round_trips(text);
    }
}

#[test]
fn every_code_is_listed_once_and_snake_case() {
    let texts: HashSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(texts.len(), Code::ALL.len(), "two variants share a string");
    assert_eq!(Code::ALL.len(), 133);
    for &code in Code::ALL {
        // The string is the snake_case of the variant's name, as `rename_all =
        // "snake_case"` would make it.
        let mut snake = String::new();
        for (i, ch) in format!("{code:?}").chars().enumerate() {
            if ch.is_ascii_uppercase() {
                if i > 0 {
                    snake.push('_');
                }
                snake.push(ch.to_ascii_lowercase());
            } else {
                snake.push(ch);
            }
        }
        assert_eq!(code.as_str(), snake);
    }
}

/// SPEC 7: the refusals of the wire protocol, with the extensions of docs/PROTOCOL.md.
#[test]
fn spec_7_wire_codes_round_trip() {
    for text in [
        "idempotency_key_missing",
        "idempotency_key_mismatch",
        "invalid_request",
        "payload_too_large",
        "idempotency_key_reused",
        "request_in_progress",
        "integrity",
        "chain_gap",
        "overloaded",
        "rate_limited",
        "clock_skew",
        "unknown_device",
        "bad_request_signature",
        "replayed_request",
        "enrollment_token_invalid",
        "not_found",
        // docs/PROTOCOL.md section 3: extensions and taxd's own.
        "forbidden",
        "method_not_allowed",
        "numbers_exhausted",
        "internal",
        "outage",
        "unavailable",
        "prefixes_exhausted",
    ] {
        round_trips(text);
    }
}

/// The reasons a receipt from taxd can carry: kaipiao-core's rules and taxd's own checks.
#[test]
fn receipt_reason_codes_round_trip() {
    for text in [
        // kaipiao_core::rules::check_invoice
        "invalid_version",
        "invalid_currency",
        "not_normalized",
        "missing_field",
        "too_long",
        "control_character",
        "invalid_tax_id",
        "line_count",
        "invalid_tax_code",
        "invalid_tax_rate",
        "invalid_treatment",
        "special_treatment",
        "invalid_number",
        "out_of_range",
        "invalid_quantity",
        "total_mismatch",
        "original_unknown",
        "original_not_allowed",
        "original_is_credit",
        "original_rejected",
        "credit_line_not_in_original",
        "credit_price_mismatch",
        "credit_exceeds_original",
        // taxd's audit
        "invalid_id",
        "invalid_timestamp",
        "issued_in_future",
        "issued_at_backwards",
        "issued_before_lease",
        "single_invoice_cap",
        "seller_mismatch",
    ] {
        round_trips(text);
    }
}

/// SPEC 9 and docs/CLI.md: the `error.code` of `kaipiao --json`, by exit code.
#[test]
fn spec_9_cli_codes_round_trip() {
    for text in [
        // exit 2
        "invalid_tax_rate",
        "invalid_json",
        "unreadable_file",
        "no_numbers",
        "single_invoice_cap",
        "offline_hours_exceeded",
        "offline_amount_exceeded",
        "not_initialized",
        "already_initialized",
        "not_enrolled",
        "already_enrolled",
        "not_found",
        "invalid_server",
        "no_servers",
        "passphrase_mismatch",
        "enrollment_token_invalid",
        "invalid_amount",
        // exit 3
        "transient",
        "unreachable",
        // exit 4
        "integrity",
        "queue_stopped",
        "not_reconciled",
        "authority_key_mismatch",
        "wrong_key",
        "no_usable_endpoint",
        // exit 1
        "key",
        "busy",
        "bad_receipt",
        "invalid_response",
        "schema_too_new",
        "database",
        "io",
        "internal",
    ] {
        round_trips(text);
    }
}

#[test]
fn a_string_that_is_no_code_is_refused() {
    for text in [
        "",
        "Invalid_Request",
        "invalid-request",
        " not_found",
        "something_new",
    ] {
        assert_eq!(Code::parse(text), None, "{text:?}");
        assert!(Code::from_str(text).is_err(), "{text:?}");
        assert!(
            serde_json::from_str::<Code>(&format!("{text:?}")).is_err(),
            "{text:?}"
        );
    }
}

#[test]
fn codes_compare_with_strings_both_ways() {
    let code = Code::InvalidTaxId;
    assert_eq!(code, "invalid_tax_id");
    assert_eq!("invalid_tax_id", code);
    assert!(code == *"invalid_tax_id");
    assert_eq!(code, String::from("invalid_tax_id"));
    assert_ne!(code, "invalid_tax_rate");
    assert_eq!(String::from(code), "invalid_tax_id");
}

/// A field error keeps its JSON shape: `code` is the bare string.
#[test]
fn a_field_error_serialises_its_code_as_the_string() {
    let e = FieldError::new(Code::InvalidTaxRate, "lines[0].tax_rate", "en", "zh");
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"code":"invalid_tax_rate","field":"lines[0].tax_rate","en":"en","zh":"zh"}"#
    );
    assert_eq!(e.code, "invalid_tax_rate");
}
