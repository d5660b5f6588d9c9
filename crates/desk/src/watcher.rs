//! The background watcher: the app's one drainer of the outbox. Its own thread, its own
//! `Ledger::open` of the data directory and a current-thread tokio runtime (the sync
//! futures borrow a `Ledger`, which is not Sync).
//!
//! While the authority answers it drains the outbox as soon as something is issued and
//! tops up leases; while it does not, it probes `GET /v1/health` with a growing, jittered
//! interval, and after an outage waits a random moment before the first sends so a
//! recovering server does not meet every client at once (SPEC 6). "Sync now" runs here
//! too: this thread is the only one of the app that drains the outbox.

use crate::dto::*;
use crate::error::{DeskError, DeskResult};
use chrono::Utc;
use kaipiao_core::{Code, DeviceKey, Lang};
use kaipiao_ledger::{Ledger, LedgerError};
use kaipiao_sync::policy::{Recovery, Turn};
use kaipiao_sync::{Progress, ReconcileProgress, SyncError, SyncOptions, SyncOutcome};
use rand::Rng;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use zeroize::Zeroizing;

/// Where the events go: Tauri events in the app, a recorder in tests.
pub trait Notify: Send + Sync {
    fn connectivity(&self, c: &ConnectivityDto);
    fn outbox(&self, o: &OutboxChanged);
}

/// A notifier that drops everything.
pub struct Silent;

impl Notify for Silent {
    fn connectivity(&self, _: &ConnectivityDto) {}
    fn outbox(&self, _: &OutboxChanged) {}
}

pub type ProgressFn = Arc<dyn Fn(SyncEvent) + Send + Sync>;

/// What the command side and the sync thread both see.
pub struct SyncShared {
    lang: RwLock<Lang>,
    connectivity: Mutex<ConnectivityDto>,
    syncing: AtomicBool,
}

impl SyncShared {
    pub fn new(lang: Lang) -> SyncShared {
        SyncShared {
            lang: RwLock::new(lang),
            connectivity: Mutex::new(ConnectivityDto::default()),
            syncing: AtomicBool::new(false),
        }
    }

