import { describe, expect, it } from 'vitest';
import { age, fieldTestId, groupMoney, localTime, ratePercent } from './format';
import { RATES, blankDraft, blankLine, forIssue, isBlank, shortcut, withRate } from './draft';
import { pagesFor, virtualWindow } from './virtual';
import { allKeys, dictionaries, langFromLocale, translate } from './i18n';

describe('format', () => {
  it('groups money strings without arithmetic', () => {
    expect(groupMoney('1234567.80')).toBe('1,234,567.80');
    expect(groupMoney('-62.33')).toBe('-62.33');
    expect(groupMoney('999.00')).toBe('999.00');
    expect(groupMoney('1000')).toBe('1,000');
    expect(groupMoney('abc')).toBe('abc');
    expect(groupMoney(null)).toBe('');
  });
  it('shows every SPEC rate as a percentage', () => {
    expect(RATES.map(ratePercent)).toEqual(['13%', '9%', '6%', '5%', '3%', '1.5%', '1%', '0%']);
  });
  it('says how long the oldest invoice has waited', () => {
    expect(age('2026-01-01T08:00:00Z', '2026-01-01T10:05:30Z', 'zh')).toBe('2 小时 5 分');
    expect(age('2026-01-01T08:00:00Z', '2026-01-01T08:07:00Z', 'en')).toBe('7 min');
    expect(age(null, '2026-01-01T08:07:00Z', 'en')).toBe('');
  });
  it('formats local times', () => {
    expect(localTime('not a time')).toBe('not a time');
    expect(localTime('2026-01-01T08:00:00Z')).toMatch(/^2026-01-0[12] \d\d:\d\d$/);
  });
  it('maps engine field paths to the inputs that show them', () => {
    expect(fieldTestId('buyer.tax_id')).toBe('buyer-tax-id');
    expect(fieldTestId('lines[2].unit_price')).toBe('line-unit-price-2');
    expect(fieldTestId('lines[0].quantity')).toBe('line-quantity-0');
    expect(fieldTestId('remarks')).toBeNull();
  });
});

describe('draft', () => {
  it('starts blank with one 13% line', () => {
    const d = blankDraft();
    expect(d.kind).toBe('ordinary');
    expect(d.lines).toHaveLength(1);
    expect(d.lines[0].tax_rate).toBe('0.13');
    expect(d.original).toBeNull();
  });
  it('gives a 0 rate a treatment and takes it away again', () => {
    const zero = withRate(blankLine(), '0');
    expect(zero.treatment).toBe('zero_rated');
    expect(withRate({ ...zero, treatment: 'exempt' }, '0').treatment).toBe('exempt');
    expect(withRate(zero, '0.06').treatment).toBe('');
  });
  it('leaves untouched lines out of what is issued, but keeps the first', () => {
    const d = blankDraft();
    d.lines.push(blankLine(), { ...blankLine(), name: 'x', quantity: '1', unit_price: '1' }, blankLine());
    const out = forIssue(d);
    expect(out.lines).toHaveLength(2);
    expect(isBlank(out.lines[0])).toBe(true);
    expect(out.lines[1].name).toBe('x');
  });
  it('sends the original only on a credit note', () => {
    const d = { ...blankDraft(), original: '12345678901200000001' };
    expect(forIssue(d).original).toBeNull();
    expect(forIssue({ ...d, kind: 'credit' }).original).toBe('12345678901200000001');
  });
  it('is keyboard first', () => {
    const k = (key: string, mods: Partial<KeyboardEvent> = {}) => ({ key, ctrlKey: false, metaKey: false, shiftKey: false, altKey: false, ...mods });
    expect(shortcut(k('Enter', { ctrlKey: true }), false)).toBe('issue');
    expect(shortcut(k('Enter', { ctrlKey: true }), true)).toBe('issue');
    expect(shortcut(k('n', { ctrlKey: true }), false)).toBe('new');
    expect(shortcut(k('Enter'), true)).toBe('add-line');
    expect(shortcut(k('Enter'), false)).toBeNull();
    expect(shortcut(k('Enter', { shiftKey: true }), true)).toBeNull();
    expect(shortcut(k('a'), true)).toBeNull();
  });
});

describe('virtual list', () => {
  it('renders only the rows on screen at 100k', () => {
    const w = virtualWindow(100_000, 36, 36 * 50_000, 720, 8);
    expect(w.totalHeight).toBe(3_600_000);
    expect(w.start).toBe(49_992);
    expect(w.end - w.start).toBeLessThanOrEqual(20 + 16 + 2);
    expect(w.offsetY).toBe(w.start * 36);
  });
  it('clamps at both ends', () => {
    expect(virtualWindow(5, 36, 0, 720).end).toBe(5);
    expect(virtualWindow(0, 36, 0, 720)).toMatchObject({ start: 0, end: 0, totalHeight: 0 });
  });
  it('fetches the pages that cover the window', () => {
    expect(pagesFor(190, 230, 200)).toEqual([0, 1]);
    expect(pagesFor(0, 0, 200)).toEqual([]);
    expect(pagesFor(400, 401, 200)).toEqual([2]);
  });
});

describe('i18n', () => {
  it('has every key in both languages', () => {
    for (const k of allKeys) {
      expect(dictionaries.zh[k], k).toBeTruthy();
      expect(dictionaries.en[k], k).toBeTruthy();
    }
  });
  it('speaks Chinese under a Chinese locale', () => {
    expect(langFromLocale('zh-CN')).toBe('zh');
    expect(langFromLocale('zh_TW.UTF-8')).toBe('zh');
    expect(langFromLocale('en-US')).toBe('en');
    expect(langFromLocale(undefined)).toBe('en');
  });
  it('uses the accounting terms', () => {
    expect(translate('zh', 'total')).toBe('价税合计');
    expect(translate('zh', 'buyer')).toBe('购买方');
    expect(translate('zh', 'kindCredit')).toBe('红字发票');
    expect(Object.values(dictionaries.zh).join()).not.toContain('订单');
  });
  it('fills placeholders', () => {
    expect(translate('en', 'syncComplete', { a: 3, r: 1, p: 0 })).toBe('Sync complete: 3 accepted, 1 rejected, 0 pending');
  });
});
