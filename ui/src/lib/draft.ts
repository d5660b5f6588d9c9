import type { DraftDto, DraftLineDto } from './bindings';

/** The VAT rates of SPEC 2, as written. */
export const RATES = ['0.13', '0.09', '0.06', '0.05', '0.03', '0.015', '0.01', '0'] as const;
export const KINDS = ['ordinary', 'special', 'credit'] as const;
export const TREATMENTS = ['zero_rated', 'exempt', 'non_taxable'] as const;

export function blankLine(rate = '0.13'): DraftLineDto {
  return { name: '', tax_code: '', spec: '', unit: '', quantity: '', unit_price: '', tax_rate: rate, treatment: '' };
}

export function blankDraft(kind: DraftDto['kind'] = 'ordinary', issuer = ''): DraftDto {
  return {
    kind,
    buyer: { name: '', tax_id: '', address: '', bank: '' },
    lines: [blankLine()],
    price_includes_tax: false,
    original: null,
    remarks: '',
    issuer,
    credit_reason: null,
  };
}

/** A rate of 0 needs a treatment; any other rate is `standard` (""). */
export function withRate(line: DraftLineDto, rate: string): DraftLineDto {
  const treatment = rate === '0' ? (line.treatment || 'zero_rated') : '';
  return { ...line, tax_rate: rate, treatment };
}

/** A line the clerk has not touched (left out of what is sent for issuance). */
export function isBlank(line: DraftLineDto): boolean {
  return !line.name.trim() && !line.quantity.trim() && !line.unit_price.trim() && !line.spec.trim() && !line.unit.trim() && !line.tax_code.trim();
}

/** What is issued: the draft without trailing untouched lines (at least one line kept). */
export function forIssue(d: DraftDto): DraftDto {
  const lines = d.lines.filter((l, i) => i === 0 || !isBlank(l));
  const credit = d.kind === 'credit';
  return { ...d, lines, original: credit ? d.original : null, credit_reason: credit ? d.credit_reason || null : null };
}

export type Shortcut = 'issue' | 'new' | 'add-line' | null;

/** Keyboard first: Ctrl+Enter issues, Ctrl+N starts a new invoice, Enter in a line adds one. */
export function shortcut(e: Pick<KeyboardEvent, 'key' | 'ctrlKey' | 'metaKey' | 'shiftKey' | 'altKey'>, inLine: boolean): Shortcut {
  const mod = e.ctrlKey || e.metaKey;
  if (mod && e.key === 'Enter') return 'issue';
  if (mod && !e.shiftKey && !e.altKey && (e.key === 'n' || e.key === 'N')) return 'new';
  if (!mod && !e.shiftKey && !e.altKey && e.key === 'Enter' && inLine) return 'add-line';
  return null;
}
