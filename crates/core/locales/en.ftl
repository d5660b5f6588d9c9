# Kaipiao's messages in English: every error and reason text that crosses a boundary.
#
# Read by Rust (kaipiao_core::i18n, through fluent-bundle) and by the UI
# (ui/src/lib/messages.ts, through @fluent/bundle). zh.ftl has the same ids.
#
# Ids: the error's code (crates/core/src/code.rs) as it goes on the wire, e.g.
# `invalid_tax_rate`; `<code>-<what>` where one code has several messages; `expect-*`,
# `value-*` and `what-*` are parts other messages take as an argument; `advice-<code>` is
# what the app says about an authority's reason; `cli-*` is the command line's own.
# Arguments are { $variables }; the code passes them already formatted (money, quoted
# input), so a message never reformats a number. English texts of the authority's reasons
# go over the wire as they are: change one and a receipt's bytes change.

## Drafts (kaipiao_core::draft)

missing_field-lines = is required: a list of 1 to 2000 lines
invalid_type = expected { $what }
expect-lines = a list of lines
expect-bool = true or false
expect-original = the 20-digit number of the original invoice, as a string
expect-object = a JSON object
expect-text = text
expect-decimal = a decimal number such as "12.5"
expect-quantity = a decimal such as 2 or 0.5
expect-price = a price such as 12.5
expect-original-price = the original line's price
value-empty = (empty)
invalid_kind = { $value } is not a kind (ordinary, special, credit)
unknown_field = is not a draft field (allowed: { $allowed })
invalid_number-json-digits = has more digits than a JSON number carries exactly; write it as a string in quotes, e.g. "1234567.12345678"
missing_field-text = is required ({ $min } to { $max } characters)
too_long = has { $count } characters; at most { $max } are allowed
control_character = contains a control character (line break, tab...); remove it
missing_field-number = is required: { $what }
invalid_number = { $value } is not a decimal number; write { $what }
too_many_decimals = { $value } has { $places } decimal places; at most 8 are allowed
out_of_range = { $value } is too large (at most { $max })
invalid_tax_rate = { $value } is not a VAT rate ({ $rates })
invalid_treatment-zero-rate = { $value } is not allowed with rate 0: use zero_rated (零税率), exempt (免税) or non_taxable (不征税)
invalid_treatment-nonzero-rate = { $value } is only allowed with rate 0; a non-zero rate takes standard
invalid_line = has malformed numbers
rounding_tolerance-line = quantity { $quantity } x unit price { $price } = amount { $amount } with tax { $tax } falls outside the authority's tolerances (0.01 on the amount, 0.06 on the tax); change the quantity or price
out_of_range-sum = the amounts are too large to add up; split the invoice
rounding_tolerance-invoice = the invoice's tax { $tax } differs from the sum of amount x rate { $sum } by more than 1.27; split the invoice
line_count-draft = has { $count } lines; an invoice has 1 to { $max }
credit_price_includes_tax = must be false on a credit note: credit lines carry the original's tax-exclusive price
missing_field-original = a credit note needs the number of the original invoice
invalid_tax_code-draft = { $value } is not a tax classification code (19 digits, or empty)
special_treatment-draft = { $treatment } lines are not allowed on a special invoice (专用发票); issue an ordinary invoice
invalid_quantity-positive = { $value } must be positive; corrections are issued as credit notes (红字发票)
invalid_unit_price = { $value } must not be negative
original_is_credit = { $number } is itself a credit note; credit the original invoice instead
original_rejected = { $number } was rejected by the authority and needs no credit note; issue a new invoice instead
invalid_quantity-negative = { $value } must be negative on a credit note (e.g. -1)
credit_line_not_in_original-draft = no line of { $number } matches this one in name, tax code, spec, unit, rate and treatment
credit_price_mismatch-draft = { $value } differs from the original line's tax-exclusive price { $price }; use { $price } or leave it empty
# $index counts from 0, $line from 1.
credit_exceeds_original-quantity = { $value } credits more than the { $left } left on line { $line } of { $number }
credit_exceeds_original-amount = credits { $amount } against the { $left } left on line { $line } of { $number }
original_not_allowed-draft = only a credit note refers to an original invoice (got { $number }); set kind to credit or remove original
missing_field-buyer-tax-id = a special invoice (专用发票) needs the buyer's tax ID
invalid_tax_id-value = { $value }: { $problem }
clock_ahead = this computer's clock ({ $now }) is { $seconds } s ahead of the tax authority's ({ $authority }), as it last measured: an invoice issued now would be rejected. Set the correct date and time, then issue again
clock_behind = this computer's clock ({ $now }) is behind the previous invoice ({ $previous }); set the correct date and time, then issue again

