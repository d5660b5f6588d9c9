//! The `#[tauri::command]`s: each takes the engine, runs one engine method off the main
//! thread and hands back its result or an `ApiError`.

use crate::background::ProgressFn;
use crate::dto::*;
use crate::engine::{Engine, EngineConfig};
use crate::error::{ApiError, ApiResult};
use crate::AppState;
use std::path::PathBuf;
use std::sync::Arc;
use tauri::ipc::Channel;
use tauri::State;

async fn blocking<T: Send + 'static>(
    state: &State<'_, AppState>,
    f: impl FnOnce(&Engine) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let engine = state.engine()?;
    tauri::async_runtime::spawn_blocking(move || f(&engine))
        .await
        .map_err(ApiError::internal)?
}

#[tauri::command]
pub async fn app_state(state: State<'_, AppState>) -> ApiResult<AppStateDto> {
    blocking(&state, |e| e.state()).await
}

#[tauri::command]
pub async fn set_settings(
    state: State<'_, AppState>,
    settings: SettingsDto,
) -> ApiResult<AppStateDto> {
    blocking(&state, move |e| e.set_settings(settings)).await
}

#[tauri::command]
pub async fn set_servers(
    state: State<'_, AppState>,
    servers: Vec<String>,
) -> ApiResult<AppStateDto> {
    blocking(&state, move |e| e.set_servers(servers)).await
}

/// Switches to another data directory (an existing shop, or a new empty one) and
/// remembers it; refused when KAIPIAO_DATA pins the directory.
#[tauri::command]
pub async fn open_data_dir(state: State<'_, AppState>, path: String) -> ApiResult<AppStateDto> {
    let current = state.engine()?;
    let lang = current.lang();
    if current.config().data_dir_from_env {
        return Err(ApiError::say(
            "data_dir_pinned",
            "data_dir",
            lang,
            "数据目录由环境变量 KAIPIAO_DATA 指定，无法在此更改",
            "The data directory is set by KAIPIAO_DATA and cannot be changed here",
        ));
    }
    let dir = PathBuf::from(path.trim());
    if path.trim().is_empty() || !dir.is_absolute() {
        return Err(ApiError::say(
            "invalid_path",
            "data_dir",
            lang,
            "请输入数据目录的完整路径（以 / 开头）",
            "Type the full path of the data directory (starting with /)",
        ));
    }
    let notify = state.notify.clone();
    let mut config: EngineConfig = current.config().clone();
    config.data_dir = dir.clone();
    drop(current);
    let engine = tauri::async_runtime::spawn_blocking(move || -> ApiResult<Arc<Engine>> {
        let engine = Engine::open(config, notify)?;
        engine.remember_data_dir(&dir)?;
        Ok(engine)
    })
    .await
    .map_err(ApiError::internal)??;
    let old = state.replace(engine.clone());
    // The old engine's sync thread is joined off the async runtime.
    tauri::async_runtime::spawn_blocking(move || drop(old));
    tauri::async_runtime::spawn_blocking(move || engine.state())
        .await
        .map_err(ApiError::internal)?
}

#[tauri::command]
pub async fn check_tax_id(state: State<'_, AppState>, input: String) -> ApiResult<TaxIdCheckDto> {
    blocking(&state, move |e| Ok(e.check_tax_id(&input))).await
}

#[tauri::command]
pub async fn setup(state: State<'_, AppState>, request: SetupRequest) -> ApiResult<SetupResult> {
    blocking(&state, move |e| e.setup(request)).await
}

#[tauri::command]
pub async fn unlock(state: State<'_, AppState>, passphrase: String) -> ApiResult<AppStateDto> {
    blocking(&state, move |e| e.unlock(&passphrase)).await
}

#[tauri::command]
pub async fn preview(state: State<'_, AppState>, draft: DraftDto) -> ApiResult<PreviewDto> {
    blocking(&state, move |e| Ok(e.preview(&draft))).await
}

#[tauri::command]
pub async fn issue(state: State<'_, AppState>, draft: DraftDto) -> ApiResult<IssuedDto> {
    blocking(&state, move |e| e.issue(&draft)).await
}

#[tauri::command]
pub async fn status(state: State<'_, AppState>) -> ApiResult<StatusDto> {
    blocking(&state, |e| e.status()).await
}

#[tauri::command]
pub async fn sync_now(
    state: State<'_, AppState>,
    on_progress: Channel<SyncEvent>,
) -> ApiResult<SyncSummaryDto> {
    let engine = state.engine()?;
    let progress: ProgressFn = Arc::new(move |event| {
        let _ = on_progress.send(event);
    });
    let rx = engine.sync_now(progress)?;
    let lang = engine.lang();
    drop(engine);
    rx.await.map_err(|_| {
        ApiError::say(
            "sync_stopped",
            "",
            lang,
            "同步已中止，请重试",
            "The sync was interrupted; try again",
        )
    })?
}

#[tauri::command]
pub async fn list_invoices(state: State<'_, AppState>, query: ListQuery) -> ApiResult<InvoicePage> {
    blocking(&state, move |e| e.list(&query)).await
}

#[tauri::command]
pub async fn show_invoice(
    state: State<'_, AppState>,
    number: String,
) -> ApiResult<InvoiceDetailDto> {
    blocking(&state, move |e| e.show(&number)).await
}

#[tauri::command]
pub async fn credit_draft(state: State<'_, AppState>, number: String) -> ApiResult<DraftDto> {
    blocking(&state, move |e| e.credit_draft(&number)).await
}

#[tauri::command]
pub async fn reissue_draft(state: State<'_, AppState>, number: String) -> ApiResult<DraftDto> {
    blocking(&state, move |e| e.reissue_draft(&number)).await
}
