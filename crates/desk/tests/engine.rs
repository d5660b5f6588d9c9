//! The app's commands on a temp data directory against a real taxd: what the window
//! calls, without the window. The real window is driven in `window.rs`.

use kaipiao_desk::dto::*;
use kaipiao_desk::watcher::Notify;
use kaipiao_desk::{Engine, EngineConfig};
use kaipiao_tests::{
    buyer_tax_id, invalid_tax_id, seller_tax_id, wait_until, Shop, Taxd, PASSPHRASE, TOKEN,
};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Recorder {
    connectivity: Mutex<Vec<ConnectivityDto>>,
    outbox: Mutex<Vec<u32>>,
}

impl Notify for Recorder {
    fn connectivity(&self, c: &ConnectivityDto) {
        self.connectivity.lock().unwrap().push(c.clone());
    }
    fn outbox(&self, o: &OutboxChanged) {
        self.outbox.lock().unwrap().push(o.pending);
    }
}

fn config(data: &Path, passphrase: Option<&str>, lang: &str) -> EngineConfig {
    EngineConfig {
        data_dir: data.to_path_buf(),
        data_dir_from_env: true,
        settings_file: data.join("app-settings.json"),
        env_passphrase: passphrase.map(str::to_string),
        system_locale: lang.to_string(),
        dev_build: true,
    }
}

fn fast_probes() {
    // Read by the sync thread when it starts: probe every ~100 ms while offline.
    std::env::set_var("KAIPIAO_PROBE_MS", "100");
}

fn setup_request(taxd: &Taxd) -> SetupRequest {
    SetupRequest {
        seller_name: "杭州小店贸易有限公司".into(),
        seller_tax_id: seller_tax_id(),
        seller_address: String::new(),
        seller_bank: String::new(),
        device_name: "前台 1".into(),
        servers: vec![taxd.url()],
        token: TOKEN.into(),
        passphrase: Some("not used: KAIPIAO_PASSPHRASE wins".into()),
        authority_key: None,
    }
}

fn draft(kind: &str, buyer_tax: &str, qty: &str, price: &str) -> DraftDto {
    DraftDto {
        kind: kind.into(),
        buyer: PartyDto {
            name: "深圳市某某科技有限公司".into(),
            tax_id: buyer_tax.into(),
            address: String::new(),
            bank: String::new(),
        },
        lines: vec![DraftLineDto {
            name: "*计算机配套产品*键盘".into(),
            unit: "台".into(),
            quantity: qty.into(),
            unit_price: price.into(),
            tax_rate: "0.13".into(),
            ..DraftLineDto::default()
        }],
        price_includes_tax: false,
        original: None,
        remarks: String::new(),
        issuer: "李四".into(),
        credit_reason: None,
    }
}

fn ready_engine(taxd: &Taxd) -> (tempfile::TempDir, Arc<Engine>, Arc<Recorder>) {
    fast_probes();
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let engine = Engine::open(
        config(dir.path(), Some(PASSPHRASE), "zh_CN.UTF-8"),
        rec.clone(),
    )
    .unwrap();
    assert_eq!(engine.state().unwrap().phase, Phase::Setup);
    let result = engine.setup(setup_request(taxd)).unwrap();
    assert!(result.device.device_id.is_some());
    assert_eq!(result.lease.first_number.len(), 20);
    assert!(result.lease.numbers_left > 0);
    assert_eq!(engine.state().unwrap().phase, Phase::Ready);
    (dir, engine, rec)
}

fn sync(engine: &Engine) -> (SyncSummaryDto, Vec<SyncEvent>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let rx = engine
        .sync_now(Arc::new(move |e| sink.lock().unwrap().push(e)))
        .unwrap();
    let summary = rx.blocking_recv().unwrap().unwrap();
    let events = events.lock().unwrap().clone();
    (summary, events)
}

