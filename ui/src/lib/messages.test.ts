import { describe, expect, it } from 'vitest';
import { hasMessage, message, messageIds, problems, SOURCES } from './messages';
import { reasonAdvice } from './reasons';

describe('the message files shared with the Rust crates', () => {
  it('load in both languages without errors, with the same ids', () => {
    const en = messageIds('en');
    const zh = messageIds('zh');
    expect(en.length).toBeGreaterThan(100);
    expect([...zh].sort()).toEqual([...en].sort());
    // Every message the files define is one the bundle parsed (no junk skipped).
    for (const id of en) {
      expect(hasMessage('en', id), id).toBe(true);
      expect(hasMessage('zh', id), id).toBe(true);
    }
    expect(SOURCES.en).toContain('advice-issued_in_future');
    expect(problems).toEqual([]);
  });

  it('resolve an advice id in both languages', () => {
    expect(message('zh', 'advice-issued_in_future')).toBe(
      '开具时间晚于税务机关的时间：本机时钟走快了。请校正系统时间，再按原内容重新开具。',
    );
    expect(message('en', 'advice-issued_in_future')).toBe(
      "The invoice is dated after the tax authority's time: this computer's clock is fast. Correct the system time, then reissue it.",
    );
    expect(reasonAdvice('seller_mismatch', 'zh')).toMatch(/[\u4e00-\u9fff]/);
    expect(reasonAdvice('seller_mismatch', 'en')).toContain('Enrol the device again');
    expect(message('en', 'no_such-message')).toBeNull();
    expect(problems).toEqual([]);
  });

  it('format arguments without isolation marks, as the Rust side does', () => {
    expect(message('en', 'too_long', { count: '9', max: '5' })).toBe('has 9 characters; at most 5 are allowed');
    expect(message('zh', 'special_treatment-draft', { treatment: 'exempt' })).toBe('专用发票不得开具免税项目，请开具普通发票');
    expect(problems).toEqual([]);
  });
});