    pub fn lang(&self) -> Lang {
        *self.lang.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_lang(&self, lang: Lang) {
        *self.lang.write().unwrap_or_else(|p| p.into_inner()) = lang;
    }

    /// A sync run (background or "Sync now") is going on.
    pub fn is_syncing(&self) -> bool {
        self.syncing.load(Ordering::SeqCst)
    }

    pub fn connectivity(&self) -> ConnectivityDto {
        self.connectivity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

enum Msg {
    Key(Zeroizing<[u8; 32]>),
    SyncNow {
        progress: ProgressFn,
        reply: oneshot::Sender<DeskResult<SyncSummaryDto>>,
    },
    Resume {
        progress: ProgressFn,
        reply: oneshot::Sender<DeskResult<ResumeDto>>,
    },
    Wake,
    Reconfigure,
    Shutdown,
}

/// The command side's end of the sync thread.
pub struct SyncHandle {
    tx: mpsc::UnboundedSender<Msg>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl SyncHandle {
    pub fn send_key(&self, secret: Zeroizing<[u8; 32]>) {
        let _ = self.tx.send(Msg::Key(secret));
    }

    /// Something was issued: drain soon if the authority answers.
    pub fn wake(&self) {
        let _ = self.tx.send(Msg::Wake);
    }

    /// The endpoints changed: probe them now.
    pub fn reconfigure(&self) {
        let _ = self.tx.send(Msg::Reconfigure);
    }

    pub fn sync_now(&self, progress: ProgressFn) -> oneshot::Receiver<DeskResult<SyncSummaryDto>> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::SyncNow { progress, reply });
        rx
    }

    /// The Resume button: reconcile, lift the stop only when that explains it, sync
    /// ([`kaipiao_sync::resume_queue`]), on this thread like every run.
    pub fn resume(&self, progress: ProgressFn) -> oneshot::Receiver<DeskResult<ResumeDto>> {
        let (reply, rx) = oneshot::channel();
        let _ = self.tx.send(Msg::Resume { progress, reply });
        rx
    }

    /// Stops the thread and waits for it (a run in progress ends at its next await).
    pub fn shutdown(&self) {
        let _ = self.tx.send(Msg::Shutdown);
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// Timing of the loop; short in tests through `KAIPIAO_PROBE_MS` (the first offline
/// probe interval, in milliseconds).
#[derive(Debug, Clone, Copy)]
struct Timing {
    first_probe: Duration,
    max_probe: Duration,
    heartbeat: Duration,
    /// The recovery spread after an outage (the window the backlog's shares go out in,
    /// the first after a random delay) when `KAIPIAO_PROBE_MS` shortens the loop for a
    /// test; otherwise the policy's spread for the outage's length
    /// ([`kaipiao_sync::policy::start_spread_after`]).
    recovery_cap: Option<Duration>,
}

impl Timing {
    fn from_env() -> Timing {
        let test_probe = std::env::var("KAIPIAO_PROBE_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        let first = test_probe.unwrap_or(Duration::from_secs(2));
        Timing {
            first_probe: first,
            max_probe: (first * 30).min(Duration::from_secs(60)).max(first),
            heartbeat: (first * 10).min(Duration::from_secs(30)).max(first),
            recovery_cap: test_probe.map(|p| (p * 2).min(Duration::from_secs(5))),
        }
    }
}

/// Full jitter around `base`: uniformly in [base/2, 3·base/2].
fn jittered(base: Duration) -> Duration {
    let ms = base.as_millis().max(2) as u64;
    Duration::from_millis(rand::thread_rng().gen_range(ms / 2..=ms + ms / 2))
}

pub fn start(
    dir: PathBuf,
    shared: Arc<SyncShared>,
    notify: Arc<dyn Notify>,
) -> std::io::Result<SyncHandle> {
    let (tx, rx) = mpsc::unbounded_channel();
    let thread = std::thread::Builder::new()
        .name("kaipiao-sync".into())
        .spawn(move || {
            // The clerk's typing and issuing come first on a busy shop PC.
            kaipiao_sync::yield_to_clerk();
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(_) => return,
            };
            let ledger = match Ledger::open(&dir) {
                Ok(l) => l,
                Err(_) => return,
            };
            let mut worker = Worker {
                origin: Instant::now(),
                ledger,
                key: None,
                shared,
                notify,
                timing: Timing::from_env(),
                failures: 0,
                down_since: None,
                last_overloaded: false,
                ask_again: None,
            };
            rt.block_on(worker.run(rx));
        })?;
    Ok(SyncHandle {
        tx,
        thread: Mutex::new(Some(thread)),
    })
}

/// A recovery plan being followed, and its next turn: when (policy clock) and how many.
struct Turns {
    plan: Recovery,
    next: Turn,
}

struct Worker {
    /// The policy clock's origin.
    origin: Instant,
    ledger: Ledger,
    key: Option<Zeroizing<[u8; 32]>>,
    shared: Arc<SyncShared>,
    notify: Arc<dyn Notify>,
    timing: Timing,
    /// Consecutive failed probes: the offline interval grows with them.
    failures: u32,
    /// When the probes started failing (for the start spread after the outage).
    down_since: Option<Instant>,
    /// The last run was refused for overload (503, 429) at least once.
    last_overloaded: bool,
    /// The authority paces its recovery and said to ask again then (issue 13).
    ask_again: Option<Instant>,
}

enum Probe {
    Up {
        endpoint: String,
        primary: bool,
        /// The authority paces its recovery (`admission` in its health, issue 13).
        paced: bool,
    },
    Busy {
        endpoint: String,
        detail: String,
    },
    Down {
        endpoint: Option<String>,
        detail: String,
    },
}

impl Worker {
    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut next_tick = Instant::now();
        // After an outage the backlog goes out in shares (SPEC 6's random start delay,
        // then the recovery plan): the plan and its next turn.
        let mut recovery: Option<Turns> = None;
        loop {
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = tokio::time::sleep_until(next_tick) => {
                    next_tick = self.tick(&mut recovery).await;
                    continue;
                }
            };
            match msg {
                None | Some(Msg::Shutdown) => break,
                Some(Msg::Key(k)) => {
                    self.key = Some(k);
                    next_tick = Instant::now();
                }
                Some(Msg::Wake) => {
                    if matches!(
                        self.shared.connectivity().state,
                        ConnectivityState::Online
                            | ConnectivityState::Degraded
                            | ConnectivityState::Unknown
                    ) {
                        // Coalesce a burst of issues into one run.
                        next_tick = next_tick.min(Instant::now() + Duration::from_millis(200));
                    }
                }
                Some(Msg::Reconfigure) => {
                    self.failures = 0;
                    next_tick = Instant::now();
                }
                Some(Msg::Resume { progress, reply }) => {
                    let result = self.resume(progress).await;
                    let _ = reply.send(result);
                    recovery = None;
                    next_tick = Instant::now() + self.interval();
                }
                Some(Msg::SyncNow { progress, reply }) => {
                    let result = self.drain(Some(progress), true, None).await;
                    let _ = reply.send(result);
                    // Everything went (or was tried) at once: the plan is over.
                    recovery = None;
                    next_tick = Instant::now() + self.interval();
                }
            }
        }
    }

    fn lang(&self) -> Lang {
        self.shared.lang()
    }

    fn interval(&self) -> Duration {
        match self.shared.connectivity().state {
            ConnectivityState::Online => jittered(self.timing.heartbeat),
            _ => {
                let factor = 1u32 << self.failures.min(5);
                jittered((self.timing.first_probe * factor).min(self.timing.max_probe))
            }
        }
    }

    /// When this shop's turn is expected while the authority paces its recovery.
    fn set_turn(&self, turn_at: Option<String>) {
        let changed = {
            let mut c = self
                .shared
                .connectivity
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let changed = c.turn_at != turn_at;
            c.turn_at = turn_at;
            changed
        };
        if changed {
            self.notify.connectivity(&self.shared.connectivity());
        }
    }

    fn set_connectivity(&self, state: ConnectivityState, endpoint: Option<String>, detail: String) {
        let changed = {
            let mut c = self
                .shared
                .connectivity
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if c.state == state && c.endpoint == endpoint && c.detail == detail {
                false
            } else {
                if c.state != state {
                    c.since = Some(kaipiao_core::time::rfc3339(Utc::now()));
                }
                c.state = state;
                c.endpoint = endpoint;
                c.cause = failure_cause(&detail, self.lang());
                c.detail = detail;
                true
            }
        };
        if changed {
            self.notify.connectivity(&self.shared.connectivity());
        }
    }

    fn pending(&self) -> u32 {
        self.ledger
            .status(Utc::now())
            .map(|s| u32::try_from(s.pending).unwrap_or(u32::MAX))
            .unwrap_or(0)
    }

    /// The loop's policy clock: time since the worker started.
    fn clock(&self) -> Duration {
        self.origin.elapsed()
    }

    /// The instant at policy-clock time `at`.
    fn instant_at(&self, at: Duration) -> Instant {
        self.origin + at
    }

    async fn tick(&mut self, recovery: &mut Option<Turns>) -> Instant {
        let device = match self.ledger.device() {
            Ok(Some(d)) if d.device_id.is_some() && !d.servers.is_empty() => d,
            _ => return Instant::now() + Duration::from_secs(2),
        };
        match self.probe(&device.servers).await {
            Probe::Up {
                endpoint,
                primary,
                paced,
            } => {
                self.failures = 0;
                if paced {
                    // The authority schedules the backlog: no plan of our own.
                    self.down_since = None;
                    *recovery = None;
                }
                let state = if primary {
                    ConnectivityState::Online
                } else {
                    ConnectivityState::Degraded
                };
                self.set_connectivity(state, Some(endpoint), String::new());
                // Back after an outage (even one that passed through a spell of
                // overload refusals on the way back): the backlog goes out in shares over
                // a spread in proportion to the outage's length, the first after a random
                // delay (SPEC 6, `kaipiao_sync::policy::Recovery`). The waits are here
                // rather than in the sync run so that "Sync now" meanwhile goes at once.
                if let Some(outage) = self.down_since.take().map(|t| t.elapsed()) {
                    let spread = self
                        .timing
                        .recovery_cap
                        .unwrap_or_else(|| kaipiao_sync::policy::start_spread_after(outage));
                    let pending = u64::from(self.pending());
                    let plan =
                        Recovery::plan(self.clock(), spread, pending, &mut rand::thread_rng());
                    if let Some(next) = plan.first_turn(pending) {
                        *recovery = Some(Turns { plan, next });
                        return self.instant_at(next.at);
                    }
                }
            }
            Probe::Busy { endpoint, detail } => {
                self.failures = self.failures.saturating_add(1);
                self.set_connectivity(ConnectivityState::Degraded, Some(endpoint), detail);
                return Instant::now() + self.interval();
            }
            Probe::Down { endpoint, detail } => {
                self.failures = self.failures.saturating_add(1);
                self.down_since.get_or_insert_with(Instant::now);
                // Down again: the next recovery makes a new plan.
                *recovery = None;
                self.set_connectivity(ConnectivityState::Offline, endpoint, detail);
                return Instant::now() + self.interval();
            }
        }
        // With a recovery plan, only a share whose turn has come goes, and only it.
        let mut share = None;
        if let Some(turns) = recovery.as_ref() {
            if self.clock() < turns.next.at {
                let at = self.instant_at(turns.next.at);
                return at.min(Instant::now() + self.interval());
            }
            share = Some(usize::try_from(turns.next.share).unwrap_or(usize::MAX));
        }
        let pending = self.pending();
        self.last_overloaded = false;
        if self.key.is_some() {
            if pending > 0 {
                let _ = self.drain(None, false, share).await;
            } else if let Some(key) = self.device_key() {
                let opts = SyncOptions {
                    give_up_after: Duration::from_secs(10),
                    ..SyncOptions::default()
                };
                // A new lease shows through the change feed (the ledger changed).
                let _ = kaipiao_sync::top_up_leases(&self.ledger, &key, &opts).await;
            }
        }
        let mut heartbeat = Instant::now() + self.interval();
        if let Some(again) = self.ask_again.take() {
            // Not our turn yet: back when the authority said to ask again.
            heartbeat = heartbeat.min(again.max(Instant::now() + Duration::from_millis(200)));
        }
        if let Some(turns) = recovery.as_mut() {
            // The one step every follower of a plan takes (the relay and the fleet
            // simulation too): slower where the authority refused the share for
            // overload, back towards the plan where it did not; over once nothing is
            // left or the window's last share went.
            let pending = u64::from(self.pending());
            match turns
                .plan
                .after_share(self.clock(), self.last_overloaded, pending)
            {
                Some(next) => {
                    turns.next = next;
                    return self.instant_at(next.at).min(heartbeat);
                }
                None => *recovery = None,
            }
        }
        heartbeat
    }

    fn device_key(&self) -> Option<DeviceKey> {
        self.key.as_ref().map(|s| DeviceKey::from_bytes(s))
    }

    /// `GET /v1/health` on each endpoint in order until one answers.
    async fn probe(&self, servers: &[String]) -> Probe {
        let lang = self.lang();
        let opts = SyncOptions {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            ..SyncOptions::default()
        };
        // Through the sync engine, so that the ledger's outage record counts the probes.
        let answers = match kaipiao_sync::probe_health(&self.ledger, servers, &opts).await {
            Ok(answers) => answers,
            Err(e) => {
                return Probe::Down {
                    endpoint: servers.first().cloned(),
                    detail: e.message(lang),
                }
            }
        };
        let mut first_failure: Option<(String, String)> = None;
        let mut busy: Option<(String, String)> = None;
        for (i, (endpoint, answer)) in answers.into_iter().enumerate() {
            match answer {
                Ok(health) => {
                    let paced = health.admission.is_some();
                    if let Some((ep, detail)) = busy {
                        if i > 0 {
                            return Probe::Busy {
                                endpoint: ep,
                                detail,
                            };
                        }
                    }
                    return Probe::Up {
                        endpoint,
                        primary: i == 0,
                        paced,
                    };
                }
                Err(e) => {
                    let overloaded = e.is_overload_refusal();
                    let detail = describe_failure(&e, lang);
                    if overloaded && busy.is_none() {
                        busy = Some((endpoint.clone(), detail.clone()));
                    }
                    if first_failure.is_none() {
                        first_failure = Some((endpoint.clone(), detail));
                    }
                }
            }
        }
        if let Some((endpoint, detail)) = busy {
            return Probe::Busy { endpoint, detail };
        }
        let (endpoint, detail) = first_failure
            .map(|(e, d)| (Some(e), d))
            .unwrap_or((None, String::new()));
        Probe::Down { endpoint, detail }
    }

    /// One sync run (background or "Sync now").
    /// `max_items`: one share of a recovery plan (None: everything).
    async fn drain(
        &mut self,
        progress: Option<ProgressFn>,
        manual: bool,
        max_items: Option<usize>,
    ) -> DeskResult<SyncSummaryDto> {
        let lang = self.lang();
        let Some(key) = self.device_key() else {
            return Err(DeskError::locked(lang));
        };
        let pending_before = self.pending();
        if let Some(p) = &progress {
            p(SyncEvent::Started {
                pending: pending_before,
            });
        }
        self.shared.syncing.store(true, Ordering::SeqCst);
        let done = AtomicU32::new(0);
        let up: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());
        let notify = self.notify.clone();
        let callback = |p: Progress| {
            let event = match p {
                Progress::Connecting { endpoint } => SyncEvent::Connecting { endpoint },
                Progress::Submitted { number, status } => {
                    let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                    let pending = pending_before.saturating_sub(n);
                    notify.outbox(&OutboxChanged { pending });
                    SyncEvent::Submitted {
                        number,
                        status,
                        done: n,
                        pending,
                    }
                }
                // The app's own runs never wait for a share (its loop does), but a
                // planned wait reads like any other to the progress line.
                Progress::Retrying { after, reason } | Progress::Waiting { after, reason } => {
                    SyncEvent::Retrying {
                        after_ms: u32::try_from(after.as_millis()).unwrap_or(u32::MAX),
                        reason,
                    }
                }
                Progress::Turn {
                    after,
                    turn_at,
                    ahead,
                    reason,
                } => SyncEvent::Turn {
                    after_ms: u32::try_from(after.as_millis()).unwrap_or(u32::MAX),
                    turn_at,
                    ahead: u32::try_from(ahead).unwrap_or(u32::MAX),
                    reason,
                },
                // The app's runs do not wait for the lock (SyncOptions::lock_wait is
                // zero); should one, it reads like any other wait.
                Progress::WaitingForLock { up_to } => SyncEvent::Retrying {
                    after_ms: u32::try_from(up_to.as_millis()).unwrap_or(u32::MAX),
                    reason: "another process is sending this outbox".into(),
                },
                Progress::Endpoint {
                    endpoint,
                    up: is_up,
                } => {
                    up.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((endpoint.clone(), is_up));
                    SyncEvent::Endpoint {
                        endpoint,
                        up: is_up,
                    }
                }
            };
            if let Some(p) = &progress {
                p(event);
            }
        };
        let opts = SyncOptions {
            give_up_after: Duration::from_secs(if manual { 20 } else { 15 }),
            // The loop's own runs are throttled locally when the authority is
            // overloaded; "Sync now" is not (SPEC 6). The recovery plan after an outage
            // is the loop's (see `tick`): the run itself starts at once and sends the
            // share it is given.
            background: !manual,
            max_items,
            ..SyncOptions::default()
        };
        let result = kaipiao_sync::sync_now(&self.ledger, &key, &opts, &callback).await;
        self.shared.syncing.store(false, Ordering::SeqCst);
        let pending = self.pending();
        self.notify.outbox(&OutboxChanged { pending });
        let endpoints = up.into_inner().unwrap_or_else(|p| p.into_inner());
        let last_up = endpoints
            .iter()
            .rev()
            .find(|(_, u)| *u)
            .map(|(e, _)| e.clone());
        let report = match result {
            Ok(r) => {
                self.last_overloaded = r.overloaded;
                self.ask_again = r.ask_again_after.map(|d| Instant::now() + d);
                self.set_turn(r.turn_at.clone());
                r
            }
            Err(SyncError::Ledger(LedgerError::Busy)) => {
                return Err(DeskError::say(
                    Code::Busy,
                    "",
                    lang,
                    kaipiao_core::Msg::new("busy-app"),
                ))
            }
            Err(e) => return Err(DeskError::sync(&e, lang)),
        };
        let servers = self
            .ledger
            .device()
            .ok()
            .flatten()
            .map(|d| d.servers)
            .unwrap_or_default();
        // The authority served: online on the primary, degraded on a backup.
        let served = |worker: &Self| {
            let endpoint = last_up.clone().or_else(|| servers.first().cloned());
            let primary = endpoint.as_deref() == servers.first().map(String::as_str);
            let state = if primary {
                ConnectivityState::Online
            } else {
                ConnectivityState::Degraded
            };
            worker.set_connectivity(state, endpoint, String::new());
        };
        let (outcome, reason) = match &report.outcome {
            SyncOutcome::Complete => {
                self.failures = 0;
                served(self);
                (SyncOutcomeKind::Complete, None)
            }
            // Not this shop's turn: the authority answered, and paces the backlog.
            SyncOutcome::Transient(why) if report.turn_at.is_some() => {
                served(self);
                (SyncOutcomeKind::Transient, Some(why.clone()))
            }
            SyncOutcome::Transient(why) => {
                match &last_up {
                    Some(ep) => self.set_connectivity(
                        ConnectivityState::Degraded,
                        Some(ep.clone()),
                        why.clone(),
                    ),
                    None => self.set_connectivity(
                        ConnectivityState::Offline,
                        servers.first().cloned(),
                        why.clone(),
                    ),
                }
                (
                    SyncOutcomeKind::Transient,
                    Some(transient_reason(why, lang)),
                )
            }
            SyncOutcome::Stopped(why) => (SyncOutcomeKind::Stopped, Some(why.clone())),
        };
        let n = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Ok(SyncSummaryDto {
            outcome,
            reason,
            submitted: n(report.submitted),
            accepted: n(report.accepted),
            rejected: n(report.rejected),
            pending: n(report.pending),
            head_mismatch: report.head_mismatch.clone(),
            alerts: report.alerts.clone(),
            finished_at: kaipiao_core::time::rfc3339(Utc::now()),
            turn_at: report.turn_at.clone(),
        })
    }
}

impl Worker {
    /// See [`SyncHandle::resume`]. Its progress reads like a sync's: the reconciliation's
    /// requests and the run's receipts.
    async fn resume(&mut self, progress: ProgressFn) -> DeskResult<ResumeDto> {
        let lang = self.lang();
        let Some(key) = self.device_key() else {
            return Err(DeskError::locked(lang));
        };
        progress(SyncEvent::Started {
            pending: self.pending(),
        });
        self.shared.syncing.store(true, Ordering::SeqCst);
        let callback = |p: ReconcileProgress| {
            let event = match p {
                ReconcileProgress::Sync(Progress::Connecting { endpoint }) => {
                    SyncEvent::Connecting { endpoint }
                }
                ReconcileProgress::Sync(Progress::Endpoint { endpoint, up }) => {
                    SyncEvent::Endpoint { endpoint, up }
                }
                ReconcileProgress::Sync(Progress::Submitted { number, status }) => {
                    SyncEvent::Submitted {
                        number,
                        status,
                        done: 0,
                        pending: 0,
                    }
                }
                ReconcileProgress::Sync(Progress::Retrying { after, reason })
                | ReconcileProgress::Sync(Progress::Waiting { after, reason }) => {
                    SyncEvent::Retrying {
                        after_ms: u32::try_from(after.as_millis()).unwrap_or(u32::MAX),
                        reason,
                    }
                }
                _ => return,
            };
            progress(event);
        };
        let opts = SyncOptions {
            give_up_after: Duration::from_secs(20),
            ..SyncOptions::default()
        };
        let result = kaipiao_sync::resume_queue(&self.ledger, &key, &opts, &callback).await;
        self.shared.syncing.store(false, Ordering::SeqCst);
        let pending = self.pending();
        self.notify.outbox(&OutboxChanged { pending });
        match result {
            Ok(report) => Ok(crate::queue::resume_dto(&report)),
            Err(SyncError::Ledger(LedgerError::Busy)) => Err(DeskError::say(
                Code::Busy,
                "",
                lang,
                kaipiao_core::Msg::new("busy-app"),
            )),
            Err(e) => Err(DeskError::sync(&e, lang)),
        }
    }
}

/// The cause of a failure as a clerk reads it, short and in `lang`, from its full text
/// (a transport error chain is in the HTTP library's English): the banner shows this and
/// folds the full text behind a Details toggle.
pub fn failure_cause(detail: &str, lang: Lang) -> String {
    let d = detail.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| d.contains(w));
    let (zh, en) = if detail.trim().is_empty() {
        return String::new();
    } else if has(&["connection refused"]) {
        (
            "服务器拒绝连接：服务未运行，或地址有误",
            "the server refused the connection: it is not running, or the address is wrong",
        )
    } else if has(&["timed out", "timeout", "deadline"]) {
        ("服务器没有及时应答", "the server did not answer in time")
    } else if has(&[
        "dns error",
        "failed to lookup",
        "name or service not known",
        "no such host",
    ]) {
        (
            "找不到服务器（域名解析失败）：请检查网络和服务器地址",
            "the server's name could not be found (DNS): check the network and the address",
        )
    } else if has(&["network is unreachable", "no route to host"]) {
        ("本机网络不通", "this computer has no network")
    } else if has(&["certificate", "handshake", "tls"]) {
        (
            "与服务器的安全连接失败（证书）",
            "the secure connection to the server failed (certificate)",
        )
    } else if has(&[
        "connection reset",
        "broken pipe",
        "connection closed",
        "unexpected eof",
    ]) {
        ("连接被服务器中断", "the server broke off the connection")
    } else if let Some(status) = http_status(&d).filter(|s| *s >= 500) {
        let (zh, en) = (
            format!("税务机关服务器暂时停止服务（HTTP {status}）"),
            format!("the tax authority's server is out of service for now (HTTP {status})"),
        );
        return lang.pick(&zh, &en).to_string();
    } else if has(&[
        "error sending request",
        "error trying to connect",
        "client error",
    ]) {
        (
            "无法连接税务机关服务器",
            "the tax authority's server could not be reached",
        )
    } else {
        // Already the clerk's words (an authority's answer, described in `lang`).
        return detail.to_string();
    };
    lang.pick(zh, en).to_string()
}