#[test]
fn setup_preview_issue_and_sync_now() {
    let taxd = Taxd::start(&[]);
    let (_dir, engine, rec) = ready_engine(&taxd);

    // The UI never computes money: preview gives lines, totals and capitals.
    let d = draft("special", &buyer_tax_id(), "10", "120");
    let p = engine.preview(&d);
    assert_eq!(p.problem, None);
    assert_eq!(
        (
            p.total_amount.as_str(),
            p.total_tax.as_str(),
            p.total.as_str()
        ),
        ("1200.00", "156.00", "1356.00")
    );
    assert_eq!(p.total_in_words, "壹仟叁佰伍拾陆元整");
    assert_eq!(p.lines[0].as_ref().unwrap().amount, "1200.00");

    // Totals while the buyer is still empty and a blank line was just added.
    let mut partial = d.clone();
    partial.buyer.name.clear();
    partial.lines.push(DraftLineDto {
        tax_rate: "0.13".into(),
        ..DraftLineDto::default()
    });
    let p = engine.preview(&partial);
    assert_eq!(p.total, "1356.00");
    assert!(p.totals_complete);
    assert_eq!(p.problem.as_ref().unwrap().field, "buyer.name");

    let issued = engine.issue(&d).unwrap();
    assert_eq!(issued.status, "pending");
    assert_eq!(issued.number.len(), 20);
    assert_eq!(issued.total_in_words, "壹仟叁佰伍拾陆元整");
    assert!(rec.outbox.lock().unwrap().contains(&1));

    let (summary, events) = sync(&engine);
    assert_eq!(summary.outcome, SyncOutcomeKind::Complete, "{summary:?}");
    assert_eq!(engine.status().unwrap().pending, 0);
    assert!(
        matches!(events.first(), Some(SyncEvent::Started { .. })),
        "{events:?}"
    );
    let detail = engine.show(&issued.number).unwrap();
    assert_eq!(detail.status, "accepted");
    let receipt = detail.receipt.unwrap();
    assert_eq!(receipt.authority_code.len(), 20);
    // The history carries what the UI needs to say it in the clerk's language.
    let entry = |s: &str| detail.history.iter().find(|h| h.status == s).unwrap();
    assert_eq!(
        entry("issued").number.as_deref(),
        Some(issued.number.as_str())
    );
    assert_eq!(
        entry("accepted").authority_code.as_deref(),
        Some(receipt.authority_code.as_str())
    );
    assert!(entry("accepted").reasons.is_empty() && entry("accepted").number.is_none());
    assert_eq!(
        engine.status().unwrap().connectivity.state,
        ConnectivityState::Online
    );
}

#[test]
fn bad_buyer_tax_id_on_special_issues_nothing() {
    let taxd = Taxd::start(&[]);
    let (_dir, engine, _) = ready_engine(&taxd);
    let check = engine.check_tax_id(&invalid_tax_id());
    assert!(!check.valid && !check.message.is_empty(), "{check:?}");
    let e = engine
        .issue(&draft("special", &invalid_tax_id(), "1", "100"))
        .unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.field.as_str()),
        ("invalid_tax_id", "buyer.tax_id")
    );
    assert!(
        e.message.contains("纳税人识别号") || e.message.contains("校验"),
        "Chinese message: {e:?}"
    );
    let e = engine.issue(&draft("special", "", "1", "100")).unwrap_err();
    assert_eq!(e.field, "buyer.tax_id");
    assert_eq!(engine.status().unwrap().pending, 0);
    assert_eq!(
        engine
            .list(&ListQuery {
                limit: 10,
                ..ListQuery::default()
            })
            .unwrap()
            .total,
        0
    );
}

#[test]
fn outage_issue_offline_then_recover() {
    let taxd = Taxd::start(&[]);
    let (_dir, engine, rec) = ready_engine(&taxd);
    wait_until("online", Duration::from_secs(20), || {
        engine.status().unwrap().connectivity.state == ConnectivityState::Online
    });
    taxd.set_faults(serde_json::json!({"outage": true}));
    let issued = engine.issue(&draft("ordinary", "", "2", "50")).unwrap();
    wait_until("offline", Duration::from_secs(20), || {
        engine.status().unwrap().connectivity.state == ConnectivityState::Offline
    });
    assert!(rec
        .connectivity
        .lock()
        .unwrap()
        .iter()
        .any(|c| c.state == ConnectivityState::Offline));
    let st = engine.status().unwrap();
    assert_eq!(st.pending, 1);
    assert!(st.oldest_pending_at.is_some());
    assert!(st.offline_hours_left.is_some() && st.offline_amount_left.is_some());
    // Issuing continues during the outage.
    engine.issue(&draft("ordinary", "", "1", "10")).unwrap();
    assert_eq!(engine.status().unwrap().pending, 2);

    taxd.set_faults(serde_json::json!({"outage": false}));
    // The background loop notices and drains by itself.
    wait_until("drained", Duration::from_secs(30), || {
        engine.status().unwrap().pending == 0
    });
    assert_eq!(engine.show(&issued.number).unwrap().status, "accepted");
    assert_eq!(
        engine.status().unwrap().connectivity.state,
        ConnectivityState::Online
    );
}

