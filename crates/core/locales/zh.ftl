# Kaipiao 的中文消息：跨越边界的每条错误和原因文字。ids 与 en.ftl 相同。
#
# Read by Rust (kaipiao_core::i18n) and the UI (ui/src/lib/messages.ts); see en.ftl for
# how ids are named.

## Drafts (kaipiao_core::draft)

missing_field-lines = 必填：1 至 2000 行货物或服务明细
invalid_type = 应为{ $what }
expect-lines = 明细行列表
expect-bool = true 或 false
expect-original = 原发票的 20 位号码（字符串）
expect-object = JSON 对象
expect-text = 文本
expect-decimal = 十进制数字，如 "12.5"
expect-quantity = 十进制数字，如 2 或 0.5
expect-price = 单价，如 12.5
expect-original-price = 原发票行的单价
value-empty = （空）
invalid_kind = { $value } 不是有效的发票种类（ordinary 普通发票、special 专用发票、credit 红字发票）
unknown_field = 不是草稿字段（允许：{ $allowed }）
invalid_number-json-digits = 位数超过 JSON 数字能精确表示的范围，请加引号写成字符串，如 "1234567.12345678"
missing_field-text = 必填（{ $min } 至 { $max } 个字符）
too_long = 共 { $count } 个字符，最多 { $max } 个
control_character = 含有控制字符（换行、制表符等），请删除
missing_field-number = 必填：{ $what }
invalid_number = { $value } 不是十进制数字；应为{ $what }
too_many_decimals = { $value } 有 { $places } 位小数，最多 8 位
out_of_range = { $value } 过大（最多 { $max }）
invalid_tax_rate = { $value } 不是增值税税率（{ $rates }）
invalid_treatment-zero-rate = 税率为 0 时 { $value } 无效：应为 zero_rated（零税率）、exempt（免税）或 non_taxable（不征税）
invalid_treatment-nonzero-rate = { $value } 仅适用于 0 税率；非零税率应为 standard
invalid_line = 数字格式错误
rounding_tolerance-line = 数量 { $quantity } × 单价 { $price } = 金额 { $amount }、税额 { $tax } 超出税务机关允许的误差（金额 0.01、税额 0.06），请调整数量或单价
out_of_range-sum = 金额过大，无法合计，请拆分发票
rounding_tolerance-invoice = 发票税额 { $tax } 与各行金额×税率之和 { $sum } 相差超过 1.27，请拆分发票
line_count-draft = 共 { $count } 行；一张发票应有 1 至 { $max } 行
credit_price_includes_tax = 红字发票必须为不含税价：红字行沿用原发票的不含税单价
missing_field-original = 红字发票须填写原发票号码
invalid_tax_code-draft = { $value } 不是税收分类编码（19 位数字，或留空）
special_treatment-draft = 专用发票不得开具{ $treatment ->
        [exempt] 免税
       *[other] 不征税
    }项目，请开具普通发票
invalid_quantity-positive = { $value } 必须为正数；冲减请开具红字发票
invalid_unit_price = { $value } 不能为负数
original_is_credit = { $number } 本身是红字发票，请针对原蓝字发票开具
original_rejected = { $number } 已被税务机关拒绝，无需开具红字发票，请重新开具蓝字发票
invalid_quantity-negative = { $value } 在红字发票上必须为负数（如 -1）
credit_line_not_in_original-draft = 原发票 { $number } 中没有名称、税收分类编码、规格、单位、税率和征税方式都相同的行
credit_price_mismatch-draft = { $value } 与原发票行不含税单价 { $price } 不同；请填写 { $price } 或留空
credit_exceeds_original-quantity = { $value } 超过原发票 { $number } 第 { $line } 行剩余可冲红数量 { $left }
credit_exceeds_original-amount = 冲红金额 { $amount } 超过原发票 { $number } 第 { $line } 行剩余金额 { $left }
original_not_allowed-draft = 只有红字发票才引用原发票（收到 { $number }）；请将种类设为 credit 或删除 original
missing_field-buyer-tax-id = 专用发票必须填写购买方纳税人识别号
invalid_tax_id-value = { $value }：{ $problem }
clock_ahead = 本机时钟（{ $now }）比税务机关上次测得的时间（{ $authority }）快 { $seconds } 秒，此时开具的发票会被拒绝。请校正日期和时间后再开票
clock_behind = 本机时钟（{ $now }）早于上一张发票的开具时间（{ $previous }），请校正日期和时间后再开票

