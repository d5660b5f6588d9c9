//! What only the sync tests need on top of kaipiao-testkit: the kit's taxd as these async
//! tests drive it.
#![allow(dead_code)]

use std::ops::Deref;
use std::path::Path;

/// The kit's taxd with `url` as a field, the admin faults API called without blocking the
/// runtime (the kit's blocking client must not run inside a tokio test), and `stop` as a
/// crash (SIGKILL, not the kit's SIGTERM): "the primary dies".
pub struct Taxd {
    pub url: String,
    taxd: kaipiao_testkit::taxd::Taxd,
}

impl Taxd {
    pub fn start(args: &[&str]) -> Taxd {
        kaipiao_testkit::taxd::Taxd::start(args).into()
    }

    pub fn start_on(db: &Path, args: &[&str]) -> Taxd {
        kaipiao_testkit::taxd::Taxd::start_on(db, args).into()
    }

    pub fn start_at(db: &Path, listen: &str, args: &[&str]) -> Taxd {
        kaipiao_testkit::taxd::Taxd::start_at(db, listen, args).into()
    }

    pub fn stop(&mut self) {
        self.taxd.kill9();
    }

    /// `PUT /admin/faults`.
    pub async fn faults(&self, update: serde_json::Value) {
        let r = reqwest::Client::new()
            .put(format!("{}/admin/faults", self.url))
            .json(&update)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "admin faults: {}", r.status());
    }
}

impl From<kaipiao_testkit::taxd::Taxd> for Taxd {
    fn from(taxd: kaipiao_testkit::taxd::Taxd) -> Taxd {
        Taxd {
            url: taxd.url(),
            taxd,
        }
    }
}

impl Deref for Taxd {
    type Target = kaipiao_testkit::taxd::Taxd;

    fn deref(&self) -> &Self::Target {
        &self.taxd
    }
}
