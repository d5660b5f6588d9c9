//! The real window under test: a Tauri binary under Xvfb, driven through tauri-driver and
//! WebKitWebDriver with the stable `data-testid`s of issue 3. Shared by the window tests
//! (`tests/window.rs`) and the benchmarks (`benches/app.rs`).
//!
//! Each window gets its own Xvfb display, tauri-driver ports and data directory. A file
//! lock lets only one window run at a time on the machine: the app is single-instance, and
//! two WebKit processes on two cores make every wait longer.
//!
//! Nothing here sleeps to synchronise: every wait polls a condition against a deadline.
//! The list re-renders whenever the authority answers, so an element found a moment ago
//! can be gone ("stale") when it is clicked: clicks find the element again and retry
//! until the deadline, as a clerk would click again.
//! With `KAIPIAO_SCREENSHOTS=DIR` the tests also save screenshots of the root window.
#![allow(dead_code)]

use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use kaipiao_tests::{seller_tax_id, Taxd, TOKEN};
use serde_json::json;
use std::fs::File;
use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const DEADLINE: Duration = Duration::from_secs(30);
pub const POLL: Duration = Duration::from_millis(50);

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn app_binary() -> PathBuf {
    let app = PathBuf::from(env!("CARGO_BIN_EXE_kaipiao-app"));
    let index = workspace().join("ui/dist/index.html");
    let html = std::fs::read_to_string(&index).unwrap_or_default();
    assert!(
        !html.contains("data-placeholder"),
        "ui/dist holds the placeholder page: run `make ui` (npm run build in ui/) and build again"
    );
    app
}

fn tauri_driver() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = [
        home.join(".cargo/bin/tauri-driver"),
        PathBuf::from("/usr/local/bin/tauri-driver"),
    ];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("tauri-driver is missing: run scripts/install-deps.sh (cargo install tauri-driver --locked)"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}

