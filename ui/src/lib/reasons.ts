// The authority's reasons for a rejection, in the clerk's language. A receipt carries a
// code, a field and the authority's message in English; the codes that only the authority
// can judge (its clock, its records of the lease, the seller and earlier invoices) get
// words and a way forward (the `advice-<code>` messages of crates/core/locales/*.ftl), and
// every reason keeps the authority's own message.
import type { HistoryDto, ReasonDto } from './bindings';
import { translate, type Lang } from './i18n';
import { message } from './messages';

/** What the reason means and what to do, or null for a code without words of its own. */
export function reasonAdvice(code: string, lang: Lang): string | null {
  return message(lang, `advice-${code}`);
}

/** One line per reason: the advice where known, else the authority's message. */
export function reasonSummary(r: ReasonDto, lang: Lang): string {
  return reasonAdvice(r.code, lang) ?? (r.field ? `${r.code} (${r.field}): ${r.message}` : `${r.code}: ${r.message}`);
}

/** A status-history entry in the clerk's language, from its structured fields. */
export function historyText(h: HistoryDto, lang: Lang): string {
  switch (h.status) {
    case 'issued':
      return h.number ? translate(lang, 'historyIssued', { n: h.number }) : h.detail;
    case 'accepted':
      return h.authority_code ? translate(lang, 'historyAccepted', { c: h.authority_code }) : h.detail;
    case 'rejected':
      return h.reasons.length
        ? translate(lang, 'historyRejected', { why: h.reasons.map((r) => reasonSummary(r, lang)).join(lang === 'zh' ? '；' : '; ') })
        : h.detail;
    default:
      return h.detail;
  }
}
