import { afterEach, describe, expect, it } from 'vitest';
import { historyText, reasonAdvice, reasonSummary } from './reasons';
import { limitLevel } from './format';
import { app, applyState } from './store.svelte';
import type { AppStateDto, HistoryDto, WarningDto } from './bindings';

const entry = (h: Partial<HistoryDto>): HistoryDto => ({
  at: '2026-03-01T09:00:00Z',
  status: 'issued',
  detail: '',
  number: null,
  authority_code: null,
  reasons: [],
  ...h,
});

describe('status history in the clerk language', () => {
  it('says issued, accepted and rejected from the structured fields, not the ledger text', () => {
    const issued = entry({ status: 'issued', detail: 'number 26033000000100000001', number: '26033000000100000001' });
    expect(historyText(issued, 'zh')).toBe('开具，发票号码 26033000000100000001');
    expect(historyText(issued, 'en')).toBe('Issued as number 26033000000100000001');
    const accepted = entry({ status: 'accepted', detail: 'authority code 12345678901234567890', authority_code: '12345678901234567890' });
    expect(historyText(accepted, 'zh')).toBe('税务机关已受理，校验码 12345678901234567890');
    expect(historyText(accepted, 'zh')).not.toContain('authority code');
    const rejected = entry({
      status: 'rejected',
      detail: 'issued_in_future (issued_at): ...',
      authority_code: '12345678901234567890',
      reasons: [
        { code: 'issued_in_future', field: 'issued_at', message: 'is more than 300 s after the authority time' },
        { code: 'something_new', field: 'lines', message: 'a rule the app has no words for' },
      ],
    });
    const zh = historyText(rejected, 'zh');
    expect(zh.startsWith('税务机关拒绝：')).toBe(true);
    expect(zh).toContain('本机时钟走快了');
    // A code without words keeps the authority's own.
    expect(zh).toContain('something_new (lines): a rule the app has no words for');
    expect(historyText(rejected, 'en')).toContain("this computer's clock is fast");
  });
  it('falls back to the ledger text for what it does not know', () => {
    // A status this UI does not know yet (a newer engine): the cast says so.
    expect(historyText(entry({ status: 'archived' as unknown as HistoryDto['status'], detail: 'moved' }), 'zh')).toBe('moved');
    expect(historyText(entry({ status: 'issued', detail: 'number 1' }), 'zh')).toBe('number 1');
  });
  it('gives a way forward for what only the authority can judge', () => {
    for (const code of ['issued_in_future', 'issued_at_backwards', 'single_invoice_cap', 'seller_mismatch', 'original_rejected']) {
      expect(reasonAdvice(code, 'zh'), code).toMatch(/[\u4e00-\u9fff]/);
      expect(reasonAdvice(code, 'en'), code).toBeTruthy();
    }
    expect(reasonAdvice('unheard_of', 'zh')).toBeNull();
    expect(reasonSummary({ code: 'x', field: '', message: 'y' }, 'zh')).toBe('x: y');
  });
});

describe('status bar warning levels', () => {
  const w = (limit: WarningDto['limit'], threshold: number): WarningDto => ({ limit, threshold, message: '' });
  it('takes the highest warning of each limit on its own', () => {
    expect(limitLevel(null, 'offline_amount')).toBe(0);
    expect(limitLevel([], 'offline_hours')).toBe(0);
    const warnings = [w('offline_amount', 75), w('offline_hours', 90), w('offline_amount', 90)];
    expect(limitLevel(warnings, 'offline_amount')).toBe(90);
    expect(limitLevel(warnings, 'offline_hours')).toBe(90);
    expect(limitLevel([w('offline_amount', 75)], 'offline_hours')).toBe(0);
    expect(limitLevel([w('offline_amount', 75)], 'offline_amount')).toBe(75);
  });
});

describe('theme', () => {
  const state = (theme: AppStateDto['settings']['theme'], lang: AppStateDto['lang'] = 'zh'): AppStateDto => ({
    phase: 'ready',
    data_dir: '/tmp/x',
    data_dir_from_env: true,
    passphrase_from_env: true,
    device: null,
    leases: [],
    lang,
    settings: { language: 'system', theme },
    till: { issuer: '', kind: 'ordinary' },
    dev_build: true,
    version: '0.1.0',
  });
  afterEach(() => delete document.documentElement.dataset.theme);
  it('follows the OS unless the clerk chose light or dark', () => {
    applyState(state('dark'));
    expect(document.documentElement.dataset.theme).toBe('dark');
    applyState(state('light', 'en'));
    expect(document.documentElement.dataset.theme).toBe('light');
    expect(document.documentElement.lang).toBe('en');
    expect(app.lang).toBe('en');
    // "system": no attribute, so the stylesheet's prefers-color-scheme rule decides.
    applyState(state('system'));
    expect('theme' in document.documentElement.dataset).toBe(false);
    expect(document.documentElement.lang).toBe('zh-CN');
  });
});