## Tax IDs (kaipiao_core::taxid)

invalid_tax_id-empty = tax ID is empty: expected an 18-character unified social credit code or a 15-, 17- or 20-character taxpayer number
invalid_tax_id-length = length is { $length }, expected an 18-character unified social credit code or a 15-, 17- or 20-character taxpayer number
invalid_tax_id-uscc-character = character '{ $char }' at position { $position } is not allowed in an 18-character unified social credit code (digits and capital letters except I, O, S, V, Z)
invalid_tax_id-character = character '{ $char }' at position { $position } is not allowed: a tax ID has only digits 0-9 and letters A-Z
invalid_tax_id-check-digit = check digit is { $found }, expected { $expected } (GB 32100-2015)

## The audit of a finished invoice (kaipiao_core::rules): a rejected receipt's reasons.
## taxd sends the English texts on the wire: keep them byte for byte.

invalid_version = version { $version } is not 1
invalid_currency = { $value } is not CNY
not_normalized-seller = is not in normalised form
not_normalized-buyer = is not in normalised form
line_count = has { $count } lines; 1 to { $max } allowed
invalid_tax_code = is not 19 digits
invalid_tax_rate-audit = { $value } is not a VAT rate ({ $rates })
invalid_treatment = { $treatment } does not go with rate { $rate }
special_treatment = { $treatment } lines are not allowed on a special invoice
invalid_number-audit = quantity, unit_price, amount or tax is not written as SPEC 2 requires
out_of_range-audit = quantity, unit_price, amount or tax is out of range
invalid_quantity-credit-audit = a credit line needs a negative quantity and a non-negative price
invalid_quantity-audit = needs a positive quantity and a non-negative price
total_mismatch = { $value } is not the sum of the lines ({ $sum })
missing_field-original-audit = a credit note needs its original
original_unknown = { $number } is not an invoice of this device
original_unknown-id = { $number } does not match the original's id
original_not_allowed = only a credit note refers to an original
credit_line_not_in_original = matches no line of { $number }
credit_price_mismatch = { $value } is not the original's price { $price }
credit_exceeds_original = credits more than is left on line { $index } of { $number }

## Leases and the offline limits (kaipiao_core::lease)

invalid_lease = the authority's lease has a malformed { $field }: { $what }
single_invoice_cap-issue = the invoice amount { $amount } is over the single-invoice cap { $cap } of the lease by { $over }; split it into several invoices
offline_hours_exceeded = the offline window of { $hours } hours is used up (over by { $over } h since the oldest unsynced invoice); connect and run sync before issuing more
offline_amount_exceeded = unsynced invoices would total { $total } against the offline cap { $cap } (over by { $over }); run sync before issuing more
offline_hours_exceeded-authority = issued { $over } h past the offline window of { $hours } hours, counted from seq { $seq } issued at { $oldest }, the oldest invoice the authority had not received by then
offline_amount_exceeded-authority = the invoices the authority had not received when this one was issued (from seq { $seq }) total { $total } with it, over the offline cap { $cap } by { $over }
warning-offline_hours = { $percent }% of the offline window is used; sync soon
warning-offline_amount = { $percent }% of the offline amount cap is used; sync soon

## Server addresses (kaipiao_core::server)

invalid_server-unparsable = not a URL ({ $why }); write it as https://host[:port]
invalid_server-scheme = expected http:// or https://
invalid_server-no-host = no host
invalid_server-plain-http = plain http:// is allowed only to this computer (localhost, 127.0.0.1); use https:// (kaipiao enroll --allow-insecure-http allows one on purpose, for tests)
invalid_server-query = a server address has no ?query or #fragment

