// Generated from crates/desk/src/dto.rs by ts-rs. Do not edit: run
// `make bindings` (UPDATE_BINDINGS=1 cargo test -p kaipiao-desk bindings) instead.

export type Code = "invalid_request" | "idempotency_key_missing" | "idempotency_key_mismatch" | "clock_skew" | "unknown_device" | "bad_request_signature" | "replayed_request" | "enrollment_token_invalid" | "forbidden" | "not_found" | "method_not_allowed" | "chain_gap" | "request_in_progress" | "numbers_exhausted" | "payload_too_large" | "integrity" | "idempotency_key_reused" | "rate_limited" | "internal" | "overloaded" | "outage" | "unavailable" | "prefixes_exhausted" | "invalid_version" | "invalid_currency" | "not_normalized" | "missing_field" | "too_long" | "control_character" | "invalid_tax_id" | "line_count" | "invalid_tax_code" | "invalid_tax_rate" | "invalid_treatment" | "special_treatment" | "invalid_number" | "out_of_range" | "invalid_quantity" | "total_mismatch" | "original_unknown" | "original_not_allowed" | "invalid_credit_reason" | "original_is_credit" | "original_rejected" | "credit_line_not_in_original" | "credit_price_mismatch" | "credit_exceeds_original" | "invalid_id" | "invalid_timestamp" | "issued_in_future" | "issued_at_backwards" | "issued_before_lease" | "single_invoice_cap" | "seller_mismatch" | "invalid_type" | "unknown_field" | "invalid_kind" | "too_many_decimals" | "invalid_line" | "rounding_tolerance" | "credit_price_includes_tax" | "invalid_unit_price" | "clock_behind" | "clock_ahead" | "invalid_lease" | "offline_hours_exceeded" | "offline_amount_exceeded" | "not_initialized" | "already_initialized" | "not_enrolled" | "no_numbers" | "pinned_key_unreadable" | "storage" | "bad_receipt" | "key" | "wrong_passphrase" | "passphrase_empty" | "busy" | "schema_too_new" | "database" | "io" | "invalid_date" | "clock_invalid" | "invalid_attempts" | "lease_signature_invalid" | "lease_wrong_device" | "lease_conflict" | "lease_overlap" | "invalid_server" | "invalid_text" | "invalid_device_id" | "invalid_public_key" | "device_id_changed" | "authority_key_changed" | "unreachable" | "invalid_response" | "no_servers" | "already_enrolled" | "authority_key_mismatch" | "wrong_key" | "no_usable_endpoint" | "unauthorized" | "unrecognized" | "bad_lease" | "head_mismatch" | "receipt_mismatch" | "unexpected_answer" | "unsigned_verdict" | "invalid_json" | "unreadable_file" | "passphrase_mismatch" | "invalid_amount" | "transient" | "queue_stopped" | "not_reconciled" | "numbers_given_up" | "not_printable" | "pending_invoices" | "mail_not_set" | "invalid_email" | "delivery_failed" | "invalid_workbook" | "invalid_cell" | "serial_conflict" | "locked" | "data_dir_pinned" | "invalid_path" | "weak_passphrase" | "invalid_status" | "invalid_language" | "invalid_theme" | "not_creditable" | "sync_stopped";

export type DeskError = { 
/**
 * Stable machine code (`invalid_tax_id`, `offline_amount_exceeded`, `locked`, ...).
 */
code: Code, 
/**
 * What happened and what to do, in the UI language.
 */
message: string, 
/**
 * Path of the field in the request (`buyer.tax_id`, `lines[0].quantity`), "" when none.
 */
field: string, };

export type PartyDto = { name: string, tax_id: string, address: string, bank: string, };

export type DraftLineDto = { name: string, tax_code: string, spec: string, unit: string, quantity: string, unit_price: string, 
/**
 * One of the SPEC rates ("0.13" ... "0").
 */
tax_rate: string, 
/**
 * "" (standard), "zero_rated", "exempt" or "non_taxable".
 */
treatment: "" | "zero_rated" | "exempt" | "non_taxable", };

export type DraftDto = { 
/**
 * "ordinary" (普通发票), "special" (专用发票) or "credit" (红字发票).
 */
kind: "ordinary" | "special" | "credit", buyer: PartyDto, lines: Array<DraftLineDto>, price_includes_tax: boolean, 
/**
 * Number of the original invoice (credit notes only).
 */
original: string | null, remarks: string, issuer: string, 
/**
 * A credit note's reason: "01" 开票有误, "02" 销货退回, "03" 服务中止, "04" 销售折让.
 */
credit_reason: "01" | "02" | "03" | "04" | null, };

export type LineDto = { name: string, tax_code: string, spec: string, unit: string, quantity: string, unit_price: string, amount: string, tax_rate: string, treatment: "standard" | "zero_rated" | "exempt" | "non_taxable", tax: string, };

