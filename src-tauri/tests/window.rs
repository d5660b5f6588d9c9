//! The real window: the built app under Xvfb, driven through tauri-driver and
//! WebKitWebDriver with the stable `data-testid`s of issue 3, against a real taxd.
//!
//! Each test starts its own Xvfb display, tauri-driver ports, data directory and taxd.
//! They take a file lock so that only one window runs at a time on the machine: the app
//! is single-instance, and two WebKit processes on two cores make every wait longer.
//! Nothing here sleeps to synchronise: every wait polls a condition against a deadline.
//! With `KAIPIAO_SCREENSHOTS=DIR` the tests also save screenshots of the root window.

use fantoccini::{Client, ClientBuilder, Locator};
use kaipiao_tests::{buyer_tax_id, invalid_tax_id, seller_tax_id, Taxd, TOKEN};
use serde_json::json;
use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn app_binary() -> PathBuf {
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
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let candidates = [home.join(".cargo/bin/tauri-driver"), PathBuf::from("/usr/local/bin/tauri-driver")];
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("tauri-driver is missing: run scripts/install-deps.sh (cargo install tauri-driver --locked)"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < deadline, "timed out after {deadline:?} waiting for {what}");
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

/// One app window on its own X display, with its own data directory.
struct Window {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    xvfb: Child,
    display: String,
    data: tempfile::TempDir,
    _lock: File,
}

impl Window {
    fn open(env: &[(&str, &str)]) -> Window {
        let app = app_binary();
        let lock = File::create(workspace().join("target/webdriver-tests.lock")).unwrap();
        lock.lock().unwrap();
        let (xvfb, display) = start_xvfb();
        let data = tempfile::Builder::new().prefix("kaipiao-window-").tempdir().unwrap();
        let (port, native) = (free_port(), free_port());
        let log = File::create(data.path().join("tauri-driver.log")).unwrap();
        let mut cmd = Command::new(tauri_driver());
        cmd.args(["--port", &port.to_string(), "--native-port", &native.to_string()])
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
        wait_for("tauri-driver to listen", DEADLINE, || TcpStream::connect(("127.0.0.1", port)).is_ok());
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("wry"));
        caps.insert("tauri:options".into(), json!({"application": app}));
        // tauri-driver listens before WebKitWebDriver behind it is ready: a first session
        // request can fail, so retry until the deadline.
        let start = Instant::now();
        let client = loop {
            let attempt = rt.block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&format!("http://127.0.0.1:{port}")),
            );
            match attempt {
                Ok(c) => break c,
                Err(e) if start.elapsed() < DEADLINE => {
                    eprintln!("WebDriver session not ready yet: {e}");
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => panic!("no WebDriver session with the app: {e}"),
            }
        };
        Window {
            rt,
            client: Some(client),
            driver,
            xvfb,
            display,
            data,
            _lock: lock,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn css(testid: &str) -> String {
        format!("[data-testid=\"{testid}\"]")
    }

    fn find(&self, testid: &str) -> fantoccini::elements::Element {
        let sel = Self::css(testid);
        self.rt
            .block_on(self.c().wait().at_most(DEADLINE).every(POLL).for_element(Locator::Css(&sel)))
            .unwrap_or_else(|e| panic!("no element {sel}: {e}"))
    }

    fn exists(&self, selector: &str) -> bool {
        self.rt.block_on(self.c().find_all(Locator::Css(selector))).map(|v| !v.is_empty()).unwrap_or(false)
    }

    fn type_into(&self, testid: &str, text: &str) {
        let el = self.find(testid);
        self.rt.block_on(async {
            el.clear().await.unwrap();
            el.send_keys(text).await.unwrap();
        });
    }

    fn click(&self, testid: &str) {
        let el = self.find(testid);
        self.rt.block_on(el.click()).unwrap_or_else(|e| panic!("click {testid}: {e}"));
    }

    fn select(&self, testid: &str, value: &str) {
        let el = self.find(testid);
        self.rt.block_on(el.select_by_value(value)).unwrap_or_else(|e| panic!("select {value} in {testid}: {e}"));
    }

    fn text(&self, testid: &str) -> String {
        let el = self.find(testid);
        self.rt.block_on(el.text()).unwrap_or_default().trim().to_string()
    }

    fn attr(&self, testid: &str, name: &str) -> Option<String> {
        let el = self.find(testid);
        self.rt.block_on(el.attr(name)).ok().flatten()
    }

    fn prop(&self, testid: &str, name: &str) -> Option<String> {
        let el = self.find(testid);
        self.rt.block_on(el.prop(name)).ok().flatten()
    }

    fn wait_text(&self, testid: &str, want: &str) {
        let mut last = String::new();
        let start = Instant::now();
        loop {
            if self.exists(&Self::css(testid)) {
                last = self.text(testid);
                if last == want {
                    return;
                }
            }
            assert!(start.elapsed() < DEADLINE, "{testid} shows {last:?}, expected {want:?}");
            std::thread::sleep(POLL);
        }
    }

    fn wait_attr(&self, testid: &str, name: &str, want: &str) {
        let start = Instant::now();
        loop {
            let last = self.attr(testid, name);
            if last.as_deref() == Some(want) {
                return;
            }
            assert!(start.elapsed() < DEADLINE, "{testid}[{name}] is {last:?}, expected {want:?}");
            std::thread::sleep(POLL);
        }
    }

    fn wait_selector(&self, selector: &str) {
        wait_for(selector, DEADLINE, || self.exists(selector));
    }

    /// A screenshot of the whole X display when KAIPIAO_SCREENSHOTS names a directory.
    fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("KAIPIAO_SCREENSHOTS") else { return };
        // The frame after the last DOM change may not be painted yet: let it settle.
        std::thread::sleep(Duration::from_millis(600));
        let path = PathBuf::from(dir).join(format!("{name}.png"));
        let status = Command::new("/usr/bin/import")
            .args(["-display", &self.display, "-window", "root", path.to_str().unwrap()])
            .status();
        assert!(status.map(|s| s.success()).unwrap_or(false), "screenshot {name}");
    }

    /// The first-run form, filled in and submitted, until the issue screen shows.
    fn set_up(&self, taxd: &Taxd) {
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

    fn fill_line(&self, i: usize, name: &str, qty: &str, price: &str) {
        self.type_into(&format!("line-name-{i}"), name);
        self.type_into(&format!("line-quantity-{i}"), qty);
        self.type_into(&format!("line-unit-price-{i}"), price);
    }
}

fn start_xvfb() -> (Child, String) {
    for n in 90..400 {
        if Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() || Path::new(&format!("/tmp/.X{n}-lock")).exists() {
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
            let log = std::fs::read_to_string(self.data.path().join("tauri-driver.log")).unwrap_or_default();
            eprintln!("--- tauri-driver log ---\n{log}");
        }
    }
}

#[test]
fn first_run_setup_against_a_real_taxd() {
    let taxd = Taxd::start(&[]);
    let w = Window::open(&[]);
    // zh-CN by default under a Chinese locale.
    w.find("setup-seller-name");
    w.screenshot("setup");
    // A bad tax ID is flagged as typed.
    w.type_into("setup-seller-tax-id", &invalid_tax_id());
    w.wait_selector("[data-testid=\"setup-tax-id-check\"].error");
    w.set_up(&taxd);
    let range = w.text("lease-range");
    assert!(range.contains('–') && range.len() > 40, "first lease shown: {range:?}");
    w.wait_text("pending-count", "0");
    assert!(!w.text("offline-hours-left").is_empty());
    assert!(!w.text("offline-amount-left").is_empty());
}

#[test]
fn issue_during_an_outage_then_sync_now() {
    let taxd = Taxd::start(&[]);
    let w = Window::open(&[]);
    w.set_up(&taxd);
    taxd.set_faults(json!({"outage": true}));

    w.type_into("buyer-name", "深圳市某某科技有限公司");
    w.fill_line(0, "*计算机配套产品*键盘", "10", "120");
    // Enter in a line adds the next one (left blank: not issued).
    w.rt.block_on(w.find("line-unit-price-0").send_keys("\u{E007}")).unwrap();
    w.find("line-name-1");
    w.fill_line(1, "*计算机配套产品*鼠标", "2", "45.5");
    // Totals and capitals come from the engine as the clerk types.
    w.wait_text("total", "1458.83");
    w.wait_text("total-in-words", "壹仟肆佰伍拾捌元捌角叁分");
    w.screenshot("issue");
    w.click("issue-submit");
    let number = {
        w.find("issued-number");
        w.text("issued-number")
    };
    assert_eq!(number.len(), 20, "{number:?}");
    w.wait_text("pending-count", "1");
    w.wait_attr("connectivity", "data-state", "offline");
    w.find("outage-banner");
    // Issuing continues during the outage; the form is blank again.
    assert_eq!(w.prop("buyer-name", "value").as_deref(), Some(""));
    w.screenshot("outage");

    taxd.set_faults(json!({"outage": false}));
    w.click("sync-now");
    w.wait_attr("sync-progress", "data-outcome", "complete");
    w.wait_text("pending-count", "0");
    w.wait_attr("connectivity", "data-state", "online");
    w.click("nav-invoices");
    w.find("invoice-list");
    let row = format!("[data-testid=\"invoice-row\"][data-number=\"{number}\"][data-status=\"accepted\"]");
    w.wait_selector(&row);
    let el = w.rt.block_on(w.c().find(Locator::Css(&row))).unwrap();
    w.rt.block_on(el.click()).unwrap();
    w.wait_text("detail-number", &number);
    w.wait_attr("detail-status", "data-status", "accepted");
    assert_eq!(w.text("authority-code").len(), 20);
    w.screenshot("list");
}

#[test]
fn bad_buyer_tax_id_on_a_special_invoice_issues_nothing() {
    let taxd = Taxd::start(&[]);
    let w = Window::open(&[]);
    w.set_up(&taxd);
    w.select("invoice-kind", "special");
    w.type_into("buyer-name", "深圳市某某科技有限公司");
    w.type_into("buyer-tax-id", &invalid_tax_id());
    w.wait_selector("[data-testid=\"buyer-tax-id-check\"].error");
    w.fill_line(0, "*信息技术服务*软件维护", "1", "1000");
    w.select("line-tax-rate-0", "0.06");
    w.wait_text("total", "1060.00");
    // Ctrl+Enter issues.
    w.rt.block_on(w.find("line-quantity-0").send_keys("\u{E009}\u{E007}\u{E000}")).unwrap();
    w.find("error-message");
    assert_eq!(w.attr("error-message", "data-field").as_deref(), Some("buyer.tax_id"));
    assert!(w.text("error-message").contains("纳税人识别号") || w.text("error-message").contains(&invalid_tax_id()));
    assert!(!w.exists("[data-testid=\"issued-number\"]"));
    w.wait_text("pending-count", "0");
    // Fixing the ID issues it.
    w.type_into("buyer-tax-id", &buyer_tax_id());
    w.click("issue-submit");
    w.find("issued-number");
    // (Online: the background sync may already have filed it, so pending is 0 or 1.)
    assert_eq!(w.text("issued-number").len(), 20);
}

#[test]
fn credit_note_from_the_detail_view() {
    let taxd = Taxd::start(&[]);
    let w = Window::open(&[]);
    w.set_up(&taxd);
    w.type_into("buyer-name", "个人买家");
    w.fill_line(0, "*日用杂品*收纳盒", "3", "20");
    w.wait_text("total", "67.80");
    w.click("issue-submit");
    w.find("issued-number");
    let original = w.text("issued-number");

    w.click("nav-invoices");
    let row = format!("[data-testid=\"invoice-row\"][data-number=\"{original}\"]");
    w.wait_selector(&row);
    let el = w.rt.block_on(w.c().find(Locator::Css(&row))).unwrap();
    w.rt.block_on(el.click()).unwrap();
    w.wait_text("detail-number", &original);
    w.click("credit-note");
    // Pre-filled from the original: a 红字发票 with negative quantities.
    w.wait_selector("[data-testid=\"original-number\"]");
    assert_eq!(w.prop("invoice-kind", "value").as_deref(), Some("credit"));
    assert_eq!(w.prop("original-number", "value").as_deref(), Some(original.as_str()));
    assert_eq!(w.prop("line-quantity-0", "value").as_deref(), Some("-3"));
    w.wait_text("total", "-67.80");
    w.wait_text("total-in-words", "负陆拾柒元捌角");
    w.click("issue-submit");
    w.find("issued-number");
    let credit = w.text("issued-number");
    assert_ne!(credit, original);
    w.click("nav-invoices");
    w.wait_selector(&format!("[data-testid=\"invoice-row\"][data-number=\"{credit}\"]"));
}