## Tax IDs (kaipiao_core::taxid)

invalid_tax_id-empty = 纳税人识别号为空，应为 18 位统一社会信用代码或 15、17、20 位纳税人识别号
invalid_tax_id-length = 长度为 { $length }，应为 18 位统一社会信用代码或 15、17、20 位纳税人识别号
invalid_tax_id-uscc-character = 第 { $position } 位字符“{ $char }”不允许：18 位统一社会信用代码只含数字和除 I、O、S、V、Z 以外的大写字母
invalid_tax_id-character = 第 { $position } 位字符“{ $char }”不允许：纳税人识别号只含数字 0-9 和字母 A-Z
invalid_tax_id-check-digit = 校验码为 { $found }，应为 { $expected }（GB 32100-2015）

## The audit of a finished invoice (kaipiao_core::rules)

invalid_version = 版本 { $version } 不是 1
invalid_currency = { $value } 不是 CNY
not_normalized-seller = 销售方信息未规范化
not_normalized-buyer = 购买方信息未规范化
line_count = 共 { $count } 行，应为 1 至 { $max } 行
invalid_tax_code = 不是 19 位数字
invalid_tax_rate-audit = { $value } 不是增值税税率
invalid_treatment = 征税方式 { $treatment } 与税率 { $rate } 不符
special_treatment = 专用发票不得开具免税或不征税项目
invalid_number-audit = 数量、单价、金额或税额的书写格式不符合规范
out_of_range-audit = 数量、单价、金额或税额超出范围
invalid_quantity-credit-audit = 红字发票行须为负数量、非负单价
invalid_quantity-audit = 须为正数量、非负单价
total_mismatch = { $value } 不等于各行合计 { $sum }
missing_field-original-audit = 红字发票须引用原发票
original_unknown = { $number } 不是本设备开具的发票
original_unknown-id = { $number } 与原发票标识不符
original_not_allowed = 只有红字发票才引用原发票
credit_line_not_in_original = 与原发票 { $number } 的任何行都不匹配
credit_price_mismatch = { $value } 不是原发票单价 { $price }
credit_exceeds_original = 超过原发票 { $number } 第 { $line } 行剩余可冲红数量或金额

## Leases and the offline limits (kaipiao_core::lease)

invalid_lease = 税务机关下发的额度 { $field } 格式错误：{ $what }
single_invoice_cap-issue = 发票金额 { $amount } 超过单张发票限额 { $cap }（超出 { $over }），请拆分为多张发票
offline_hours_exceeded = 离线开票时限 { $hours } 小时已用完（自最早未上传发票起超出 { $over } 小时），请联网并同步后再开票
offline_amount_exceeded = 未上传发票金额合计将达 { $total }，超过离线开票限额 { $cap }（超出 { $over }），请先同步
offline_hours_exceeded-authority = 开具时已超出离线开票时限 { $hours } 小时 { $over } 小时（自 { $oldest } 开具的第 { $seq } 号起算，该发票当时尚未送达税务机关）
offline_amount_exceeded-authority = 开具本发票时税务机关尚未收到的发票（自第 { $seq } 号起）连同本张合计 { $total }，超过离线开票限额 { $cap }（超出 { $over }）
warning-offline_hours = 离线开票时限已用 { $percent }%，请尽快同步
warning-offline_amount = 离线开票金额额度已用 { $percent }%，请尽快同步

## Server addresses (kaipiao_core::server)

invalid_server-unparsable = 不是网址（{ $why }），应为 https://主机[:端口]
invalid_server-scheme = 应以 http:// 或 https:// 开头
invalid_server-no-host = 缺少主机名
invalid_server-plain-http = 明文 http:// 只允许连接本机（localhost、127.0.0.1）；请使用 https://（测试时可用 kaipiao enroll --allow-insecure-http 特意允许）
invalid_server-query = 服务器地址不能带 ? 查询或 # 片段

## The authority's own findings (taxd)