export type PreviewDto = { 
/**
 * One entry per draft line, in order; None for a line that cannot be computed yet.
 */
lines: Array<LineDto | null>, total_amount: string, total_tax: string, total: string, total_in_words: string, totals_complete: boolean, problem: DeskError | null, };

export type WarningDto = { 
/**
 * "offline_hours" or "offline_amount".
 */
limit: "offline_hours" | "offline_amount", 
/**
 * 75, 90, or 100 (used up).
 */
threshold: number, message: string, };

export type IssuedDto = { number: string, id: string, kind: "ordinary" | "special" | "credit", 
/**
 * Always "pending" right after issuance: the authority has not answered yet.
 */
status: "pending", total: string, total_in_words: string, warnings: Array<WarningDto>, 
/**
 * What of this invoice the catalogs do not hold yet (saved with Ctrl+S).
 */
new_to_catalog: NewToCatalogDto, };

export type TaxIdCheckDto = { input: string, normalized: string, valid: boolean, 
/**
 * Why not, in the UI language; "" when valid or empty.
 */
message: string, };

export type DeviceDto = { device_id: string | null, device_name: string, seller: PartyDto, public_key: string, authority_public_key: string | null, 
/**
 * The pinned authority key's fingerprint (lowercase hex SHA-256), for a person to
 * compare with the one the authority publishes.
 */
authority_fingerprint: string | null, servers: Array<string>, created_at: string, enrolled_at: string | null, 
/**
 * "passphrase_file" or "os_keyring".
 */
key_protection: "passphrase_file" | "os_keyring", };

export type LeaseDto = { lease_id: string, first_number: string, last_number: string, numbers_left: number, offline_hours: number, offline_amount_cap: string, single_invoice_cap: string, granted_at: string, };

export type Phase = "setup" | "enrol" | "locked" | "ready";

export type SettingsDto = { 
/**
 * "system", "zh" or "en".
 */
language: "system" | "zh" | "en", 
/**
 * "system", "light" or "dark".
 */
theme: "system" | "light" | "dark", };

export type AppStateDto = { phase: Phase, data_dir: string, 
/**
 * The data directory was fixed by KAIPIAO_DATA and cannot be switched in the app.
 */
data_dir_from_env: boolean, 
/**
 * KAIPIAO_PASSPHRASE is set: the app never asks for the passphrase.
 */
passphrase_from_env: boolean, device: DeviceDto | null, leases: Array<LeaseDto>, 
/**
 * The resolved UI language: "zh" or "en".
 */
lang: "zh" | "en", settings: SettingsDto, 
/**
 * This till's defaults for a new invoice (the ledger's, shared with the CLI).
 */
till: TillDefaultsDto, dev_build: boolean, version: string, };

export type SetupRequest = { seller_name: string, seller_tax_id: string, seller_address: string, seller_bank: string, device_name: string, 
/**
 * Primary first, then backups.
 */
servers: Array<string>, token: string, 
/**
 * Seals the device key; ignored when KAIPIAO_PASSPHRASE is set.
 */
passphrase: string | null, 
/**
 * The authority key's fingerprint given to the shop in advance (64 hex digits):
 * only an authority whose key has it is trusted. None or empty: the key the
 * enrolling server names is pinned.
 */
authority_key: string | null, };

export type SetupResult = { device: DeviceDto, lease: LeaseDto, };

export type ConnectivityState = "unknown" | "online" | "degraded" | "offline";

export type ConnectivityDto = { state: ConnectivityState, 
/**
 * The endpoint in use (online/degraded) or last tried (offline).
 */
endpoint: string | null, 
/**
 * When the state began (RFC 3339).
 */
since: string | null, 
/**
 * The last failure's cause, short and in the UI language ("the server refused the
 * connection"); "" when none.
 */
cause: string, 
/**
 * The last failure in full (the transport's own words, for the Details toggle);
 * "" when none.
 */
detail: string, 
/**
 * The authority paces its recovery (issue 13) and this shop's turn is expected then
 * (this device's clock, RFC 3339); the loop sends then on its own.
 */
turn_at: string | null, };

export type OutboxChanged = { pending: number, };

export type AlertDto = { id: number, at: string, code: string, message: string, invoice_id: string | null, };

