import type { WarningDto } from './bindings';

// Display helpers. They format strings the engine computed; they never do arithmetic on
// money (the engine's decimal strings are grouped, not parsed into floats).

/** "1234567.80" -> "1,234,567.80"; "-62.33" -> "-62.33". Non-money text is returned as is. */
export function groupMoney(s: string | null | undefined): string {
  if (s == null) return '';
  const m = /^(-?)(\d+)(\.\d+)?$/.exec(s);
  if (!m) return s;
  const [, sign, int, frac = ''] = m;
  return sign + int.replace(/\B(?=(\d{3})+(?!\d))/g, ',') + frac;
}

/** Whole hours and minutes between two RFC 3339 instants, e.g. "2 小时 5 分" / "2 h 5 min". */
export function age(fromIso: string | null | undefined, nowIso: string, lang: 'zh' | 'en'): string {
  if (!fromIso) return '';
  const ms = Date.parse(nowIso) - Date.parse(fromIso);
  if (!Number.isFinite(ms)) return '';
  const mins = Math.max(0, Math.floor(ms / 60000));
  const h = Math.floor(mins / 60);
  const m = mins % 60;
  if (lang === 'zh') return h > 0 ? `${h} 小时 ${m} 分` : `${m} 分钟`;
  return h > 0 ? `${h} h ${m} min` : `${m} min`;
}

/** Local date and time of an RFC 3339 instant: "2026-11-26 09:41". */
export function localTime(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** "0.13" -> "13%", "0.015" -> "1.5%": the rate strings of SPEC 2 shown as percentages. */
export function ratePercent(rate: string): string {
  const m = /^0(?:\.(\d+))?$/.exec(rate);
  if (!m) return rate;
  const digits = (m[1] ?? '').padEnd(2, '0');
  const whole = digits.slice(0, 2).replace(/^0(?=\d)/, '');
  const rest = digits.slice(2).replace(/0+$/, '');
  return `${whole}${rest ? '.' + rest : ''}%`;
}

/** Maps an engine field path to the test id of the input that shows it. */
export function fieldTestId(field: string): string | null {
  if (field === 'buyer.tax_id') return 'buyer-tax-id';
  if (field === 'buyer.name') return 'buyer-name';
  const m = /^lines\[(\d+)\]\.(name|quantity|unit_price|tax_rate)$/.exec(field);
  if (m) return `line-${m[2].replace('_', '-')}-${m[1]}`;
  return null;
}

/** The warning level of one offline limit: 0, 75, 90 or 100 (used up), the highest of the
 * engine's warnings for it. The status bar turns amber at 75 and red from 90. */
export function limitLevel(warnings: WarningDto[] | null | undefined, limit: 'offline_hours' | 'offline_amount'): number {
  return (warnings ?? []).filter((w) => w.limit === limit).reduce((m, w) => Math.max(m, w.threshold), 0);
}