#[test]
fn credit_note_prefilled_from_the_original() {
    let taxd = Taxd::start(&[]);
    let (_dir, engine, _) = ready_engine(&taxd);
    let original = engine
        .issue(&draft("special", &buyer_tax_id(), "3", "100"))
        .unwrap();
    let credit = engine.credit_draft(&original.number).unwrap();
    assert_eq!(credit.kind, "credit");
    assert_eq!(credit.original.as_deref(), Some(original.number.as_str()));
    assert_eq!(credit.lines[0].quantity, "-3");
    let p = engine.preview(&credit);
    assert_eq!(p.problem, None, "{p:?}");
    assert_eq!(p.total, "-339.00");
    assert_eq!(p.total_in_words, "负叁佰叁拾玖元整");
    let issued = engine.issue(&credit).unwrap();
    assert_eq!(issued.kind, "credit");
    // Credited in full: a second credit note is refused by the engine.
    assert!(engine.issue(&credit).is_err());
    let detail = engine.show(&issued.number).unwrap();
    assert!(!detail.can_credit);
    assert_eq!(detail.invoice.original.unwrap().number, original.number);
}

#[test]
fn list_filters_and_pages_newest_first() {
    let taxd = Taxd::start(&[]);
    let (_dir, engine, _) = ready_engine(&taxd);
    let mut numbers = Vec::new();
    for i in 0..30 {
        let mut d = draft("ordinary", "", "1", &format!("{}", 10 + i));
        d.buyer.name = if i % 3 == 0 {
            format!("甲方 {i}")
        } else {
            format!("乙方 {i}")
        };
        numbers.push(engine.issue(&d).unwrap().number);
    }
    let page = engine
        .list(&ListQuery {
            offset: 0,
            limit: 10,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(page.total, 30);
    assert_eq!(page.rows.len(), 10);
    assert_eq!(page.rows[0].number, numbers[29]);
    let page = engine
        .list(&ListQuery {
            offset: 25,
            limit: 10,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(page.rows.len(), 5);
    let buyer = engine
        .list(&ListQuery {
            buyer: Some("甲方".into()),
            limit: 100,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(buyer.total, 10);
    let by_number = engine
        .list(&ListQuery {
            search: Some(numbers[7].clone()),
            limit: 100,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(by_number.total, 1);
    // The background sync may be draining meanwhile: together they are all.
    let count = |s: &str| {
        engine
            .list(&ListQuery {
                status: Some(s.into()),
                limit: 1,
                ..ListQuery::default()
            })
            .unwrap()
            .total
    };
    assert_eq!(count("accepted") + count("pending") + count("rejected"), 30);
    // A day is the shop's day, China time (issue 12, item 6).
    let today = kaipiao_core::time::china_date(&kaipiao_core::time::rfc3339(chrono::Utc::now()))
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let dated = engine
        .list(&ListQuery {
            from: Some(today.clone()),
            to: Some(today),
            limit: 1,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(dated.total, 30);
    let e = engine
        .list(&ListQuery {
            from: Some("yesterday".into()),
            limit: 1,
            ..ListQuery::default()
        })
        .unwrap_err();
    assert_eq!(e.field, "from");
    // The buyer filter and the search narrow together (9 is 甲方's, 8 乙方's).
    let both = |n: &str| {
        engine
            .list(&ListQuery {
                buyer: Some("甲方".into()),
                search: Some(n.into()),
                limit: 10,
                ..ListQuery::default()
            })
            .unwrap()
            .total
    };
    assert_eq!((both(&numbers[9]), both(&numbers[8])), (1, 0));
    // Past the end: no rows, the offset clamped, the total still right.
    let past = engine
        .list(&ListQuery {
            offset: 500,
            limit: 10,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!((past.total, past.offset, past.rows.len()), (30, 30, 0));
    // A new invoice shows at once at the top of a list that was already open.
    let newest = engine.issue(&draft("ordinary", "", "1", "1")).unwrap();
    let page = engine
        .list(&ListQuery {
            offset: 0,
            limit: 10,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(
        (page.total, page.rows[0].number.as_str()),
        (31, newest.number.as_str())
    );
}

/// The CLI and the app open the same data directory: each sees what the other issued,
/// and the app's sync thread and the CLI's sync share the outbox lock.
#[test]
fn cli_and_app_share_a_data_directory() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    fast_probes();
    let engine = Engine::open(
        config(&shop.data, Some(PASSPHRASE), "C"),
        Arc::new(kaipiao_desk::watcher::Silent),
    )
    .unwrap();
    assert_eq!(engine.state().unwrap().phase, Phase::Ready);
    let from_app = engine.issue(&draft("ordinary", "", "1", "100")).unwrap();
    let cli_list = shop.kaipiao(&["--json", "list"]);
    cli_list.expect_code(0);
    assert!(cli_list.json().to_string().contains(&from_app.number));
    let from_cli = shop.issue(&kaipiao_tests::small_draft("CLI 买方", "25"));
    let number = from_cli["invoice"]["number"].as_str().unwrap().to_string();
    let page = engine
        .list(&ListQuery {
            limit: 10,
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.rows[0].number, number);
    // Whoever drains, everything ends accepted exactly once.
    wait_until("both accepted", Duration::from_secs(30), || {
        let out = shop.kaipiao(&["--json", "sync"]);
        out.code == 0 && engine.status().unwrap().pending == 0
    });
    assert_eq!(engine.show(&number).unwrap().status, "accepted");
    shop.kaipiao(&["verify"]).expect_code(0);
}

#[test]
fn locked_until_the_passphrase_is_typed() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    let engine = Engine::open(
        config(&shop.data, None, "en_US.UTF-8"),
        Arc::new(kaipiao_desk::watcher::Silent),
    )
    .unwrap();
    let state = engine.state().unwrap();
    assert_eq!((state.phase, state.lang.as_str()), (Phase::Locked, "en"));
    let e = engine.issue(&draft("ordinary", "", "1", "1")).unwrap_err();
    assert_eq!(e.code, "locked");
    let e = engine.unlock("wrong passphrase").unwrap_err();
    assert_eq!(e.code, "wrong_passphrase");
    assert_eq!(engine.unlock(PASSPHRASE).unwrap().phase, Phase::Ready);
    engine.issue(&draft("ordinary", "", "1", "1")).unwrap();
}

#[test]
fn setup_errors_name_the_field() {
    fast_probes();
    let taxd = Taxd::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        config(dir.path(), None, "zh_CN.UTF-8"),
        Arc::new(kaipiao_desk::watcher::Silent),
    )
    .unwrap();
    let mut req = setup_request(&taxd);
    req.passphrase = Some("short".into());
    assert_eq!(engine.setup(req.clone()).unwrap_err().field, "passphrase");
    req.passphrase = Some("a long enough passphrase".into());
    req.servers = vec!["ftp://nowhere".into()];
    assert_eq!(engine.setup(req.clone()).unwrap_err().field, "servers");
    req.servers = vec![taxd.url()];
    req.seller_tax_id = invalid_tax_id();
    assert_eq!(
        engine.setup(req.clone()).unwrap_err().field,
        "seller.tax_id"
    );
    req.seller_tax_id = seller_tax_id();
    req.token = "wrong-token".into();
    let e = engine.setup(req.clone()).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.field.as_str()),
        ("enrollment_token_invalid", "token")
    );
    // The device exists now, not enrolled: the next attempt only enrols.
    assert_eq!(engine.state().unwrap().phase, Phase::Enrol);
    req.token = TOKEN.into();
    engine.setup(req).unwrap();
    assert_eq!(engine.state().unwrap().phase, Phase::Ready);
}

#[test]
fn bindings_are_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ui/src/lib/bindings/index.ts");
    let generated = kaipiao_desk::dto::typescript_bindings();
    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "ui/src/lib/bindings/index.ts is stale: run `make bindings` and commit the result"
    );
}

/// Issue 10, item 5: the set-up form's authority key fingerprint. A malformed one is
/// refused naming the field; another authority's is refused before anything is enrolled;
/// the right one enrols, and the device shows the fingerprint it pinned.
#[test]
fn setup_trusts_only_the_authority_key_given_in_advance() {
    let taxd = Taxd::start(&[]);
    fast_probes();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(
        config(dir.path(), Some(PASSPHRASE), "en_US.UTF-8"),
        Arc::new(Recorder::default()),
    )
    .unwrap();
    let with_key = |key: &str| SetupRequest {
        authority_key: Some(key.into()),
        ..setup_request(&taxd)
    };
    let e = engine.setup(with_key("not hex")).unwrap_err();
    assert_eq!(
        (e.code.as_str(), e.field.as_str()),
        ("invalid_public_key", "authority_key")
    );
    let e = engine.setup(with_key(&"ab".repeat(32))).unwrap_err();
    assert_eq!(e.code.as_str(), "authority_key_mismatch", "{e:?}");
    let expected = kaipiao_core::PublicKey::from_base64(&taxd.authority_key())
        .unwrap()
        .fingerprint();
    let result = engine.setup(with_key(&expected.to_uppercase())).unwrap();
    assert_eq!(
        result.device.authority_fingerprint.as_deref(),
        Some(expected.as_str())
    );
}

/// Issue 10, item 1: the app's queue panel and Resume button over a real taxd. The
/// authority loses its lease records, a signed 422 stops the queue; the panel says why,
/// what each side holds and what to do; Resume while the authority still refuses keeps it
/// stopped; once the authority's records are back, Resume reconciles, lifts the stop and
/// files the invoice.
#[test]
fn the_queue_panel_explains_a_stop_and_resume_lifts_it_once_reconciled() {
    let mut taxd = Taxd::start(&[]);
    let (_dir, engine, _rec) = ready_engine(&taxd);
    let panel = engine.queue().unwrap();
    assert!(!panel.stopped && panel.alert_id.is_none(), "{panel:?}");
    assert!(!panel.advice.is_empty());

    taxd.stop();
    let saved = tempfile::tempdir().unwrap();
    std::fs::copy(&taxd.db, saved.path().join("taxd.db")).unwrap();
    taxd.edit_db("DELETE FROM leases;");
    let issued = engine.issue(&draft("ordinary", "", "1", "10")).unwrap();
    let (summary, _) = sync(&engine);
    assert_eq!(summary.outcome, SyncOutcomeKind::Stopped, "{summary:?}");

    let panel = engine.queue().unwrap();
    assert!(panel.stopped, "{panel:?}");
    assert!(panel.reason.as_deref().unwrap().contains(&issued.number));
    assert!(panel.alert_id.is_some());
    assert_eq!(panel.local_head.seq, 1);
    // The clerk reads Chinese: the way forward is in Chinese.
    assert!(panel.advice.contains("恢复"), "{}", panel.advice);

    let resume = |engine: &Engine| {
        engine
            .resume_queue(Arc::new(|_| {}))
            .unwrap()
            .blocking_recv()
            .unwrap()
            .unwrap()
    };
    let refused = resume(&engine);
    assert!(refused.was_stopped && !refused.resumed, "{refused:?}");
    assert_eq!(refused.outcome, SyncOutcomeKind::Stopped);
    assert!(engine.queue().unwrap().stopped);

    taxd.stop();
    std::fs::copy(saved.path().join("taxd.db"), &taxd.db).unwrap();
    taxd.restart();
    let resumed = resume(&engine);
    assert!(resumed.resumed, "{resumed:?}");
    assert_eq!(resumed.outcome, SyncOutcomeKind::Complete);
    assert_eq!((resumed.accepted, resumed.pending), (1, 0));
    let panel = engine.queue().unwrap();
    assert!(!panel.stopped && panel.alert_id.is_none(), "{panel:?}");
    assert_eq!(panel.authority_head.map(|a| a.seq), Some(1));
}

/// Another connection's writes (here a second `Ledger` on the same directory, as a
/// `kaipiao issue` process would be) reach the engine with nothing telling it: the list's
/// cached matches are stale by `PRAGMA data_version`, and the change feed announces the
/// new pending count.
#[test]
fn another_connections_issue_reaches_the_list_and_the_change_feed() {
    let taxd = Taxd::start(&[]);
    let (dir, engine, rec) = ready_engine(&taxd);
    // Offline: the invoice stays pending, so the count says 1.
    taxd.set_faults(serde_json::json!({"outage": true}));
    let all = ListQuery {
        limit: 50,
        ..ListQuery::default()
    };
    assert_eq!(engine.list(&all).unwrap().total, 0);

    let other = kaipiao_ledger::Ledger::open(dir.path()).unwrap();
    let key = other
        .unseal_key(&kaipiao_ledger::KeySource::with_passphrase(PASSPHRASE))
        .unwrap();
    let draft =
        kaipiao_core::Draft::from_json(&kaipiao_tests::small_draft("另一个进程", "80")).unwrap();
    let issued = other.issue(&draft, &key, chrono::Utc::now()).unwrap();

    wait_until(
        "the change feed to announce one pending invoice",
        Duration::from_secs(20),
        || rec.outbox.lock().unwrap().contains(&1),
    );
    let page = engine.list(&all).unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.rows[0].number, issued.envelope.invoice.number);
    assert_eq!(page.rows[0].status, "pending");
    assert_eq!(engine.status().unwrap().pending, 1);
}

#[test]
fn scheduled_backups_keep_a_set_number_in_the_chosen_folder_and_restore() {
    use chrono::{TimeDelta, Utc};
    let taxd = Taxd::start(&[]);
    let (dir, engine, _) = ready_engine(&taxd);

    // The defaults: one a day, seven kept, beside the data directory (not in it).
    let defaults = engine.backup_settings();
    assert_eq!((defaults.every_hours, defaults.keep), (24, 7));
    assert!(defaults.folder.ends_with("-backups"), "{}", defaults.folder);

    // Settings the scheduler cannot follow are refused, naming the field.
    let usb = dir.path().join("usb").join("kaipiao");
    let good = BackupSettingsDto {
        folder: usb.display().to_string(),
        every_hours: 24,
        keep: 2,
    };
    for (bad, field) in [
        (
            BackupSettingsDto {
                folder: "backups".into(),
                ..good.clone()
            },
            "folder",
        ),
        (
            BackupSettingsDto {
                keep: 0,
                ..good.clone()
            },
            "keep",
        ),
        (
            BackupSettingsDto {
                every_hours: 100_000,
                ..good.clone()
            },
            "every_hours",
        ),
    ] {
        let e = engine.set_backup_settings(bad).unwrap_err();
        assert_eq!(e.field, field, "{e:?}");
        assert!(!e.message.is_empty());
    }
    engine.set_backup_settings(good.clone()).unwrap();
    // Kept in the settings file, also when the look is changed.
    let mut look = engine.state().unwrap().settings;
    look.theme = "dark".into();
    engine.set_settings(look).unwrap();
    assert_eq!(engine.backup_settings(), good);

    engine.issue(&draft("ordinary", "", "1", "100")).unwrap();
    // Due with none in the folder; then once a day; two kept.
    let t0 = Utc::now();
    assert!(engine.backup_if_due(t0).unwrap());
    assert!(!engine.backup_if_due(t0 + TimeDelta::hours(1)).unwrap());
    assert!(engine.backup_if_due(t0 + TimeDelta::hours(24)).unwrap());
    assert!(engine.backup_if_due(t0 + TimeDelta::hours(48)).unwrap());
    let state = engine.backup_state(t0 + TimeDelta::hours(48));
    assert_eq!(state.backups.len(), 2, "{state:?}");
    assert!(state.backups[0].taken_at > state.backups[1].taken_at);
    assert_eq!(state.last_error, None);
    let next = state.next_due.clone().unwrap();
    assert!(next > state.backups[0].taken_at, "{state:?}");
    for b in &state.backups {
        let info = kaipiao_ledger::read_backup(Path::new(&b.file)).unwrap();
        assert_eq!(info.head.seq, 1);
    }

    // Off: never due.
    engine
        .set_backup_settings(BackupSettingsDto {
            every_hours: 0,
            ..good.clone()
        })
        .unwrap();
    assert!(!engine.backup_if_due(t0 + TimeDelta::days(30)).unwrap());
    assert_eq!(engine.backup_state(Utc::now()).next_due, None);

    // A folder that cannot be written: the failure is kept for the panel.
    let blocked = dir.path().join("not-a-folder");
    std::fs::write(&blocked, b"a file").unwrap();
    engine
        .set_backup_settings(BackupSettingsDto {
            folder: blocked.display().to_string(),
            ..good.clone()
        })
        .unwrap();
    let e = engine.backup_now(Utc::now()).unwrap_err();
    assert_eq!(e.field, "folder");
    assert_eq!(
        engine.backup_state(Utc::now()).last_error,
        Some(e.message.clone())
    );

    // What the app wrote, `kaipiao restore` takes.
    let new = dir.path().join("new-machine");
    let mut restore = std::process::Command::new(kaipiao_tests::binary("kaipiao"));
    restore
        .arg("--data")
        .arg(&new)
        .args(["--json", "restore", &state.backups[0].file])
        .env("KAIPIAO_PASSPHRASE", PASSPHRASE);
    let out = kaipiao_tests::run_with_deadline(
        restore,
        "kaipiao restore".into(),
        None,
        kaipiao_tests::COMMAND_DEADLINE,
    );
    out.expect_code(0);
    assert_eq!(out.json()["head"]["seq"], serde_json::json!(1));
}

/// An older copy of the data directory put back under the app: the authority holds
/// invoices it lacks. The status says so (the queue panel shows), and Resume brings them
/// back with a fresh number block, as `kaipiao queue resume` does.
#[test]
fn resume_brings_back_what_an_older_copy_lacks() {
    let taxd = Taxd::start(&[]);
    let shop = Shop::new(&taxd);
    shop.issue(&kaipiao_tests::small_draft("客户甲", "10.00"));
    shop.sync().expect_code(0);
    let old = shop.copy();
    shop.issue(&kaipiao_tests::small_draft("客户乙", "20.00"));
    shop.sync().expect_code(0);

    fast_probes();
    let rec = Arc::new(Recorder::default());
    let engine = Engine::open(config(&old.data, Some(PASSPHRASE), "zh_CN.UTF-8"), rec).unwrap();
    let (summary, _) = sync(&engine);
    assert_ne!(summary.outcome, SyncOutcomeKind::Complete, "{summary:?}");
    let status = engine.status().unwrap();
    assert!(status.ledger_behind, "{status:?}");
    assert!(engine.queue().unwrap().advice.contains("恢复"));

    let resumed = engine
        .resume_queue(Arc::new(|_| {}))
        .unwrap()
        .blocking_recv()
        .unwrap()
        .unwrap();
    assert!(resumed.resumed, "{resumed:?}");
    assert_eq!(resumed.outcome, SyncOutcomeKind::Complete, "{resumed:?}");
    let status = engine.status().unwrap();
    assert!(!status.ledger_behind, "{status:?}");
    assert_eq!(engine.queue().unwrap().local_head.seq, 2);
    // The next number comes from the fresh block, past every lease granted before.
    let issued = engine.issue(&draft("ordinary", "", "1", "30")).unwrap();
    let leases = engine.state().unwrap().leases;
    let fresh = leases.last().unwrap();
    assert_eq!(issued.number, fresh.first_number, "{leases:?}");
}

/// Issue 11, item 6, without the window: Preview's pages are the PDF's own, rasterised
/// (PNG data URLs of a 210 mm page at 2 px per point); Save PDF… writes exactly the bytes
/// `kaipiao pdf` would, and only to an absolute path; Open writes the PDF afresh into the
/// data directory's `pdf/` folder; an unknown number is named.
#[test]
fn the_pdf_is_previewed_saved_and_written_for_the_viewer() {
    use base64::Engine as _;
    let taxd = Taxd::start(&[]);
    let (dir, engine, _) = ready_engine(&taxd);
    let issued = engine.issue(&draft("ordinary", "", "2", "50")).unwrap();

    let preview = engine.pdf_preview(&issued.number).unwrap();
    assert_eq!(preview.number, issued.number);
    assert_eq!(preview.file_name, format!("发票-{}.pdf", issued.number));
    assert_eq!(preview.pages.len(), 1);
    let png = base64::engine::general_purpose::STANDARD
        .decode(
            preview.pages[0]
                .strip_prefix("data:image/png;base64,")
                .expect("a PNG data URL"),
        )
        .unwrap();
    assert_eq!(&png[1..4], b"PNG");
    // IHDR's width: 595.3 points at 2 px per point.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert!((1185..=1195).contains(&width), "{width}");

    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("a.pdf");
    let saved = engine.save_pdf(&issued.number, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(saved.bytes, bytes.len() as u64);
    assert_eq!(bytes, engine.invoice_pdf(&issued.number).unwrap().bytes);
    assert!(!out.path().join("a.pdf.partial").exists());

    let err = engine
        .save_pdf(&issued.number, Path::new("relative.pdf"))
        .unwrap_err();
    assert_eq!(
        (err.code.as_str(), err.field.as_str()),
        ("invalid_path", "path")
    );

    let opened = engine.pdf_to_open(&issued.number).unwrap();
    assert_eq!(
        Path::new(&opened.path),
        dir.path().join("pdf").join(&preview.file_name)
    );
    assert_eq!(std::fs::read(&opened.path).unwrap(), bytes);

    let err = engine.pdf_preview("26999999999999999999").unwrap_err();
    assert_eq!(err.field, "number", "{err:?}");
}

/// Issue 11, item 7, in the app: Email… while the mail server is down leaves the
/// delivery queued with the reason; the engine's mail thread sends it once the server
/// is back, without the clerk doing anything, and only once. The SMTP settings come
/// back without the password, which is not in the ledger file in plain text.
#[test]
fn the_mail_thread_sends_a_queued_delivery_once_the_server_is_back() {
    // The backoff's first delay (and the thread's look) is 100 ms here, a minute by default.
    std::env::set_var("KAIPIAO_MAIL_RETRY_MS", "100");
    let taxd = Taxd::start(&[]);
    let (dir, engine, _) = ready_engine(&taxd);
    let issued = engine.issue(&draft("ordinary", "", "1", "80")).unwrap();
    let mut server = kaipiao_tests::SmtpServer::start(Some(("u@example.com", "pw 12345")), &[]);
    let port = server.port;
    let refused = engine
        .set_smtp_settings(SmtpSettingsRequest {
            host: "127.0.0.1".into(),
            port,
            user: "u@example.com".into(),
            from: "not an address".into(),
            security: "plain".into(),
            password: Some("pw 12345".into()),
        })
        .unwrap_err();
    assert_eq!(
        (refused.code.as_str(), refused.field.as_str()),
        ("invalid_email", "from")
    );
    let stored = engine
        .set_smtp_settings(SmtpSettingsRequest {
            host: "127.0.0.1".into(),
            port,
            user: "u@example.com".into(),
            from: "shop@example.com".into(),
            security: "plain".into(),
            password: Some("pw 12345".into()),
        })
        .unwrap()
        .expect("stored");
    assert_eq!(stored.security, "plain");
    let file = std::fs::read(dir.path().join("ledger.sqlite3")).unwrap();
    assert!(!file.windows(8).any(|w| w == b"pw 12345"));
    server.stop();

    let queued = engine
        .deliver(&issued.number, "buyer@example.com", false)
        .unwrap();
    assert_eq!(queued.status, "queued");
    assert!(queued.last_error.is_some());
    let detail = engine.show(&issued.number).unwrap();
    assert_eq!(detail.deliveries.len(), 1);
    assert_eq!(detail.deliveries[0].status, "queued");

    let server =
        kaipiao_tests::SmtpServer::start_on(port, Some(("u@example.com", "pw 12345")), &[]);
    server.wait_for(1);
    wait_until(
        "the delivery recorded as sent",
        Duration::from_secs(30),
        || engine.show(&issued.number).unwrap().deliveries[0].status == "sent",
    );
    // Asking again answers the delivery that went; nothing more is sent.
    let again = engine
        .deliver(&issued.number, "buyer@example.com", false)
        .unwrap();
    assert_eq!((again.id, again.status.as_str()), (queued.id, "sent"));
    assert_eq!(server.messages().len(), 1);
}
