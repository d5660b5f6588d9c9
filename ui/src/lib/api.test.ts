import { afterEach, describe, expect, it } from 'vitest';
import { clearMocks, mockIPC } from '@tauri-apps/api/mocks';
import { api, asDeskError } from './api';
import { blankDraft } from './draft';
import type { PreviewDto } from './bindings';

afterEach(() => clearMocks());

describe('api over mocked IPC', () => {
  it('sends the draft to preview and returns the engine numbers untouched', async () => {
    const seen: unknown[] = [];
    const answer: PreviewDto = {
      lines: [null],
      total_amount: '1200.00',
      total_tax: '156.00',
      total: '1356.00',
      total_in_words: '壹仟叁佰伍拾陆元整',
      totals_complete: true,
      problem: null,
    };
    mockIPC((cmd, args) => {
      seen.push([cmd, args]);
      if (cmd === 'preview') return answer;
    });
    const d = blankDraft('special');
    const p = await api.preview(d);
    expect(p).toEqual(answer);
    expect(seen).toEqual([['preview', { draft: d }]]);
  });

  it('turns a rejected command into {code, message, field}', async () => {
    mockIPC((cmd) => {
      if (cmd === 'issue') throw { code: 'invalid_tax_id', message: '校验码错误', field: 'buyer.tax_id' };
    });
    await expect(api.issue(blankDraft())).rejects.toEqual({ code: 'invalid_tax_id', message: '校验码错误', field: 'buyer.tax_id' });
  });

  it('wraps anything else as an internal error', () => {
    expect(asDeskError('boom')).toEqual({ code: 'internal', message: 'boom', field: '' });
    expect(asDeskError({ code: 'x', message: 'y' })).toEqual({ code: 'x', message: 'y', field: '' });
  });

  it('passes list queries and setup requests by name', async () => {
    const calls: Record<string, unknown> = {};
    mockIPC((cmd, args) => {
      calls[cmd] = args;
      if (cmd === 'list_invoices') return { total: 0, offset: 0, rows: [] };
      if (cmd === 'check_tax_id') return { input: 'x', normalized: 'X', valid: false, message: 'bad' };
    });
    await api.listInvoices({ status: 'pending', search: null, buyer: null, from: null, to: null, offset: 200, limit: 200 });
    expect(calls.list_invoices).toEqual({ query: { status: 'pending', search: null, buyer: null, from: null, to: null, offset: 200, limit: 200 } });
    expect((await api.checkTaxId('x')).valid).toBe(false);
    expect(calls.check_tax_id).toEqual({ input: 'x' });
  });
});