export type StatusDto = { pending: number, oldest_pending_at: string | null, 
/**
 * Hours left in the offline window, 2 decimals; None without a lease.
 */
offline_hours_left: string | null, offline_hours: number | null, offline_amount_left: string | null, offline_amount_cap: string | null, 
/**
 * 0, 75, 90 or 100: the highest warning reached by either limit.
 */
warning_level: number, warnings: Array<WarningDto>, numbers_left: number, last_sync_at: string | null, queue_stopped: string | null, 
/**
 * The authority, as last heard, holds invoices of this device that this ledger
 * lacks (an older copy put back): the queue panel shows, and Resume brings them back.
 */
ledger_behind: boolean, alerts: Array<AlertDto>, connectivity: ConnectivityDto, 
/**
 * A sync (background or "Sync now") is running.
 */
syncing: boolean, now: string, };

export type SyncEvent = { "event": "started", pending: number, } | { "event": "connecting", endpoint: string, } | { "event": "submitted", number: string, status: "accepted" | "rejected", done: number, pending: number, } | { "event": "retrying", after_ms: number, reason: string, } | { "event": "endpoint", endpoint: string, up: boolean, } | { "event": "turn", after_ms: number, turn_at: string, ahead: number, reason: string, };

export type SyncOutcomeKind = "complete" | "transient" | "stopped";

export type SyncSummaryDto = { outcome: SyncOutcomeKind, 
/**
 * Why it did not complete, in the UI language where known.
 */
reason: string | null, submitted: number, accepted: number, rejected: number, pending: number, head_mismatch: string | null, alerts: Array<string>, finished_at: string, 
/**
 * When this shop's turn is expected while the authority paces its recovery (this
 * device's clock, RFC 3339); None otherwise.
 */
turn_at: string | null, };

export type HeadDto = { seq: number, hash: string, };

export type AuthorityHeadDto = { seq: number, 
/**
 * None when only the seq is known (a signed `chain_gap` named it).
 */
hash: string | null, read_at: string, };

export type QueueDto = { stopped: boolean, reason: string | null, since: string | null, alert_id: number | null, local_head: HeadDto, authority_head: AuthorityHeadDto | null, 
/**
 * The way forward, in the clerk's language.
 */
advice: string, };

export type ResumeDto = { 
/**
 * The queue was stopped when the button was pressed.
 */
was_stopped: boolean, 
/**
 * The queue runs now.
 */
resumed: boolean, 
/**
 * Complete: resumed and drained (or nothing to resume); transient: the authority
 * could not be reached; stopped: the queue stays stopped.
 */
outcome: SyncOutcomeKind, 
/**
 * Why it was not resumed, or what the run left.
 */
reason: string | null, 
/**
 * Invoices the reconciliation found accounted for, and those that differ.
 */
accounted_for: number, mismatched: number, 
/**
 * Receipts stored by the run after resuming, and what is still pending.
 */
accepted: number, rejected: number, pending: number, };

export type ListQuery = { 
/**
 * "pending", "accepted", "rejected" or null for all.
 */
status: "pending" | "accepted" | "rejected" | null, 
/**
 * Number or buyer (name or tax ID), any part.
 */
search: string | null, 
/**
 * Buyer name or tax ID, any part.
 */
buyer: string | null, 
/**
 * YYYY-MM-DD, inclusive.
 */
from: string | null, to: string | null, offset: number, limit: number, };

export type InvoiceRowDto = { seq: number, number: string, id: string, kind: "ordinary" | "special" | "credit", issued_at: string, buyer_name: string, buyer_tax_id: string, total: string, status: "pending" | "accepted" | "rejected", };

export type InvoicePage = { total: number, offset: number, rows: Array<InvoiceRowDto>, };

export type OriginalRefDto = { id: string, number: string, };

export type InvoiceDto = { version: number, id: string, device_id: string, seq: number, prev_hash: string, number: string, kind: "ordinary" | "special" | "credit", issued_at: string, currency: string, seller: PartyDto, buyer: PartyDto, lines: Array<LineDto>, total_amount: string, total_tax: string, total: string, original: OriginalRefDto | null, remarks: string, issuer: string, };

export type ReasonDto = { code: string, message: string, field: string, };

export type ReceiptDto = { status: "accepted" | "rejected", 
/**
 * 校验码: 20 digits.
 */
authority_code: string, received_at: string, reasons: Array<ReasonDto>, authority_signature: string, 
/**
 * The receipt exactly as stored (pretty-printed for reading).
 */
json: string, };

export type HistoryDto = { at: string, 
/**
 * "issued", "accepted" or "rejected".
 */
status: "issued" | "accepted" | "rejected", detail: string, 
/**
 * The invoice number, on "issued".
 */
number: string | null, 
/**
 * The authority's 20-digit code, on "accepted" and "rejected".
 */
authority_code: string | null, 
/**
 * The authority's reasons, on "rejected".
 */
reasons: Array<ReasonDto>, };

export type OutboxDto = { attempts: number, next_attempt_at: string | null, last_error: string | null, };