fn terminate(child: &mut Child) {
    // SIGTERM, not SIGKILL: tauri-driver stops WebKitWebDriver (and the app) on TERM.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(POLL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Worth another try: the element was replaced by a re-render, or is not on screen yet.
fn transient(e: &CmdError) -> bool {
    e.is_stale_element_reference() || e.is_no_such_element() || e.is_element_not_interactable()
}

/// One try of an action on an element.
type Attempt<'a, T> = Pin<Box<dyn Future<Output = Result<T, CmdError>> + 'a>>;

/// One app window on its own X display, with its own data directory.
pub struct Window {
    pub rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    xvfb: Child,
    pub display: String,
    pub data: tempfile::TempDir,
    /// When the WebDriver session that launched the app was requested, and when it was
    /// granted (the app's web view is up; its page may still be loading).
    pub launch_requested: Instant,
    pub session_granted: Instant,
    _lock: File,
}

impl Window {
    /// kaipiao-app with its data in `self.data/shop`, zh-CN, fast connectivity probes.
    pub fn open(env: &[(&str, &str)]) -> Window {
        Window::launch(&app_binary(), env)
    }

    /// `app` (any Tauri binary) under a fresh display; `env` is added last, so it can
    /// override the defaults (KAIPIAO_DATA, LANG, ...).
    pub fn launch(app: &Path, env: &[(&str, &str)]) -> Window {
        let lock = File::create(workspace().join("target/webdriver-tests.lock")).unwrap();
        lock.lock().unwrap();
        let (xvfb, display) = start_xvfb();
        let data = tempfile::Builder::new()
            .prefix("kaipiao-window-")
            .tempdir()
            .unwrap();
        let (port, native) = (free_port(), free_port());
        let log = File::create(data.path().join("tauri-driver.log")).unwrap();
        let mut cmd = Command::new(tauri_driver());
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native.to_string(),
        ])
        .env("DISPLAY", &display)
        .env("KAIPIAO_DATA", data.path().join("shop"))
        .env("LANG", "zh_CN.UTF-8")
        .env("KAIPIAO_PROBE_MS", "200")
        .env("NO_PROXY", "*")
        .env_remove("KAIPIAO_PASSPHRASE")
        .env_remove("LC_ALL")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let driver = cmd.spawn().expect("tauri-driver starts");
        wait_for("tauri-driver to listen", DEADLINE, || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("wry"));
        caps.insert("tauri:options".into(), json!({"application": app}));
        // tauri-driver listens before WebKitWebDriver behind it is ready: a first session
        // request can fail, so retry until the deadline.
        let start = Instant::now();
        let (client, launch_requested) = loop {
            let requested = Instant::now();
            let attempt = rt.block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&format!("http://127.0.0.1:{port}")),
            );
            match attempt {
                Ok(c) => break (c, requested),
                Err(e) if start.elapsed() < DEADLINE => {
                    eprintln!("WebDriver session not ready yet: {e}");
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => panic!("no WebDriver session with the app: {e}"),
            }
        };
        let session_granted = Instant::now();
        Window {
            rt,
            client: Some(client),
            driver,
            xvfb,
            display,
            data,
            launch_requested,
            session_granted,
            _lock: lock,
        }
    }

    pub fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// The tauri-driver process: the app and its WebKit processes descend from it.
    pub fn driver_pid(&self) -> u32 {
        self.driver.id()
    }

    pub fn css(testid: &str) -> String {
        format!("[data-testid=\"{testid}\"]")
    }

    pub fn find(&self, testid: &str) -> Element {
        self.find_css(&Self::css(testid))
    }

    pub fn find_css(&self, sel: &str) -> Element {
        self.rt
            .block_on(
                self.c()
                    .wait()
                    .at_most(DEADLINE)
                    .every(POLL)
                    .for_element(Locator::Css(sel)),
            )
            .unwrap_or_else(|e| panic!("no element {sel}: {e}"))
    }

    pub fn exists(&self, selector: &str) -> bool {
        self.rt
            .block_on(self.c().find_all(Locator::Css(selector)))
            .map(|v| !v.is_empty())
            .unwrap_or(false)
    }

    /// Runs `act` on the element `sel` finds, finding it again while it is stale.
    fn with_element<T>(
        &self,
        sel: &str,
        what: &str,
        act: impl for<'a> Fn(&'a Element) -> Attempt<'a, T>,
    ) -> T {
        let start = Instant::now();
        loop {
            let el = self.find_css(sel);
            match self.rt.block_on(act(&el)) {
                Ok(v) => return v,
                Err(e) if transient(&e) && start.elapsed() < DEADLINE => std::thread::sleep(POLL),
                Err(e) => panic!("{what} {sel}: {e}"),
            }
        }
    }

    pub fn type_into(&self, testid: &str, text: &str) {
        let text = text.to_string();
        self.with_element(&Self::css(testid), "type into", move |el| {
            let text = text.clone();
            Box::pin(async move {
                el.clear().await?;
                el.send_keys(&text).await
            })
        })
    }

    pub fn send_keys(&self, testid: &str, keys: &str) {
        let keys = keys.to_string();
        self.with_element(&Self::css(testid), "send keys to", move |el| {
            let keys = keys.clone();
            Box::pin(async move { el.send_keys(&keys).await })
        })
    }

    pub fn click(&self, testid: &str) {
        self.click_css(&Self::css(testid));
    }

    pub fn click_css(&self, sel: &str) {
        self.with_element(sel, "click", |el| Box::pin(el.click()))
    }

    /// Opens the invoice `number` from the list.
    pub fn open_invoice(&self, number: &str) {
        let row = format!("[data-testid=\"invoice-row\"][data-number=\"{number}\"]");
        self.click_css(&row);
        self.wait_text("detail-number", number);
    }

    pub fn select(&self, testid: &str, value: &str) {
        let value = value.to_string();
        self.with_element(&Self::css(testid), "select", move |el| {
            let value = value.clone();
            Box::pin(async move { el.select_by_value(&value).await })
        })
    }

    pub fn text(&self, testid: &str) -> String {
        self.text_css(&Self::css(testid))
    }

    pub fn text_css(&self, sel: &str) -> String {
        let el = self.find_css(sel);
        self.rt
            .block_on(el.text())
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    pub fn attr(&self, testid: &str, name: &str) -> Option<String> {
        let el = self.find(testid);
        self.rt.block_on(el.attr(name)).ok().flatten()
    }

    pub fn prop(&self, testid: &str, name: &str) -> Option<String> {
        let el = self.find(testid);
        self.rt.block_on(el.prop(name)).ok().flatten()
    }

    pub fn script(&self, js: &str) -> serde_json::Value {
        self.rt
            .block_on(self.c().execute(js, vec![]))
            .unwrap_or_else(|e| panic!("script failed: {e}\n{js}"))
    }

    pub fn script_async(&self, js: &str, args: Vec<serde_json::Value>) -> serde_json::Value {
        self.rt
            .block_on(self.c().execute_async(js, args))
            .unwrap_or_else(|e| panic!("async script failed: {e}\n{js}"))
    }

    /// Waits until `testid` exists and shows exactly `want`.
    pub fn wait_text(&self, testid: &str, want: &str) {
        let mut last = String::new();
        let start = Instant::now();
        loop {
            if self.exists(&Self::css(testid)) {
                last = self.text(testid);
                if last == want {
                    return;
                }
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{testid} shows {last:?}, expected {want:?}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `testid` exists and shows any text; returns it.
    pub fn wait_some_text(&self, testid: &str) -> String {
        let start = Instant::now();
        loop {
            if self.exists(&Self::css(testid)) {
                let t = self.text(testid);
                if !t.is_empty() {
                    return t;
                }
            }
            assert!(start.elapsed() < DEADLINE, "{testid} shows no text");
            std::thread::sleep(POLL);
        }
    }

    pub fn wait_attr(&self, testid: &str, name: &str, want: &str) {
        let start = Instant::now();
        loop {
            let last = self.attr(testid, name);
            if last.as_deref() == Some(want) {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{testid}[{name}] is {last:?}, expected {want:?}"
            );
            std::thread::sleep(POLL);
        }
    }

    pub fn wait_selector(&self, selector: &str) {
        wait_for(selector, DEADLINE, || self.exists(selector));
    }

    /// A screenshot of the whole X display when KAIPIAO_SCREENSHOTS names a directory.
    pub fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("KAIPIAO_SCREENSHOTS") else {
            return;
        };
        // The frame after the last DOM change may not be painted yet: let it settle.
        std::thread::sleep(Duration::from_millis(600));
        let path = PathBuf::from(dir).join(format!("{name}.png"));
        let status = Command::new("/usr/bin/import")
            .args([
                "-display",
                &self.display,
                "-window",
                "root",
                path.to_str().unwrap(),
            ])
            .status();
        assert!(
            status.map(|s| s.success()).unwrap_or(false),
            "screenshot {name}"
        );
    }

    /// The first-run form, filled in and submitted, until the issue screen shows.
    pub fn set_up(&self, taxd: &Taxd) {
        self.type_into("setup-seller-name", "杭州小店贸易有限公司");
        self.type_into("setup-seller-tax-id", &seller_tax_id());
        self.wait_selector("[data-testid=\"setup-tax-id-check\"].ok");
        self.type_into("setup-device-name", "前台收银 1");
        self.type_into("setup-server", &taxd.url());
        self.type_into("setup-token", TOKEN);
        self.type_into("setup-passphrase", "window test passphrase");
        self.type_into("setup-passphrase-confirm", "window test passphrase");
        self.click("setup-submit");
        self.find("new-invoice");
        self.wait_attr("connectivity", "data-state", "online");
    }

    pub fn fill_line(&self, i: usize, name: &str, qty: &str, price: &str) {
        self.type_into(&format!("line-name-{i}"), name);
        self.type_into(&format!("line-quantity-{i}"), qty);
        self.type_into(&format!("line-unit-price-{i}"), price);
    }
}

fn start_xvfb() -> (Child, String) {
    for n in 90..400 {
        if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
            || Path::new(&format!("/tmp/.X{n}-lock")).exists()
        {
            continue;
        }
        let display = format!(":{n}");
        let mut child = Command::new("Xvfb")
            .args([&display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is installed (scripts/install-deps.sh)");
        let socket = format!("/tmp/.X11-unix/X{n}");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if Path::new(&socket).exists() {
                return (child, display);
            }
            if let Ok(Some(_)) = child.try_wait() {
                break; // lost a race for this display: try the next
            }
            std::thread::sleep(POLL);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("no free X display for Xvfb");
}

impl Drop for Window {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        terminate(&mut self.driver);
        terminate(&mut self.xvfb);
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.data.path().join("tauri-driver.log"))
                .unwrap_or_default();
            eprintln!("--- tauri-driver log ---\n{log}");
        }
    }
}