## The authority's own findings (taxd): reasons of a rejected receipt, English on the wire.

invalid_id = { $value } is not a lowercase hyphenated UUID
invalid_timestamp-form = { $value } is not RFC 3339 UTC with Z and whole seconds
invalid_timestamp = { $value } is not an RFC 3339 time
issued_in_future = { $value } is more than { $seconds } s after the authority's time { $now }; correct the device clock
issued_at_backwards = { $value } is before the previous invoice's { $previous }; issued_at never goes backwards along the chain: correct the device clock
issued_before_lease = { $value } is more than { $seconds } s before { $granted }, when the lease of number { $number } was granted; an invoice cannot be issued before its number was: correct the device clock
single_invoice_cap = the invoice amount { $amount } is over the lease's single-invoice cap { $cap } by { $over }
seller_mismatch = the seller ({ $name }, { $tax_id }) is not the one enrolled for this device ({ $enrolled_name }, { $enrolled_tax_id }); enrol the device again after a change

## The ledger (kaipiao_ledger): LedgerError::message and its refusals. Which command to
## run next is the CLI's to add (cli-next-*), never the library's.

not_initialized = this data directory has no device yet
already_initialized = this data directory already has a device
not_enrolled = the device is not enrolled with an authority
no_numbers = no invoice numbers left; connect to the authority and sync to get a new lease
integrity = integrity failure at seq { $seq }: { $what }
pinned_key_unreadable = the authority key pinned at enrolment cannot be read ({ $why }): the device record in this ledger was damaged or edited, and receipts and leases cannot be checked until the data directory is restored from a backup
storage = the storage cannot keep the ledger safe: { $why }; keep the data directory on a local disk (not a network share or a read-only medium) and try again
bad_receipt = receipt refused: { $why }
key = device key: { $why }
wrong_passphrase = wrong passphrase for the device key; check it (or KAIPIAO_PASSPHRASE) and try again
not_found-invoice = no invoice { $number } in this ledger
not_found-alert = no alert { $id }
busy = another process is syncing this data directory
schema_too_new = the ledger was written by a newer Kaipiao (schema { $found }, this program knows { $known }); update Kaipiao
database = database: { $why }
io = file: { $why }
passphrase_empty = is empty; choose a passphrase to seal the device key (KAIPIAO_PASSPHRASE)
lease_signature_invalid = does not verify against the authority key pinned at enrolment; the lease is not stored
lease_wrong_device = the lease is for device { $device }, this is { $this }
lease_conflict = lease { $lease } is already stored with other terms
lease_overlap = numbers { $first }..{ $last } of prefix { $prefix } overlap lease { $other }; a number is never used twice
invalid_server = { $value } is not a server address: { $problem }
invalid_text-device-name = needs 1 to 100 characters without line breaks (got { $count })
invalid_device_id = { $value } is not a lowercase hyphenated UUID
invalid_public_key = is not 32 bytes of standard base64
invalid_public_key-fingerprint = expected 64 hex digits: the SHA-256 of the tax authority's key, as it publishes it (or leave it empty)
device_id_changed = this data directory is already enrolled as device { $existing }; the authority answered { $answered }. Use a new data directory for a new device
authority_key_changed = differs from the authority key pinned at enrolment; receipts signed with it would not be trusted. Check that the server is the real authority
missing_field-attempt-endpoint = a failed attempt names the endpoint it went to
invalid_attempts = a failed attempt stands for at least 1 request (got 0)
missing_field-outage-endpoint = the end of an outage names the endpoint that answered
invalid_date = { $value } is not a date (2026-01-31) or an RFC 3339 time (2026-01-31T08:00:00Z)
clock_invalid = this computer's clock is set before 1970; set the correct date and time
out_of_range-record = the invoice amount is too large to record
payload_too_large-invoice = the signed invoice would be { $size } bytes, over the { $limit } bytes the tax authority accepts for one invoice, so it could never be filed: split it into several invoices with fewer lines or shorter texts
original_unknown-issue = { $number } is not an invoice of this device; check the 20-digit number of the original

## The sync engine (kaipiao_sync): SyncError::message

