//! kaipiao-app: the clerk's desktop window over the application layer the CLI uses too
//! (kaipiao-desk). It wires kaipiao-desk to Tauri and does nothing else: commands parse,
//! call the desk's `Engine` and hand back its result or its `{code, message, field}`
//! error; the desk's watcher and change feed reach the window as events.
//!
//! It must never compute anything (the desk and the engine crates do), never hold the
//! key in plain text on disk, never let the web view reach the network (the authority is
//! called only from Rust), and never run two drainers of one outbox (single instance,
//! one watcher thread, and the ledger's advisory lock against the CLI).

mod commands;

use kaipiao_desk::dto::{ConnectivityDto, OutboxChanged};
use kaipiao_desk::watcher::Notify;
use kaipiao_desk::{DeskError, DeskResult, Engine, EngineConfig};
use std::sync::{Arc, RwLock};
use tauri::{Emitter, Manager};

/// The identifier of release builds; any other (the dev config's) keeps its own data.
pub const RELEASE_IDENTIFIER: &str = "cn.kaipiao.app";

/// The engine of the open data directory (replaced by "open another data directory"),
/// or why it could not be opened.
pub struct AppState {
    engine: RwLock<Result<Arc<Engine>, DeskError>>,
    notify: Arc<dyn Notify>,
}

impl AppState {
    fn engine(&self) -> DeskResult<Arc<Engine>> {
        self.engine
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, engine: Arc<Engine>) -> Result<Arc<Engine>, DeskError> {
        std::mem::replace(
            &mut *self.engine.write().unwrap_or_else(|p| p.into_inner()),
            Ok(engine),
        )
    }
}

struct TauriNotify(tauri::AppHandle);

impl Notify for TauriNotify {
    fn connectivity(&self, c: &ConnectivityDto) {
        let _ = self.0.emit("connectivity-changed", c);
    }
    fn outbox(&self, o: &OutboxChanged) {
        let _ = self.0.emit("outbox-changed", o);
    }
}

pub fn run() {
    tauri::Builder::default()
        // First: a second launch focuses this window instead of opening another drainer.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            if let Some(w) = app.get_webview_window("main") {
                let _ = w.unminimize();
                let _ = w.set_focus();
            }
        }))
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .setup(|app| {
            let identifier = app.config().identifier.clone();
            let dev_build = identifier != RELEASE_IDENTIFIER;
            // Release: the CLI's default directory, so both open the same ledger.
            // Dev: the app's own directory, away from real data.
            let default_dir = if dev_build {
                app.path().app_data_dir().ok()
            } else {
                kaipiao_desk::config::default_data_dir()
            };
            let config =
                EngineConfig::from_env(default_dir, app.path().app_config_dir().ok(), dev_build);
            let notify: Arc<dyn Notify> = Arc::new(TauriNotify(app.handle().clone()));
            let engine = Engine::open(config, notify.clone());
            app.manage(AppState {
                engine: RwLock::new(engine),
                notify,
            });
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::app_state,
            commands::set_settings,
            commands::set_servers,
            commands::open_data_dir,
            commands::check_tax_id,
            commands::setup,
            commands::unlock,
            commands::preview,
            commands::issue,
            commands::status,
            commands::sync_now,
            commands::queue_state,
            commands::backup_state,
            commands::set_backup_settings,
            commands::backup_now,
            commands::resume_queue,
            commands::list_invoices,
            commands::show_invoice,
            commands::credit_draft,
            commands::reissue_draft,
            commands::pdf_preview,
            commands::save_pdf,
            commands::open_pdf,
            commands::smtp_settings,
            commands::set_smtp_settings,
            commands::deliver,
            commands::set_till_defaults,
            commands::search_items,
            commands::search_buyers,
            commands::save_to_catalogs,
            commands::batch_pick,
            commands::batch_check,
            commands::batch_issue,
            commands::save_template,
            commands::month_stats,
            commands::export_month,
        ])
        .run(tauri::generate_context!())
        .unwrap_or_else(|e| {
            eprintln!("kaipiao-app: {e}");
            std::process::exit(1);
        });
}
