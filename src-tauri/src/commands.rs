//! The `#[tauri::command]`s: each takes the engine, runs one kaipiao-desk method off the
//! main thread and hands back its result or its `DeskError`.

use crate::AppState;
use kaipiao_desk::dto::*;
use kaipiao_desk::watcher::ProgressFn;
use kaipiao_desk::{Code, DeskError, DeskResult, Engine, Msg};
use std::sync::Arc;
use tauri::ipc::Channel;
use tauri::State;

async fn blocking<T: Send + 'static>(
    state: &State<'_, AppState>,
    f: impl FnOnce(&Engine) -> DeskResult<T> + Send + 'static,
) -> DeskResult<T> {
    let engine = state.engine()?;
    tauri::async_runtime::spawn_blocking(move || f(&engine))
        .await
        .map_err(DeskError::internal)?
}

#[tauri::command]
pub async fn app_state(state: State<'_, AppState>) -> DeskResult<AppStateDto> {
    blocking(&state, |e| e.state()).await
}

#[tauri::command]
pub async fn set_settings(
    state: State<'_, AppState>,
    settings: SettingsDto,
) -> DeskResult<AppStateDto> {
    blocking(&state, move |e| e.set_settings(settings)).await
}

#[tauri::command]
pub async fn set_servers(
    state: State<'_, AppState>,
    servers: Vec<String>,
) -> DeskResult<AppStateDto> {
    blocking(&state, move |e| e.set_servers(servers)).await
}

/// Switches to another data directory (an existing shop, or a new empty one) and
/// remembers it; refused when KAIPIAO_DATA pins the directory.
#[tauri::command]
pub async fn open_data_dir(state: State<'_, AppState>, path: String) -> DeskResult<AppStateDto> {
    let current = state.engine()?;
    let config = current.config_for_data_dir(&path)?;
    let dir = config.data_dir.clone();
    let notify = state.notify.clone();
    drop(current);
    let engine = tauri::async_runtime::spawn_blocking(move || -> DeskResult<Arc<Engine>> {
        let engine = Engine::open(config, notify)?;
        engine.remember_data_dir(&dir)?;
        Ok(engine)
    })
    .await
    .map_err(DeskError::internal)??;
    let old = state.replace(engine.clone());
    // The old engine's sync thread is joined off the async runtime.
    tauri::async_runtime::spawn_blocking(move || drop(old));
    tauri::async_runtime::spawn_blocking(move || engine.state())
        .await
        .map_err(DeskError::internal)?
}

#[tauri::command]
pub async fn check_tax_id(state: State<'_, AppState>, input: String) -> DeskResult<TaxIdCheckDto> {
    blocking(&state, move |e| Ok(e.check_tax_id(&input))).await
}

#[tauri::command]
pub async fn setup(state: State<'_, AppState>, request: SetupRequest) -> DeskResult<SetupResult> {
    blocking(&state, move |e| e.setup(request)).await
}

#[tauri::command]
pub async fn unlock(state: State<'_, AppState>, passphrase: String) -> DeskResult<AppStateDto> {
    blocking(&state, move |e| e.unlock(&passphrase)).await
}

#[tauri::command]
pub async fn preview(state: State<'_, AppState>, draft: DraftDto) -> DeskResult<PreviewDto> {
    blocking(&state, move |e| Ok(e.preview(&draft))).await
}

#[tauri::command]
pub async fn issue(state: State<'_, AppState>, draft: DraftDto) -> DeskResult<IssuedDto> {
    blocking(&state, move |e| e.issue(&draft)).await
}

#[tauri::command]
pub async fn status(state: State<'_, AppState>) -> DeskResult<StatusDto> {
    blocking(&state, |e| e.status()).await
}

#[tauri::command]
pub async fn sync_now(
    state: State<'_, AppState>,
    on_progress: Channel<SyncEvent>,
) -> DeskResult<SyncSummaryDto> {
    let engine = state.engine()?;
    let progress: ProgressFn = Arc::new(move |event| {
        let _ = on_progress.send(event);
    });
    let rx = engine.sync_now(progress)?;
    let lang = engine.lang();
    drop(engine);
    rx.await
        .map_err(|_| DeskError::say(Code::SyncStopped, "", lang, Msg::new("sync_stopped")))?
}

#[tauri::command]
pub async fn backup_state(state: State<'_, AppState>) -> DeskResult<BackupStateDto> {
    blocking(&state, |e| Ok(e.backups())).await
}

#[tauri::command]
pub async fn set_backup_settings(
    state: State<'_, AppState>,
    settings: BackupSettingsDto,
) -> DeskResult<BackupStateDto> {
    blocking(&state, move |e| e.set_backup_settings(settings)).await
}