invalid_id = { $value } 不是小写连字符格式的 UUID
invalid_timestamp-form = { $value } 不是带 Z 的整秒 RFC 3339 UTC 时间
invalid_timestamp = { $value } 不是 RFC 3339 时间
issued_in_future = 开具时间 { $value } 比税务机关时间 { $now } 晚 { $seconds } 秒以上，请校正设备时钟
issued_at_backwards = 开具时间 { $value } 早于上一张发票的 { $previous }；开具时间不得倒退，请校正设备时钟
issued_before_lease = 开具时间 { $value } 比号码 { $number } 所属号段的授予时间 { $granted } 早 { $seconds } 秒以上；发票不能早于其号码开具，请校正设备时钟
single_invoice_cap = 发票金额 { $amount } 超过额度的单张发票限额 { $cap }（超出 { $over }）
seller_mismatch = 销售方（{ $name }，{ $tax_id }）与本设备登记的销售方（{ $enrolled_name }，{ $enrolled_tax_id }）不符；变更后请重新登记设备

## The ledger (kaipiao_ledger)

not_initialized = 此数据目录尚未设置设备
already_initialized = 此数据目录已设置设备
not_enrolled = 设备尚未向税务机关登记
no_numbers = 发票号码已用完，请联网同步以领取新的号码段
integrity = 第 { $seq } 张发票完整性校验失败：{ $what }
pinned_key_unreadable = 无法读取登记时固定的税务机关公钥（{ $why }）：账本中的设备记录已损坏或被改动，在从备份恢复数据目录之前无法校验回执和号码段
storage = 存储无法保证账本安全：{ $why }；请将数据目录放在本机磁盘上（不要放在网络共享或只读介质上）后重试
bad_receipt = 回执无效，未保存：{ $why }
key = 设备密钥：{ $why }
wrong_passphrase = 设备密钥口令不正确，请核对口令（或 KAIPIAO_PASSPHRASE）后重试
not_found-invoice = 账本中没有发票 { $number }
not_found-alert = 没有编号为 { $id } 的警报
busy = 另一个进程正在同步此数据目录
schema_too_new = 账本由更新版本的 Kaipiao 写入（结构版本 { $found }，本程序支持 { $known }），请升级 Kaipiao
database = 数据库错误：{ $why }
io = 文件错误：{ $why }
passphrase_empty = 为空；请设置用于加密设备密钥的口令（KAIPIAO_PASSPHRASE）
lease_signature_invalid = 无法用登记时固定的税务机关公钥验证，号码段未保存
lease_wrong_device = 号码段属于设备 { $device }，本设备为 { $this }
lease_conflict = 号码段 { $lease } 已以不同内容保存
lease_overlap = 前缀 { $prefix } 的号码 { $first }..{ $last } 与号码段 { $other } 重叠；发票号码不得重复使用
invalid_server = { $value } 不是有效的服务器地址：{ $problem }
invalid_text-device-name = 应为 1 至 100 个字符且不含换行（当前 { $count } 个）
invalid_device_id = { $value } 不是小写带连字符的 UUID
invalid_public_key = 不是 32 字节的标准 base64 公钥
invalid_public_key-fingerprint = 应为 64 位十六进制数字：税务机关公布的其密钥的 SHA-256 指纹（也可留空）
device_id_changed = 此数据目录已登记为设备 { $existing }，税务机关返回 { $answered }；新设备请使用新的数据目录
authority_key_changed = 与登记时固定的税务机关公钥不同，其签名的回执不可信；请确认服务器确为税务机关
missing_field-attempt-endpoint = 失败的请求须注明发往的服务器地址
invalid_attempts = 失败次数至少为 1（当前为 0）
missing_field-outage-endpoint = 结束中断须注明应答的服务器地址
invalid_date = { $value } 不是日期（2026-01-31）或 RFC 3339 时间（2026-01-31T08:00:00Z）
clock_invalid = 本机时钟早于 1970 年，请校正日期和时间
out_of_range-record = 发票金额过大，无法记录
payload_too_large-invoice = 签名后的发票将有 { $size } 字节，超过税务机关对单张发票接受的 { $limit } 字节，永远无法上传：请拆分为几张发票，减少行数或缩短文字
original_unknown-issue = { $number } 不是本设备开具的发票，请核对原发票的 20 位号码

## The sync engine (kaipiao_sync)

unreachable = 无法连接税务机关：{ $why }
refused = 税务机关拒绝了请求（{ $code }）：{ $message }
enrollment_token_invalid = 税务机关不接受此登记令牌，请核对后重新输入
invalid_response = 税务机关返回了无法识别的应答：{ $why }
invalid_server-address = 服务器地址 { $value } 无效：{ $why }
no_servers = 尚未配置税务机关服务器，请先用服务器地址登记设备
already_enrolled = 本设备已登记，设备编号 { $device }
authority_key_mismatch = { $endpoint } 的税务机关公钥与已登记的不一致，请核对服务器地址
wrong_key = 设备密钥与本账本的设备不一致