unreachable = the tax authority could not be reached: { $why }
refused = the tax authority refused the request ({ $status } { $code }): { $message }
enrollment_token_invalid = The tax authority did not accept this enrolment token; check it and type it again
invalid_response = the tax authority sent an unexpected answer: { $why }
invalid_server-address = invalid server address { $value }: { $why }
no_servers = no tax authority server is configured; enrol the device with a server address first
already_enrolled = this device is already enrolled as { $device }
authority_key_mismatch = the authority key of { $endpoint } ({ $found }) does not match { $expected }; check the server addresses
wrong_key = the device key does not match this ledger's device

## The app (kaipiao-desk, src-tauri): DeskError messages

wrong_passphrase-app = Wrong passphrase for the device key; type it again
not_initialized-app = This data directory has no device yet; complete the first-run setup
not_enrolled-app = The device is not enrolled with the tax authority; complete the first-run setup
locked = The device key is locked; type its passphrase
data_dir_pinned = The data directory is set by KAIPIAO_DATA and cannot be changed here
invalid_path = Type the full path of the data directory (starting with /)
invalid_path-exists = { $path } already exists: choose another file (a backup never overwrites one)
weak_passphrase = The passphrase needs at least 8 characters: it protects this device's key; keep it safe
missing_field-token = Type the enrolment token the tax authority gave you
busy-app = Another program (such as `kaipiao sync`) is syncing this data directory; try again in a moment
invalid_status = status must be pending, accepted or rejected
invalid_language = language must be system, zh or en
invalid_theme = theme must be system, light or dark
not_creditable = A credit note can only be issued against an invoice that is not itself a credit note and was not rejected
sync_stopped = The sync was interrupted; try again
unreachable-app = The tax authority could not be reached; check the address and the network, then try again ({ $why })

## The command line (kaipiao): its own errors, and which command to run next.

cli-next-init = run `kaipiao init` first
cli-next-enroll = run `kaipiao enroll --server URL --token TOKEN` first
cli-then = { $message }; { $next }
cli-no-servers = { $message } (run `kaipiao enroll --server URL`)
cli-sync-busy = another process (the app, or another kaipiao sync) is still sending this outbox after { $seconds } s; it goes on there: run `kaipiao sync` again later, or look at the app
cli-passphrase-prompt = passphrase prompt: { $why }
passphrase_mismatch = the passphrases differ
unreadable_file = { $path }: { $why } (cannot read the file)
invalid_json = the draft is not valid JSON: { $why }
cli-import-line = line { $line }: { $message } (issued before it: { $issued })
invalid_amount = not an amount: write a number with at most 2 decimals, e.g. 1234.56
cli-no-data-dir = no data directory: give --data DIR or set KAIPIAO_DATA

## The app's words for an authority's reason (ui/src/lib/reasons.ts): what it means and
## what to do. The reason's own message stays the authority's.

advice-issued_in_future = The invoice is dated after the tax authority's time: this computer's clock is fast. Correct the system time, then reissue it.
advice-issued_before_lease = The invoice is dated before its number was granted: this computer's clock was set back. Correct the system time, then reissue it.
advice-offline_hours_exceeded = The tax authority counts this invoice as issued past the offline window of its lease (counted from the oldest invoice it had not yet received). Check this computer's clock, sync, then reissue it.
advice-offline_amount_exceeded = The tax authority counts this invoice over the offline amount cap of its lease (with the invoices it had not yet received). Sync, then reissue it.
advice-issued_at_backwards = The invoice is dated before the previous one: this computer's clock was set back. Correct the system time, then reissue it.
advice-invalid_timestamp = The tax authority does not accept the time format. Reissue it; if it is rejected again, contact support.
advice-single_invoice_cap = The amount is over the single-invoice cap. Reissue it as several invoices, or ask the tax authority for a higher cap.
advice-seller_mismatch = The seller differs from the one this device was enrolled for. Enrol the device again after the change, then reissue.
advice-original_rejected = The original invoice was rejected and never counted as a sale: no credit note is needed.
advice-original_unknown = The tax authority has no record of the original invoice. Make sure it was accepted, then issue the credit note.
advice-credit_exceeds_original = The credit is larger than what is left of the original. Reduce the quantities and issue the credit note again.
advice-invalid_tax_id = A tax ID is not valid. Check it with the buyer, then reissue.
advice-invalid_tax_code = A tax classification code is not valid. Choose the right code, then reissue.