#[tauri::command]
pub async fn backup_now(state: State<'_, AppState>) -> DeskResult<BackupStateDto> {
    blocking(&state, |e| e.back_up()).await
}

#[tauri::command]
pub async fn queue_state(state: State<'_, AppState>) -> DeskResult<QueueDto> {
    blocking(&state, |e| e.queue()).await
}

#[tauri::command]
pub async fn resume_queue(
    state: State<'_, AppState>,
    on_progress: Channel<SyncEvent>,
) -> DeskResult<ResumeDto> {
    let engine = state.engine()?;
    let progress: ProgressFn = Arc::new(move |event| {
        let _ = on_progress.send(event);
    });
    let rx = engine.resume_queue(progress)?;
    let lang = engine.lang();
    drop(engine);
    rx.await
        .map_err(|_| DeskError::say(Code::SyncStopped, "", lang, Msg::new("sync_stopped")))?
}

#[tauri::command]
pub async fn list_invoices(
    state: State<'_, AppState>,
    query: ListQuery,
) -> DeskResult<InvoicePage> {
    blocking(&state, move |e| e.list(&query)).await
}

#[tauri::command]
pub async fn show_invoice(
    state: State<'_, AppState>,
    number: String,
) -> DeskResult<InvoiceDetailDto> {
    blocking(&state, move |e| e.show(&number)).await
}

#[tauri::command]
pub async fn credit_draft(state: State<'_, AppState>, number: String) -> DeskResult<DraftDto> {
    blocking(&state, move |e| e.credit_draft(&number)).await
}

#[tauri::command]
pub async fn reissue_draft(state: State<'_, AppState>, number: String) -> DeskResult<DraftDto> {
    blocking(&state, move |e| e.reissue_draft(&number)).await
}

#[tauri::command]
pub async fn pdf_preview(state: State<'_, AppState>, number: String) -> DeskResult<PdfPreviewDto> {
    blocking(&state, move |e| e.pdf_preview(&number)).await
}

/// Test builds only: the path the save dialog "answers" with, so a window test drives
/// Save PDF… without a dialog; everything after the dialog is the real code.
#[cfg(debug_assertions)]
const TEST_SAVE_PATH: &str = "KAIPIAO_TEST_SAVE_PATH";

/// The native file dialog, from Rust (the web view gets no file permission): a save
/// dialog proposing `file_name` in the documents folder, or an open dialog; None when the
/// clerk cancelled. Debug builds answer it from `test_env` when set (the window tests).
async fn choose_file(
    app: &tauri::AppHandle,
    save: bool,
    file_name: &str,
    filter: (&str, &[&str]),
    test_env: &str,
) -> DeskResult<Option<std::path::PathBuf>> {
    use tauri::Manager;
    use tauri_plugin_dialog::DialogExt;
    #[cfg(debug_assertions)]
    if let Some(path) = std::env::var_os(test_env) {
        return Ok(Some(std::path::PathBuf::from(path)));
    }
    #[cfg(not(debug_assertions))]
    let _ = test_env;
    let mut dialog = app.dialog().file().add_filter(filter.0, filter.1);
    if save {
        dialog = dialog.set_file_name(file_name);
    }
    if let Ok(dir) = app.path().document_dir() {
        dialog = dialog.set_directory(dir);
    }
    let picked = tauri::async_runtime::spawn_blocking(move || {
        if save {
            dialog.blocking_save_file()
        } else {
            dialog.blocking_pick_file()
        }
    })
    .await
    .map_err(DeskError::internal)?;
    Ok(picked.and_then(|p| p.into_path().ok()))
}

const TEST_OPEN_PATH: &str = "KAIPIAO_TEST_OPEN_PATH";

/// Save PDF…: the native save dialog, proposing `发票-NUMBER.pdf` in the documents folder,
/// then the invoice's PDF written there whole. None when the clerk cancelled.
#[tauri::command]
pub async fn save_pdf(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    number: String,
) -> DeskResult<Option<SavedPdfDto>> {
    let engine = state.engine()?;
    let file_name = kaipiao_desk::print::pdf_file_name(&number);
    let Some(path) = choose_file(&app, true, &file_name, ("PDF", &["pdf"]), TEST_SAVE_PATH).await?
    else {
        return Ok(None);
    };
    tauri::async_runtime::spawn_blocking(move || engine.save_pdf(&number, &path).map(Some))
        .await
        .map_err(DeskError::internal)?
}

/// 批量开具: the open dialog for a workbook, then the workbook checked (nothing issued).
#[tauri::command]
pub async fn batch_pick(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
) -> DeskResult<Option<BatchCheckDto>> {
    let Some(path) = choose_file(&app, false, "", ("Excel", &["xlsx"]), TEST_OPEN_PATH).await?
    else {
        return Ok(None);
    };
    blocking(&state, move |e| e.batch_check(&path).map(Some)).await
}