## The app (kaipiao-desk, src-tauri)

wrong_passphrase-app = 口令不正确，请重新输入设备密钥口令
not_initialized-app = 此数据目录尚未设置设备，请先完成首次设置
not_enrolled-app = 设备尚未向税务机关登记，请先完成首次设置
locked = 设备密钥尚未解锁，请输入口令
data_dir_pinned = 数据目录由环境变量 KAIPIAO_DATA 指定，无法在此更改
invalid_path = 请输入数据目录的完整路径（以 / 开头）
invalid_path-exists = { $path } 已存在：请另选文件名（备份不会覆盖已有文件）
weak_passphrase = 口令至少 8 个字符：它保护本机的设备密钥，请妥善保管
missing_field-token = 请填写税务机关提供的登记令牌
busy-app = 另一个程序（如命令行 kaipiao sync）正在同步此数据目录，请稍后再试
invalid_status = 状态应为 pending、accepted 或 rejected
invalid_language = 语言应为 system、zh 或 en
invalid_theme = 主题应为 system、light 或 dark
not_creditable = 红字发票只能针对未被拒绝的蓝字发票开具
sync_stopped = 同步已中止，请重试
unreachable-app = 无法连接税务机关服务器，请检查地址和网络后重试 ({ $why })

## The command line (kaipiao)

cli-next-init = 请先运行 `kaipiao init`
cli-next-enroll = 请先运行 `kaipiao enroll --server URL --token 令牌`
cli-then = { $message }，{ $next }
cli-no-servers = { $message }（请运行 `kaipiao enroll --server URL`）
cli-sync-busy = 等待 { $seconds } 秒后，另一个进程（应用或另一个 kaipiao sync）仍在上传本机的发票，由它继续：请稍后再运行 `kaipiao sync`，或查看应用
cli-passphrase-prompt = 无法读取口令：{ $why }
passphrase_mismatch = 两次输入的口令不一致
unreadable_file = { $path }: { $why } (无法读取文件)
invalid_json = 草稿不是有效的 JSON: { $why }
cli-import-line = 第 { $line }: { $message } (此前已开具 { $issued })
invalid_amount = 不是金额：应为最多 2 位小数的数字，如 1234.56
cli-no-data-dir = 找不到数据目录：请用 --data DIR 或 KAIPIAO_DATA 指定

## The app's words for an authority's reason (ui/src/lib/reasons.ts)

advice-issued_in_future = 开具时间晚于税务机关的时间：本机时钟走快了。请校正系统时间，再按原内容重新开具。
advice-issued_before_lease = 开具时间早于该号码的授予时间：本机时钟曾被调慢。请校正系统时间，再按原内容重新开具。
advice-offline_hours_exceeded = 税务机关认定本发票开具时已超出号段的离线开票时限（自其尚未收到的最早发票起算）。请检查本机时钟并同步，再重新开具。
advice-offline_amount_exceeded = 税务机关认定本发票连同其尚未收到的发票已超过号段的离线开票限额。请先同步，再重新开具。
advice-issued_at_backwards = 开具时间早于上一张发票：本机时钟曾被调慢。请校正系统时间，再按原内容重新开具。
advice-invalid_timestamp = 开具时间的格式不被税务机关接受。请按原内容重新开具；如再次被拒，请联系技术支持。
advice-single_invoice_cap = 金额超过单张发票限额。请拆分为多张发票重新开具，或向税务机关申请更高的限额。
advice-seller_mismatch = 销售方信息与本机登记的信息不符。请在销售方信息变更后重新登记本机，再重新开具。
advice-original_rejected = 原发票已被税务机关拒绝，不计入销售额，无需开具红字发票。
advice-original_unknown = 税务机关没有原发票的记录。请先确认原发票已被受理，再开具红字发票。
advice-credit_exceeds_original = 冲红数量或金额超过原发票尚未冲红的部分。请减少数量后重新开具红字发票。
advice-invalid_tax_id = 纳税人识别号无效。请向购买方核对后重新开具。
advice-invalid_tax_code = 税收分类编码无效。请选择正确的编码后重新开具。