queue_stopped-running = The queue runs; nothing to do. `kaipiao sync` (or Sync now) sends what is pending.
queue_stopped-behind = The tax authority holds invoices of this device that this ledger lacks: this data directory is probably an older copy. If the newer copy still exists, stop issuing here and go back to it. Otherwise Resume (`kaipiao queue resume`) reconciles with the authority, brings back what it holds, gives up the numbers the newer copy may have used (they are listed: those invoices are lost with it) and takes a fresh number block; then the queue runs.
queue_stopped-key_reused = The tax authority holds another invoice under this invoice's id. Reconcile (`kaipiao reconcile`) to see what differs and give its output to the authority; once the records agree, Resume (`kaipiao queue resume`).
queue_stopped-refused = The tax authority refused the invoice named in the reason. Resume (`kaipiao queue resume`) reconciles with the authority first: if the records agree, the queue resumes and the invoice is sent again; otherwise it stays stopped and says why. Keep issuing meanwhile: nothing is lost.
pending_invoices = { $path } still holds { $count } invoices the tax authority has not received: sync them first (`kaipiao sync`), or give --replace-pending to replace that ledger anyway (it is kept aside as { $aside }, not deleted)
unreadable_file-backup = { $path } is not a Kaipiao backup: { $why }
invalid_path-backup-folder = Type the full path of the folder for the backups (starting with /), e.g. a USB stick's folder
invalid_path-pdf = Choose the full path of the PDF file to write (starting with /)
out_of_range-backup-hours = Hours between backups: a whole number from 0 (off) to { $max }
out_of_range-backup-keep = Backups to keep: a whole number from 1 to { $max }
not_printable-rejected = invoice { $number } was rejected by the tax authority: it is not an invoice and cannot be printed as one; issue a corrected invoice
not_printable-glyph = the character { $character } (U+{ $code }) has no glyph in the invoice font; change it (for example to a common form of the character) in a corrected invoice
numbers_given_up = numbers { $ranges } were given up when this ledger was brought back from the authority ({ $why }): a lost or newer copy of this device may have used them and never filed them; those invoices are lost with it, and the numbers are never used again
mail_not_set = no mail server is set up for this shop: run kaipiao smtp set --host H --port P --user U --from ADDRESS (or fill in Settings → Email in the app)
invalid_email = { $value } is not an email address: type it as name@example.com
delivery_failed = the email to { $address } was not sent: { $why }
mail-subject = Invoice { $number } from { $seller }
mail-body = Hello,

    attached is { $title }{ $credit } no. { $number } issued by { $seller } on { $date }, total ¥{ $total }.
    { $status }

    The PDF carries the signed invoice and, once accepted, the tax authority's receipt: kaipiao verify-pdf checks it offline, and the authority's invoice check takes its number, date, total and the last 6 digits of the authority code.