/// 批量开具: the same workbook checked again (after the clerk fixed it).
#[tauri::command]
pub async fn batch_check(state: State<'_, AppState>, path: String) -> DeskResult<BatchCheckDto> {
    blocking(&state, move |e| e.batch_check(std::path::Path::new(&path))).await
}

/// 批量开具, confirmed: the workbook's valid invoices issued.
#[tauri::command]
pub async fn batch_issue(
    state: State<'_, AppState>,
    path: String,
    digest: String,
) -> DeskResult<BatchRunDto> {
    blocking(&state, move |e| {
        e.batch_issue(std::path::Path::new(&path), &digest)
    })
    .await
}

/// The blank template, saved where the clerk chooses.
#[tauri::command]
pub async fn save_template(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
) -> DeskResult<Option<SavedFileDto>> {
    let Some(path) = choose_file(
        &app,
        true,
        "批量开具模板.xlsx",
        ("Excel", &["xlsx"]),
        TEST_SAVE_PATH,
    )
    .await?
    else {
        return Ok(None);
    };
    blocking(&state, move |e| e.save_template(&path).map(Some)).await
}

/// 统计: a month's figures.
#[tauri::command]
pub async fn month_stats(state: State<'_, AppState>, month: String) -> DeskResult<StatsDto> {
    blocking(&state, move |e| e.month_stats(&month)).await
}

/// 统计's export: the month as a workbook, saved where the clerk chooses.
#[tauri::command]
pub async fn export_month(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    month: String,
) -> DeskResult<Option<SavedFileDto>> {
    let name = format!("发票统计-{month}.xlsx");
    let Some(path) = choose_file(&app, true, &name, ("Excel", &["xlsx"]), TEST_SAVE_PATH).await?
    else {
        return Ok(None);
    };
    blocking(&state, move |e| e.export_month(&month, &path).map(Some)).await
}

/// Open: the PDF written afresh into the data directory and handed to the system viewer.
/// The answer names the file, so the clerk can find it when no viewer is installed.
#[tauri::command]
pub async fn open_pdf(
    app: tauri::AppHandle,
    state: State<'_, AppState>,
    number: String,
) -> DeskResult<OpenedPdfDto> {
    use tauri_plugin_opener::OpenerExt;
    let saved = blocking(&state, move |e| e.pdf_to_open(&number)).await?;
    let viewer_error = app
        .opener()
        .open_path(&saved.path, None::<&str>)
        .err()
        .map(|e| e.to_string());
    Ok(OpenedPdfDto {
        saved,
        viewer_error,
    })
}

#[tauri::command]
pub async fn smtp_settings(state: State<'_, AppState>) -> DeskResult<Option<SmtpSettingsDto>> {
    blocking(&state, |e| e.smtp_settings()).await
}

#[tauri::command]
pub async fn set_smtp_settings(
    state: State<'_, AppState>,
    settings: SmtpSettingsRequest,
) -> DeskResult<Option<SmtpSettingsDto>> {
    blocking(&state, move |e| e.set_smtp_settings(settings)).await
}

/// Email…: queued and tried at once (up to the SMTP timeout, off the main thread).
#[tauri::command]
pub async fn deliver(
    state: State<'_, AppState>,
    number: String,
    email: String,
    again: bool,
) -> DeskResult<DeliveryDto> {
    blocking(&state, move |e| e.deliver(&number, &email, again)).await
}

#[tauri::command]
pub async fn set_till_defaults(
    state: State<'_, AppState>,
    till: TillDefaultsDto,
) -> DeskResult<AppStateDto> {
    blocking(&state, move |e| e.set_till_defaults(till)).await
}

/// The entry form's type-ahead for a line name.
#[tauri::command]
pub async fn search_items(
    state: State<'_, AppState>,
    query: String,
) -> DeskResult<Vec<CatalogItemDto>> {
    blocking(&state, move |e| e.search_items(&query)).await
}

/// The entry form's type-ahead for the buyer name.
#[tauri::command]
pub async fn search_buyers(
    state: State<'_, AppState>,
    query: String,
) -> DeskResult<Vec<CatalogBuyerDto>> {
    blocking(&state, move |e| e.search_buyers(&query)).await
}

/// Ctrl+S after issuing: the invoice's new buyer and items into the catalogs.
#[tauri::command]
pub async fn save_to_catalogs(
    state: State<'_, AppState>,
    number: String,
) -> DeskResult<CatalogSavedDto> {
    blocking(&state, move |e| e.save_to_catalogs(&number)).await
}
