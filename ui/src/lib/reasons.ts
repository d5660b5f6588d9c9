// The authority's reasons for a rejection, in the clerk's language. A receipt carries a
// code, a field and the authority's message in English; the codes that only the authority
// can judge (its clock, its records of the lease, the seller and earlier invoices) get
// words and a way forward here, and every reason keeps the authority's own message.
import type { HistoryDto, ReasonDto } from './bindings';
import { translate, type Lang } from './i18n';

type Words = { zh: string; en: string };

const ADVICE: Record<string, Words> = {
  issued_in_future: {
    zh: '开具时间晚于税务机关的时间：本机时钟走快了。请校正系统时间，再按原内容重新开具。',
    en: "The invoice is dated after the tax authority's time: this computer's clock is fast. Correct the system time, then reissue it.",
  },
  issued_at_backwards: {
    zh: '开具时间早于上一张发票：本机时钟曾被调慢。请校正系统时间，再按原内容重新开具。',
    en: "The invoice is dated before the previous one: this computer's clock was set back. Correct the system time, then reissue it.",
  },
  invalid_timestamp: {
    zh: '开具时间的格式不被税务机关接受。请按原内容重新开具；如再次被拒，请联系技术支持。',
    en: 'The tax authority does not accept the time format. Reissue it; if it is rejected again, contact support.',
  },
  single_invoice_cap: {
    zh: '金额超过单张发票限额。请拆分为多张发票重新开具，或向税务机关申请更高的限额。',
    en: 'The amount is over the single-invoice cap. Reissue it as several invoices, or ask the tax authority for a higher cap.',
  },
  seller_mismatch: {
    zh: '销售方信息与本机登记的信息不符。请在销售方信息变更后重新登记本机，再重新开具。',
    en: 'The seller differs from the one this device was enrolled for. Enrol the device again after the change, then reissue.',
  },
  original_rejected: {
    zh: '原发票已被税务机关拒绝，不计入销售额，无需开具红字发票。',
    en: 'The original invoice was rejected and never counted as a sale: no credit note is needed.',
  },
  original_unknown: {
    zh: '税务机关没有原发票的记录。请先确认原发票已被受理，再开具红字发票。',
    en: 'The tax authority has no record of the original invoice. Make sure it was accepted, then issue the credit note.',
  },
  credit_exceeds_original: {
    zh: '冲红数量或金额超过原发票尚未冲红的部分。请减少数量后重新开具红字发票。',
    en: 'The credit is larger than what is left of the original. Reduce the quantities and issue the credit note again.',
  },
  invalid_tax_id: {
    zh: '纳税人识别号无效。请向购买方核对后重新开具。',
    en: "A tax ID is not valid. Check it with the buyer, then reissue.",
  },
  invalid_tax_code: {
    zh: '税收分类编码无效。请选择正确的编码后重新开具。',
    en: 'A tax classification code is not valid. Choose the right code, then reissue.',
  },
};

/** What the reason means and what to do, or null for a code without words of its own. */
export function reasonAdvice(code: string, lang: Lang): string | null {
  const words = ADVICE[code];
  return words ? words[lang] : null;
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
