//! The authority in-process: taxd's router on a temp database, driven with `oneshot`
//! without a socket, and a device (a key and its own chain, no ledger) that enrols, takes
//! leases and issues real invoices with kaipiao-core.

use crate::fixtures::seller;
use axum::body::{Body, Bytes};
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use chrono::Utc;
use http_body_util::BodyExt;
use kaipiao_core::draft::{build_invoice, CreditContext, Draft, IssueContext};
use kaipiao_core::lease::Lease;
use kaipiao_core::model::{invoice_number, Envelope, Invoice, Party};
use kaipiao_core::sign::{seal_invoice, sign_request_with_nonce, DeviceKey, PublicKey};
use kaipiao_core::wire::idempotency_header;
use kaipiao_core::ZERO_HASH;
use serde_json::{json, Value};
use std::net::SocketAddr;
use taxd::{router, AppState, Config};
use tempfile::TempDir;
use tower::ServiceExt;

/// The enrolment token of an in-process authority: taxd's default, what `Config::new`
/// accepts.
pub const TOKEN: &str = "sandbox";

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The body as text, exactly as sent.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn field(&self) -> String {
        self.json()["error"]["field"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// An authority on a temp database, driven in-process.
pub struct Authority {
    pub dir: TempDir,
    pub state: AppState,
    pub app: Router,
}

impl Default for Authority {
    fn default() -> Authority {
        Authority::new()
    }
}

impl Authority {
    pub fn new() -> Authority {
        Authority::with(|_| {})
    }

    pub fn with(adjust: impl FnOnce(&mut Config)) -> Authority {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path().join("taxd.db"));
        adjust(&mut config);
        Authority::open_in(dir, config)
    }

    pub fn open_in(dir: TempDir, config: Config) -> Authority {
        let state = AppState::open(config).unwrap();
        let app = app(state.clone(), [127, 0, 0, 1]);
        Authority { dir, state, app }
    }

    /// A second authority process on the same database.
    pub fn sibling(&self) -> (AppState, Router) {
        self.sibling_with(|_| {})
    }

    /// A second authority process on the same database, with its own flags.
    pub fn sibling_with(&self, adjust: impl FnOnce(&mut Config)) -> (AppState, Router) {
        let mut config = Config::new(self.db_path());
        adjust(&mut config);
        let state = AppState::open(config).unwrap();
        (state.clone(), app(state, [127, 0, 0, 1]))
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("taxd.db")
    }

    pub async fn call(&self, req: Request<Body>) -> Reply {
        call(&self.app, req).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    /// POST of any bytes with `headers` (what a fuzzer sends).
    pub async fn post_bytes(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        let mut b = Request::post(path);
        for (name, value) in headers {
            b = b.header(*name, *value);
        }
        match b.body(Body::from(body)) {
            Ok(req) => self.call(req).await,
            // A header value the HTTP library refuses never reaches a server.
            Err(_) => Reply {
                status: StatusCode::BAD_REQUEST,
                headers: HeaderMap::new(),
                body: Bytes::new(),
            },
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.call(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
    }

    pub fn authority_key(&self) -> PublicKey {
        PublicKey::from_base64(&self.state.authority_public_key()).unwrap()
    }

    /// Enrols a device with a fresh key.
    pub async fn enroll(&self, secret: u8) -> Device {
        let key = DeviceKey::from_bytes(&[secret; 32]);
        let reply = self
            .post_json(
                "/v1/devices",
                &json!({
                    "enrollment_token": TOKEN,
                    "seller": seller(),
                    "device_name": "前台",
                    "public_key": key.public().to_base64(),
                }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let id = reply.json()["device_id"].as_str().unwrap().to_string();
        Device {
            key,
            id,
            seller: seller(),
            seq: 0,
            head_hash: ZERO_HASH.to_string(),
            leases: Vec::new(),
        }
    }

    pub async fn lease(&self, device: &mut Device) -> Lease {
        let reply = self
            .call(device.signed(Method::POST, "/v1/leases", b"{}".to_vec()))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        let lease: Lease = serde_json::from_slice(&reply.body).unwrap();
        device.leases.push(lease.clone());
        lease
    }

    pub async fn submit(&self, envelope: &Envelope) -> Reply {
        self.call(submission(envelope)).await
    }
}

pub fn app(state: AppState, peer: [u8; 4]) -> Router {
    router(state).layer(MockConnectInfo(SocketAddr::from((peer, 40000))))
}

pub async fn call(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

/// POST /v1/invoices with the envelope and its key.
pub fn submission(envelope: &Envelope) -> Request<Body> {
    Request::post("/v1/invoices")
        .header("content-type", "application/json")
        .header("Idempotency-Key", idempotency_header(&envelope.invoice.id))
        .body(Body::from(serde_json::to_vec(envelope).unwrap()))
        .unwrap()
}

pub struct Device {
    pub key: DeviceKey,
    pub id: String,
    pub seller: Party,
    /// The local chain head: seq and hash of the last invoice issued.
    pub seq: u64,
    pub head_hash: String,
    pub leases: Vec<Lease>,
}

impl Device {
    /// A device-signed request; `target` may carry a query string.
    pub fn signed(&self, method: Method, target: &str, body: Vec<u8>) -> Request<Body> {
        self.signed_at(method, target, body, Utc::now().timestamp())
    }

    /// Signed at `ts` with a fresh `Kaipiao-Nonce`, as the client sends every request.
    pub fn signed_at(&self, method: Method, target: &str, body: Vec<u8>, ts: i64) -> Request<Body> {
        self.signed_with(
            method,
            target,
            body,
            ts,
            Some(&uuid::Uuid::new_v4().to_string()),
        )
    }

    /// Signed at `ts` with this nonce, or none (a client from before the nonce).
    pub fn signed_with(
        &self,
        method: Method,
        target: &str,
        body: Vec<u8>,
        ts: i64,
        nonce: Option<&str>,
    ) -> Request<Body> {
        let sig = sign_request_with_nonce(&self.key, method.as_str(), target, ts, &body, nonce);
        let mut req = Request::builder()
            .method(method)
            .uri(target)
            .header("Kaipiao-Device", &self.id)
            .header("Kaipiao-Timestamp", ts.to_string());
        if let Some(nonce) = nonce {
            req = req.header("Kaipiao-Nonce", nonce);
        }
        req.header("Kaipiao-Signature", sig)
            .body(Body::from(body))
            .unwrap()
    }

    /// The number for sequence `seq` of the first lease.
    pub fn number(&self, seq: u64) -> String {
        invoice_number(&self.leases[0].prefix, seq)
    }

    /// Builds the next invoice in the chain without advancing the local head.
    pub fn build(&self, draft: &Draft, credit: Option<&CreditContext>) -> Invoice {
        let seq = self.seq + 1;
        let ctx = IssueContext {
            id: uuid::Uuid::now_v7().to_string(),
            device_id: self.id.clone(),
            seq,
            prev_hash: self.head_hash.clone(),
            number: self.number(seq),
            issued_at: Utc::now(),
            seller: self.seller.clone(),
        };
        build_invoice(draft, &ctx, credit).unwrap()
    }

    /// Seals an invoice and advances the local head to it.
    pub fn seal(&mut self, invoice: Invoice) -> Envelope {
        let envelope = seal_invoice(&self.key, invoice);
        self.seq = envelope.invoice.seq;
        self.head_hash = envelope.hash.clone();
        envelope
    }

    /// Issues the next invoice from a draft.
    pub fn issue(&mut self, draft: &Draft) -> Envelope {
        let invoice = self.build(draft, None);
        self.seal(invoice)
    }
}