mail-status-pending = It is signed by the seller's device and awaiting the tax authority's acceptance.
mail-status-accepted = It was accepted by the tax authority with code { $code }.
invalid_request-smtp-host = Type the mail server's host name, e.g. smtp.example.com
invalid_request-smtp-port = Type the mail server's port (1-65535), e.g. 465 for TLS or 587 for STARTTLS
invalid_request-smtp-security = Choose how the connection is protected: TLS, STARTTLS or none (a relay on this machine or network only)
invalid_credit_reason = { $value } is not a credit reason: give 01 (开票有误, invoiced in error), 02 (销货退回, goods returned), 03 (服务中止, service stopped) or 04 (销售折让, sales discount)
invalid_credit_reason-not-credit = a credit reason belongs to a credit note (kind "credit") only: remove it or make the draft a credit note
invalid_kind-default = { $value } cannot be a till's default kind: choose ordinary (普通发票) or special (专用发票)
invalid_date-month = { $value } is not a month: write it as YYYY-MM, e.g. 2026-11
invalid_request-smtp-plain-login = a login is sent only over TLS or STARTTLS, except to a relay on this machine (127.0.0.1): choose TLS or STARTTLS
invalid_request-smtp-password = type the mail password: a new server or login never gets the stored one
invalid_workbook-zip = the file is not an Excel workbook (.xlsx): { $why }; save it from Excel or WPS as .xlsx (kaipiao template --out FILE.xlsx writes a blank one)
invalid_workbook-too-big = the workbook is larger than { $limit } MiB: split it into several files
invalid_workbook-cells = the workbook has more than { $limit } filled cells: split it into several files
invalid_workbook-sheet = the workbook has no sheet { $sheet }: use the template's sheets 基本信息 and 明细 (kaipiao template --out FILE.xlsx)
invalid_workbook-header = no header row with { $header } in the first { $rows } rows of sheet { $sheet }: keep the template's header row
invalid_workbook-column = sheet { $sheet } has no column { $column }: add it to the header row
invalid_cell-type = the cell holds a { $kind } ({ $value }), not text or a number: type the value itself
invalid_cell-digits = { $value } is stored as a number, and Excel keeps only 15 digits of a number: format the column as text and type the digits again
invalid_cell-number = { $value } is not a number: type digits such as 12.50
invalid_cell-yes-no = { $value } is not 是 or 否: write 是 when 单价 and 金额 include the tax, 否 when they do not
serial_conflict-duplicate = 发票流水号 { $serial } is already used on row { $row }: give each invoice its own serial
serial_conflict-issued = 发票流水号 { $serial } was issued as { $number } with other content: a serial is issued once; give the changed invoice a new serial (or credit { $number })
too_long-serial = 发票流水号 is longer than { $max } characters: shorten it
missing_field-cell = { $column } is empty: fill it in
missing_field-serial-basic = 发票流水号 { $serial } has lines on 明细 but no row on 基本信息: add its row, or correct the serial
missing_field-amount = the line has no 金额 and no 单价: give 金额, or 数量 with 单价
invalid_quantity-zero = 数量 is 0: give the quantity the 金额 is for, or leave 数量 empty for one unit
invalid_amount-mismatch = 金额 { $amount } does not match 数量 × 单价 = { $product } (more than 0.01 apart): correct one of them
invalid_kind-sheet = { $value } is not an invoice type: write 普通发票 or 增值税专用发票
invalid_treatment-sheet = { $value } is not a 免税类型: leave it empty, or write 免税, 不征税 or 零税率
line_count-sheet = 发票流水号 { $serial } has no lines on 明细: add at least one
cli-batch-confirm = This run issues { $count ->
        [one] 1 invoice
       *[other] { $count } invoices
    }, total ¥{ $total } (本次开具 { $count } 份，价税合计 { $total } 元)
cli-batch-done = Issued { $issued }, skipped { $skipped } (issued before), refused { $refused }
cli-batch-skipped = already issued as { $number }
cli-batch-mail = { $count } emails queued for the buyers' addresses: kaipiao sync (or the app) sends them
cli-batch-mail-not-set = { $count } buyers' email addresses were not mailed: no mail server is set up (kaipiao smtp set)
cli-batch-refused = { $count ->
        [one] 1 invoice was
       *[other] { $count } invoices were
    } refused: correct the cells named above and import the file again (what was issued is skipped)
invalid_text-short-name = { $value } has no *简称* prefix: write the item as *简称*名称, e.g. *计算机配套产品*键盘 (the 简称 of its 税收分类编码)
missing_field-tax-code = give the item's 税收分类编码 (19 digits): the tax platform's code table has it
invalid_unit_price-catalog = { $value } is not a default price: give a number above 0 with at most 8 decimals, or none
not_found-catalog = no catalog entry has id { $id }: kaipiao items list / kaipiao buyers list show the ids
invalid_workbook-csv = the file is not CSV as expected (UTF-8, comma-separated): { $why }
invalid_path-catalog = { $path }: give a .csv or an .xlsx file
cli-catalog-imported = Added { $added }, updated { $updated }, refused { $refused }
cli-catalog-refused = { $count ->
        [one] 1 row was
       *[other] { $count } rows were
    } refused: correct the cells named above and import the file again (the rest are saved)
invalid_workbook-changed = { $path } changed since it was checked: check it again before issuing