queue_stopped-running = 队列正常运行，无需处理；`kaipiao sync`（或“立即同步”）发送待上传的发票。
queue_stopped-behind = 税务机关持有本设备的发票比本账本多：本数据目录可能是旧副本。若较新的副本仍在，请停止在此开票并改用它；否则“恢复”（`kaipiao queue resume`）会与税务机关核对，取回其持有的发票，放弃较新副本可能已用的号码（会列出：这些发票已随之丢失），并领取新的号码段，然后队列恢复运行。
queue_stopped-key_reused = 税务机关在该发票的标识下持有另一张发票。请核对（`kaipiao reconcile`）查看差异并将结果交给税务机关；双方记录一致后再“恢复”（`kaipiao queue resume`）。
queue_stopped-refused = 税务机关拒绝了原因中所列的发票。“恢复”（`kaipiao queue resume`）会先与税务机关核对：记录一致则恢复队列并重新发送该发票，否则保持停止并说明原因。期间可继续开票，不会丢失任何发票。
pending_invoices = { $path } 中仍有 { $count } 张发票尚未被税务机关接收：请先同步（`kaipiao sync`），或加 --replace-pending 仍然替换该账本（它会另存为 { $aside }，不会删除）
unreadable_file-backup = { $path } 不是开票备份文件：{ $why }
invalid_path-backup-folder = 请输入备份文件夹的完整路径（以 / 开头），例如 U 盘上的文件夹
invalid_path-pdf = 请选择要写入的 PDF 文件的完整路径（以 / 开头）
out_of_range-backup-hours = 备份间隔（小时）：0（关闭）至 { $max } 的整数
out_of_range-backup-keep = 保留备份数：1 至 { $max } 的整数
not_printable-rejected = 发票 { $number } 已被税务机关拒绝：它不是有效发票，不能打印；请重新开具更正后的发票
not_printable-glyph = 字符 { $character }（U+{ $code }）在发票字体中没有字形；请在更正后的发票中改用常用写法
numbers_given_up = 从税务机关恢复本账本时（{ $why }）放弃了号码 { $ranges }：丢失的或较新的副本可能已使用但未上传，这些发票已随之丢失，号码不再使用
mail_not_set = 本店尚未设置邮件服务器：请运行 kaipiao smtp set --host 服务器 --port 端口 --user 用户名 --from 发件地址（或在应用的 设置 → 邮件 中填写）
invalid_email = { $value } 不是电子邮件地址：请按 name@example.com 的格式填写
delivery_failed = 发往 { $address } 的邮件未能发送：{ $why }
mail-subject = 发票 { $number }（{ $seller }）
mail-body = 您好：

    附件是 { $seller } 于 { $date } 开具的{ $credit }{ $title }，发票号码 { $number }，价税合计 ¥{ $total }。
    { $status }

    PDF 内嵌已签名的发票数据，受理后还包含税务机关的回执：可用 kaipiao verify-pdf 离线核验，也可凭发票号码、开票日期、价税合计和税务机关代码后 6 位向税务机关查验。
