//! kaipiao-core: the rules of a Kaipiao invoice, shared by the client and the sandbox
//! authority so that what the client accepts the authority accepts.
//!
//! It holds the invoice model, decimal money and VAT computation, draft validation, the
//! Chinese capitals, the tax-ID check, RFC 8785 canonical bytes, SHA-256 hashes, Ed25519
//! signatures, the hash chain, the lease model with its offline limits, and the wire types
//! of SPEC section 7.
//!
//! It must stay pure: no clock, no randomness, no I/O, no async. Time, ids and keys are
//! passed in by the caller. That is what makes it property-testable and identical in
//! `taxd` and in the client.

pub mod admission;
pub mod canonical;
pub mod code;
pub mod draft;
pub mod error;
pub mod i18n;
pub mod lease;
pub mod model;
pub mod money;
pub mod rules;
pub mod server;
pub mod sign;
pub mod summary;
pub mod taxid;
pub mod time;
pub mod wire;
pub mod words;

pub use canonical::{canonical_bytes, sha256_hex};
pub use code::Code;
pub use draft::{build_invoice, compute_lines, CreditContext, Draft, DraftLine, IssueContext};
pub use error::{FieldError, Lang};
pub use i18n::{tr, Arg, Msg};
pub use lease::{Lease, LeaseTerms, LimitWarning, OfflineExposure};
pub use model::{Envelope, Invoice, Kind, Line, OriginalRef, Party, Treatment};
pub use sign::{DeviceKey, PublicKey};

/// The hash of "no previous invoice": 64 zeros (SPEC 4).
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The VAT rates of SPEC 2, as they are written.
pub const RATES: [&str; 8] = ["0.13", "0.09", "0.06", "0.05", "0.03", "0.015", "0.01", "0"];