/// The status of an "HTTP 503 …" in a failure's text (lowercased).
fn http_status(d: &str) -> Option<u16> {
    let at = d.find("http ")? + 5;
    d.get(at..at + 3)?.parse().ok()
}

fn transient_reason(why: &str, lang: Lang) -> String {
    match lang {
        Lang::Zh => format!("税务机关暂时无法受理，发票已安全保存，稍后会自动重试（{why}）"),
        Lang::En => format!("The tax authority cannot take invoices right now; they are safe here and will be retried automatically ({why})"),
    }
}

fn describe_failure(e: &SyncError, lang: Lang) -> String {
    match e {
        SyncError::Authority {
            status, sent_code, ..
        } => match lang {
            Lang::Zh => format!("服务器应答 {status} {sent_code}"),
            Lang::En => format!("the server answered {status} {sent_code}"),
        },
        other => other.message(lang),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transport_error_chain_becomes_a_cause_in_the_clerks_language() {
        let chain = "the authority could not be reached: error sending request for url (http://127.0.0.1:8787/v1/health): client error (Connect): tcp connect error: Connection refused (os error 111)";
        assert_eq!(
            failure_cause(chain, Lang::Zh),
            "服务器拒绝连接：服务未运行，或地址有误"
        );
        assert!(failure_cause(chain, Lang::En).starts_with("the server refused"));
        assert_eq!(
            failure_cause("error sending request: operation timed out", Lang::Zh),
            "服务器没有及时应答"
        );
        assert_eq!(
            failure_cause("服务器应答 503 overloaded", Lang::Zh),
            "服务器应答 503 overloaded"
        );
        assert_eq!(failure_cause("", Lang::En), "");
        assert_eq!(
            failure_cause(
                "无法连接税务机关：HTTP 503 outage: the authority is unavailable",
                Lang::Zh
            ),
            "税务机关服务器暂时停止服务（HTTP 503）"
        );
    }
}