mail-status-pending = 本发票已由销售方设备签名，正等待税务机关受理。
mail-status-accepted = 本发票已由税务机关受理，税务机关代码 { $code }。
invalid_request-smtp-host = 请填写邮件服务器的主机名，例如 smtp.example.com
invalid_request-smtp-port = 请填写邮件服务器的端口（1-65535），例如 TLS 用 465、STARTTLS 用 587
invalid_request-smtp-security = 请选择连接的加密方式：TLS、STARTTLS 或不加密（仅限本机或本店网络内的中继）
invalid_credit_reason = { $value } 不是冲红原因：请填写 01（开票有误）、02（销货退回）、03（服务中止）或 04（销售折让）
invalid_credit_reason-not-credit = 冲红原因只用于红字发票（kind 为 credit）：请删除它，或把草稿改为红字发票
invalid_kind-default = { $value } 不能作为本机默认的发票种类：请选择 ordinary（普通发票）或 special（专用发票）
invalid_date-month = { $value } 不是月份：请写成 YYYY-MM，例如 2026-11
invalid_request-smtp-plain-login = 登录信息只通过 TLS 或 STARTTLS 发送（本机 127.0.0.1 上的中继除外）：请选择 TLS 或 STARTTLS
invalid_request-smtp-password = 请输入邮箱密码：更换服务器或用户名时不会沿用已保存的密码
invalid_workbook-zip = 此文件不是 Excel 工作簿（.xlsx）：{ $why }；请在 Excel 或 WPS 中另存为 .xlsx（kaipiao template --out 文件.xlsx 可生成空白模板）
invalid_workbook-too-big = 工作簿大于 { $limit } MiB：请拆分为多个文件
invalid_workbook-cells = 工作簿中有内容的单元格超过 { $limit } 个：请拆分为多个文件
invalid_workbook-sheet = 工作簿中没有工作表 { $sheet }：请使用模板的“基本信息”和“明细”两个工作表（kaipiao template --out 文件.xlsx）
invalid_workbook-header = 工作表 { $sheet } 的前 { $rows } 行中没有含“{ $header }”的表头行：请保留模板的表头行
invalid_workbook-column = 工作表 { $sheet } 缺少列“{ $column }”：请在表头行中补上
invalid_cell-type = 单元格中是{ $kind }（{ $value }），不是文字或数字：请直接填写值
invalid_cell-digits = { $value } 以数字格式保存，Excel 只保留数字的 15 位：请将该列设为文本格式后重新填写
invalid_cell-number = { $value } 不是数字：请填写如 12.50 的数字
invalid_cell-yes-no = { $value } 不是“是”或“否”：单价和金额含税填“是”，不含税填“否”
serial_conflict-duplicate = 发票流水号 { $serial } 已在第 { $row } 行使用：每张发票的流水号须唯一
serial_conflict-issued = 发票流水号 { $serial } 已开具为 { $number }，但内容不同：同一流水号只开具一次；修改后的发票请使用新的流水号（或对 { $number } 开具红字发票）
too_long-serial = 发票流水号超过 { $max } 个字符：请缩短
missing_field-cell = “{ $column }”为空：请填写
missing_field-serial-basic = 发票流水号 { $serial } 在“明细”中有行，但“基本信息”中没有：请补上该行或更正流水号
missing_field-amount = 此行既无金额也无单价：请填写金额，或填写数量和单价
invalid_quantity-zero = 数量为 0：请填写金额对应的数量，或留空表示 1
invalid_amount-mismatch = 金额 { $amount } 与数量 × 单价 = { $product } 相差超过 0.01：请更正其中之一
invalid_kind-sheet = { $value } 不是发票类型：请填写“普通发票”或“增值税专用发票”
invalid_treatment-sheet = { $value } 不是免税类型：请留空，或填写“免税”“不征税”“零税率”
line_count-sheet = 发票流水号 { $serial } 在“明细”中没有项目：请至少填写一行
cli-batch-confirm = 本次开具 { $count } 份，价税合计 { $total } 元
cli-batch-done = 已开具 { $issued } 份，跳过 { $skipped } 份（此前已开具），拒绝 { $refused } 份
cli-batch-skipped = 已开具为 { $number }
cli-batch-mail = 已为购买方邮箱排队 { $count } 封邮件：kaipiao sync（或应用）会发送
cli-batch-mail-not-set = { $count } 个购买方邮箱未发送：尚未设置邮件服务器（kaipiao smtp set）
cli-batch-refused = 有 { $count } 份发票未开具：请更正上面指出的单元格后重新导入（已开具的会跳过）
invalid_text-short-name = { $value } 缺少 *简称* 前缀：请写作 *简称*名称，如 *计算机配套产品*键盘（简称取自其税收分类编码）
missing_field-tax-code = 请填写项目的税收分类编码（19 位数字）：税务平台的编码表中可查
invalid_unit_price-catalog = { $value } 不能作为默认单价：请填写大于 0、最多 8 位小数的数字，或留空
not_found-catalog = 没有 id 为 { $id } 的目录条目：kaipiao items list / kaipiao buyers list 可查看 id
invalid_workbook-csv = 此文件不是所需的 CSV 格式（UTF-8，逗号分隔）：{ $why }
invalid_path-catalog = { $path }：请给出 .csv 或 .xlsx 文件
cli-catalog-imported = 已添加 { $added } 条，已更新 { $updated } 条，拒绝 { $refused } 条
cli-catalog-refused = 有 { $count } 行未导入：请更正上面指出的单元格后重新导入（其余已保存）
invalid_workbook-changed = { $path } 在检查后已被修改：请重新检查后再开具
