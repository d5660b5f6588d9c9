//! kaipiao-tests: the end-to-end and fault tests over real processes (`tests/tests/`).
//!
//! Every test there drives the real `kaipiao` binary on a real SQLite ledger in a temp
//! directory against a real `taxd` on loopback, and checks the results from outside: exit
//! codes, JSON on stdout, the authority's answers over raw HTTP, the bytes of the database
//! file, and the independent Python verifier `verify_export.py` of SPEC 4.
//!
//! The harness itself is kaipiao-testkit. This library only re-exports, under the names the
//! end-to-end tests (and those of kaipiao-desk and kaipiao-app) use, the kit's face for
//! processes: drafts as JSON documents rather than typed ones, the CLI runner, the taxd
//! process and the verifier. It must never grow helpers of its own: they go in the kit.

pub use kaipiao_testkit::cli::*;
pub use kaipiao_testkit::documents::*;
pub use kaipiao_testkit::ids::{buyer_tax_id, invalid_tax_id, seller_tax_id, uscc};
pub use kaipiao_testkit::inspect::*;
pub use kaipiao_testkit::keys::PASSPHRASE;
pub use kaipiao_testkit::money::cents_of;
pub use kaipiao_testkit::process::*;
pub use kaipiao_testkit::smtp::SmtpServer;
pub use kaipiao_testkit::taxd::*;
pub use kaipiao_testkit::verifier::*;
pub use kaipiao_testkit::xlsx::{read_xlsx, write_xlsx};
