// Typed calls into the Rust side. Every type comes from the generated bindings: a field
// renamed in src-tauri/src/dto.rs breaks this file at build time, not the clerk at run time.
import { Channel, invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type {
  Code,
  DeskError,
  AppStateDto,
  ConnectivityDto,
  DraftDto,
  InvoiceDetailDto,
  InvoicePage,
  IssuedDto,
  ListQuery,
  OutboxChanged,
  PreviewDto,
  PdfPreviewDto,
  SavedPdfDto,
  OpenedPdfDto,
  SmtpSettingsDto,
  SmtpSettingsRequest,
  DeliveryDto,
  TillDefaultsDto,
  CatalogItemDto,
  CatalogBuyerDto,
  CatalogSavedDto,
  BatchCheckDto,
  BatchRunDto,
  SavedFileDto,
  StatsDto,
  QueueDto,
  BackupSettingsDto,
  BackupStateDto,
  ResumeDto,
  SettingsDto,
  SetupRequest,
  SetupResult,
  StatusDto,
  SyncEvent,
  SyncSummaryDto,
  TaxIdCheckDto,
} from './bindings';

export type * from './bindings';

/** A rejected command: always `{code, message, field}` (message already translated). */
export function asDeskError(e: unknown): DeskError {
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) {
    const o = e as Partial<DeskError>;
    // The Rust side only sends codes of the union; anything else is passed on as it came.
    return { code: String(o.code) as Code, message: String(o.message), field: String(o.field ?? '') };
  }
  return { code: 'internal', message: String(e), field: '' };
}

async function call<T>(cmd: string, args?: Record<string, unknown>): Promise<T> {
  try {
    return await invoke<T>(cmd, args);
  } catch (e) {
    throw asDeskError(e);
  }
}

export const api = {
  appState: () => call<AppStateDto>('app_state'),
  setSettings: (settings: SettingsDto) => call<AppStateDto>('set_settings', { settings }),
  setServers: (servers: string[]) => call<AppStateDto>('set_servers', { servers }),
  openDataDir: (path: string) => call<AppStateDto>('open_data_dir', { path }),
  checkTaxId: (input: string) => call<TaxIdCheckDto>('check_tax_id', { input }),
  setup: (request: SetupRequest) => call<SetupResult>('setup', { request }),
  unlock: (passphrase: string) => call<AppStateDto>('unlock', { passphrase }),
  preview: (draft: DraftDto) => call<PreviewDto>('preview', { draft }),
  issue: (draft: DraftDto) => call<IssuedDto>('issue', { draft }),
  status: () => call<StatusDto>('status'),
  syncNow: (onProgress: (e: SyncEvent) => void) => {
    const channel = new Channel<SyncEvent>();
    channel.onmessage = onProgress;
    return call<SyncSummaryDto>('sync_now', { onProgress: channel });
  },
  queueState: () => call<QueueDto>('queue_state'),
  backupState: () => call<BackupStateDto>('backup_state'),
  setBackupSettings: (settings: BackupSettingsDto) => call<BackupStateDto>('set_backup_settings', { settings }),
  backupNow: () => call<BackupStateDto>('backup_now'),
  resumeQueue: (onProgress: (e: SyncEvent) => void) => {
    const channel = new Channel<SyncEvent>();
    channel.onmessage = onProgress;
    return call<ResumeDto>('resume_queue', { onProgress: channel });
  },
  listInvoices: (query: ListQuery) => call<InvoicePage>('list_invoices', { query }),
  showInvoice: (number: string) => call<InvoiceDetailDto>('show_invoice', { number }),
  creditDraft: (number: string) => call<DraftDto>('credit_draft', { number }),
  reissueDraft: (number: string) => call<DraftDto>('reissue_draft', { number }),
  pdfPreview: (number: string) => call<PdfPreviewDto>('pdf_preview', { number }),
  /** Save PDF…: null when the clerk cancelled the dialog. */
  savePdf: (number: string) => call<SavedPdfDto | null>('save_pdf', { number }),
  openPdf: (number: string) => call<OpenedPdfDto>('open_pdf', { number }),
  setTillDefaults: (till: TillDefaultsDto) => call<AppStateDto>('set_till_defaults', { till }),
  smtpSettings: () => call<SmtpSettingsDto | null>('smtp_settings'),
  setSmtpSettings: (settings: SmtpSettingsRequest) => call<SmtpSettingsDto | null>('set_smtp_settings', { settings }),
  /** Email…: queued and tried at once; the delivery as it stands afterwards. */
  deliver: (number: string, email: string, again = false) => call<DeliveryDto>('deliver', { number, email, again }),
  searchItems: (query: string) => call<CatalogItemDto[]>('search_items', { query }),
  searchBuyers: (query: string) => call<CatalogBuyerDto[]>('search_buyers', { query }),
  saveToCatalogs: (number: string) => call<CatalogSavedDto>('save_to_catalogs', { number }),
  /** 批量开具: the open dialog, then the workbook checked; null when cancelled. */
  batchPick: () => call<BatchCheckDto | null>('batch_pick'),
  batchCheck: (path: string) => call<BatchCheckDto>('batch_check', { path }),
  batchIssue: (path: string, digest: string) => call<BatchRunDto>('batch_issue', { path, digest }),
  saveTemplate: () => call<SavedFileDto | null>('save_template'),
  monthStats: (month: string) => call<StatsDto>('month_stats', { month }),
  exportMonth: (month: string) => call<SavedFileDto | null>('export_month', { month }),
};

export function onConnectivity(f: (c: ConnectivityDto) => void): Promise<UnlistenFn> {
  return listen<ConnectivityDto>('connectivity-changed', (e) => f(e.payload));
}

export function onOutboxChanged(f: (o: OutboxChanged) => void): Promise<UnlistenFn> {
  return listen<OutboxChanged>('outbox-changed', (e) => f(e.payload));
}