export type InvoiceDetailDto = { invoice: InvoiceDto, hash: string, signature: string, status: "pending" | "accepted" | "rejected", total_in_words: string, receipt: ReceiptDto | null, history: Array<HistoryDto>, outbox: OutboxDto | null, 
/**
 * A credit note may be issued against it (not a credit note, not rejected).
 */
can_credit: boolean, 
/**
 * The number of the authority outage it was issued during (`kaipiao outages`), if
 * any: marked on the invoice as RKSV marks receipts issued while its unit failed.
 */
issued_during_outage: bigint | null, 
/**
 * Its deliveries by email, oldest first.
 */
deliveries: Array<DeliveryDto>, };

export type PdfPreviewDto = { number: string, 
/**
 * The name Save PDF… proposes: `发票-NUMBER.pdf`.
 */
file_name: string, 
/**
 * `data:image/png;base64,…`, one per page.
 */
pages: Array<string>, };

export type SavedPdfDto = { number: string, path: string, bytes: number, };

export type OpenedPdfDto = { saved: SavedPdfDto, viewer_error: string | null, };

export type TillDefaultsDto = { issuer: string, kind: "ordinary" | "special", };

export type NewToCatalogDto = { buyer: boolean, 
/**
 * Lines whose item (name and 规格型号) is not in the catalog and has a 税收分类编码.
 */
items: number, };

export type CatalogItemDto = { id: number, name: string, tax_code: string, spec: string, unit: string, 
/**
 * "" when the item has no default price.
 */
price: string, price_includes_tax: boolean, tax_rate: string, treatment: "" | "zero_rated" | "exempt" | "non_taxable", };

export type CatalogBuyerDto = { id: number, name: string, tax_id: string, address: string, bank: string, email: string, kind: "ordinary" | "special", };

export type CatalogSavedDto = { buyers: number, items: number, skipped: Array<string>, };

export type ProblemDto = { sheet: string, row: number, column: string, code: Code, message: string, };

export type BatchInvoiceDto = { serial: string, lines: number, amount: string | null, tax: string | null, total: string | null, problems: Array<ProblemDto>, 
/**
 * The number an earlier import issued it as (skipped by the run).
 */
issued_as: string | null, };

export type BatchCheckDto = { path: string, file_name: string, 
/**
 * SHA-256 of the bytes checked: the run issues only that file as it was checked.
 */
digest: string, invoices: Array<BatchInvoiceDto>, count: number, total: string, file_problems: Array<ProblemDto>, };

export type BatchIssuedDto = { serial: string, number: string, };

export type BatchRefusedDto = { serial: string, problems: Array<ProblemDto>, };

export type BatchRunDto = { issued: Array<BatchIssuedDto>, skipped: Array<BatchIssuedDto>, refused: Array<BatchRefusedDto>, deliveries_queued: number, warnings: Array<WarningDto>, };

export type SavedFileDto = { path: string, bytes: number, };

export type StatsRowDto = { kind: "ordinary" | "special", tax_rate: string, sign: "blue" | "red", count: number, amount: string, tax: string, };

export type StatsDayDto = { 
/**
 * YYYY-MM-DD.
 */
day: string, count: number, 
/**
 * 价税合计 of the day, credit notes subtracted.
 */
total: string, };

export type StatsRateDto = { tax_rate: string, amount: string, tax: string, };

export type StatsDto = { month: string, rows: Array<StatsRowDto>, pending_count: number, pending_amount: string, pending_tax: string, count: number, amount: string, tax: string, total: string, days: Array<StatsDayDto>, rates: Array<StatsRateDto>, };

export type SmtpSettingsDto = { host: string, port: number, user: string, from: string, security: "tls" | "starttls" | "plain", updated_at: string, };

export type SmtpSettingsRequest = { host: string, port: number, user: string, from: string, security: "tls" | "starttls" | "plain", password: string | null, };

export type DeliveryDto = { id: number, number: string, address: string, status: "queued" | "sent" | "failed", attempts: number, 
/**
 * When a queued one is tried next.
 */
next_attempt_at: string, 
/**
 * Why the last attempt did not go (queued: it is retried; failed: given up).
 */
last_error: string | null, created_at: string, sent_at: string | null, };

export type BackupSettingsDto = { 
/**
 * The folder the backups are written to (absolute; a USB stick's folder will do).
 */
folder: string, 
/**
 * Hours between two backups; 0 turns the scheduled backups off.
 */
every_hours: number, 
/**
 * How many backups are kept in the folder; older ones are deleted.
 */
keep: number, };

export type BackupFileDto = { file: string, 
/**
 * When it was taken (RFC 3339, from its name).
 */
taken_at: string, bytes: number, };

export type BackupStateDto = { settings: BackupSettingsDto, backups: Array<BackupFileDto>, 
/**
 * None when scheduled backups are off.
 */
next_due: string | null, last_error: string | null, };
