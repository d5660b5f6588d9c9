//! A scripted HTTP/1.1 server on loopback that misbehaves in front of taxd: it answers each
//! request as a script says (a reply of its own, taxd's answer late, edited or dropped),
//! and records what it saw.

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as the scripted server saw it.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// An invoice submission, alone or in a batch.
    pub fn is_submission(&self) -> bool {
        self.method == "POST" && (self.path == "/v1/invoices" || self.is_batch())
    }

    pub fn is_batch(&self) -> bool {
        self.method == "POST" && self.path == "/v1/invoices:batch"
    }

    /// The submitted items as `(idempotency key, envelope bytes as sent)`: the header and
    /// body of a lone submission, or each item of a batch.
    pub fn items(&self) -> Vec<(String, Vec<u8>)> {
        #[derive(serde::Deserialize)]
        struct Batch {
            items: Vec<BatchItem>,
        }
        #[derive(serde::Deserialize)]
        struct BatchItem {
            idempotency_key: String,
            envelope: Box<serde_json::value::RawValue>,
        }
        if self.is_batch() {
            return serde_json::from_slice::<Batch>(&self.body)
                .map(|b| {
                    b.items
                        .into_iter()
                        .map(|i| (i.idempotency_key, i.envelope.get().as_bytes().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
        }
        let key = self
            .header("idempotency-key")
            .map(|k| k.trim_matches('"').to_string())
            .unwrap_or_default();
        vec![(key, self.body.clone())]
    }
}

/// What the scripted server does with one request.
pub enum Act {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Forward to the upstream taxd and relay its answer.
    Proxy,
    /// Wait, then forward (the client may have timed out by then).
    ProxyAfter(Duration),
    /// Forward, then close the connection without answering: committed, outcome unknown.
    ProxyThenDrop,
    /// Close the connection without answering (after reading the request).
    Drop,
    /// Forward, then answer with what `edit` makes of taxd's status and body.
    ProxyThen(Edit),
}

pub type Edit = Box<dyn FnOnce(u16, String) -> (u16, String) + Send>;

impl Act {
    pub fn json(status: u16, body: serde_json::Value) -> Act {
        Act::Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn error(status: u16, code: &str, extra: serde_json::Value) -> Act {
        Act::json(status, Act::error_body(code, extra))
    }

    /// The error body of [`Act::error`], for one item of a batch.
    pub fn error_body(code: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut error =
            serde_json::json!({"code": code, "message": format!("scripted {code}"), "field": ""});
        if let (Some(e), Some(x)) = (error.as_object_mut(), extra.as_object()) {
            for (k, v) in x {
                e.insert(k.clone(), v.clone());
            }
        }
        serde_json::json!({ "error": error })
    }

    /// Answers every submitted item with `answer(envelope bytes)` = (status, body): alone,
    /// as that answer; in a batch, as a 200 whose results are those answers.
    pub fn each_item(req: &Req, answer: impl Fn(&[u8]) -> (u16, serde_json::Value)) -> Act {
        if !req.is_batch() {
            let (status, body) = answer(&req.body);
            return Act::json(status, body);
        }
        let results: Vec<serde_json::Value> = req
            .items()
            .iter()
            .map(|(key, envelope)| {
                let (status, body) = answer(envelope);
                serde_json::json!({"idempotency_key": key, "status": status, "body": body})
            })
            .collect();
        Act::json(200, serde_json::json!({ "results": results }))
    }
}

pub type Script = Arc<dyn Fn(&Req, usize) -> Act + Send + Sync>;

/// True for the first request that `matches`, false for every other one (per script, so
/// tests running in one process do not share it).
pub fn once_for(matches: fn(&Req) -> bool) -> impl Fn(&Req) -> bool + Send + Sync {
    let seen = std::sync::atomic::AtomicBool::new(false);
    move |req| matches(req) && !seen.swap(true, std::sync::atomic::Ordering::SeqCst)
}

/// An HTTP/1.1 server on loopback that answers by a script, forwarding to taxd when
/// told to. Records requests; every connection is `Connection: close`.
pub struct Scripted {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Req>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    pub async fn start(upstream: Option<String>, script: Script) -> Scripted {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Req>>> = Arc::default();
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (seen, script, http, upstream) = (
                    seen2.clone(),
                    script.clone(),
                    http.clone(),
                    upstream.clone(),
                );
                tokio::spawn(async move {
                    serve_one(sock, seen, script, http, upstream).await;
                });
            }
        });
        Scripted { url, seen, task }
    }

    pub fn requests(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }

    pub fn submissions(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(Req::is_submission)
            .collect()
    }
}

async fn serve_one(
    mut sock: tokio::net::TcpStream,
    seen: Arc<Mutex<Vec<Req>>>,
    script: Script,
    http: reqwest::Client,
    upstream: Option<String>,
) {
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    let n = {
        let mut s = seen.lock().unwrap();
        s.push(req.clone());
        s.len() - 1
    };
    let (status, headers, body) = match script(&req, n) {
        Act::Drop => return,
        Act::Reply {
            status,
            headers,
            body,
        } => (status, headers, body),
        Act::Proxy => match proxy(&http, upstream.as_deref(), &req).await {
            Some(r) => r,
            None => return,
        },
        Act::ProxyAfter(d) => {
            tokio::time::sleep(d).await;
            match proxy(&http, upstream.as_deref(), &req).await {
                Some(r) => r,
                None => return,
            }
        }
        Act::ProxyThenDrop => {
            let _ = proxy(&http, upstream.as_deref(), &req).await;
            return;
        }
        Act::ProxyThen(edit) => match proxy(&http, upstream.as_deref(), &req).await {
            Some((status, headers, body)) => {
                let (status, body) = edit(status, body);
                (status, headers, body)
            }
            None => return,
        },
    };
    let mut head = format!("HTTP/1.1 {status} X\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    let _ = sock.write_all(head.as_bytes()).await;
    let _ = sock.write_all(body.as_bytes()).await;
    let _ = sock.shutdown().await;
}

async fn proxy(
    http: &reqwest::Client,
    upstream: Option<&str>,
    req: &Req,
) -> Option<(u16, Vec<(String, String)>, String)> {
    let up = upstream?;
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).ok()?;
    let mut r = http.request(method, format!("{up}{}", req.path));
    for (k, v) in &req.headers {
        let lk = k.to_ascii_lowercase();
        if lk != "host" && lk != "content-length" && lk != "connection" {
            r = r.header(k.as_str(), v.as_str());
        }
    }
    let resp = r.body(req.body.clone()).send().await.ok()?;
    let status = resp.status().as_u16();
    let mut headers = Vec::new();
    for (k, v) in resp.headers() {
        let lk = k.as_str();
        if lk != "content-length" && lk != "connection" && lk != "transfer-encoding" {
            headers.push((k.to_string(), v.to_str().unwrap_or("").to_string()));
        }
    }
    let body = resp.text().await.ok()?;
    Some((status, headers, body))
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Req {
        method,
        path,
        headers,
        body,
        at: std::time::Instant::now(),
    })
}
