import { describe, expect, it } from 'vitest';
import type { ResumeDto } from './bindings';
import { resumeOutcome } from './queue';

const base: ResumeDto = {
  was_stopped: true,
  resumed: true,
  outcome: 'complete',
  reason: null,
  accounted_for: 3,
  mismatched: 0,
  accepted: 1,
  rejected: 0,
  pending: 0,
};

describe('resumeOutcome', () => {
  it('says what the run after resuming did, in either language', () => {
    expect(resumeOutcome(base, 'en')).toBe('Reconciled and resumed: 1 accepted, 0 rejected, 0 pending');
    expect(resumeOutcome(base, 'zh')).toBe('已核对并恢复：受理 1 张，拒绝 0 张，待上传 0 张');
  });

  it('keeps what the run left when work remains', () => {
    const r = { ...base, outcome: 'transient' as const, reason: 'no endpoint answered', pending: 2 };
    expect(resumeOutcome(r, 'en')).toContain('2 pending. no endpoint answered');
  });

  it('names why the queue was not resumed', () => {
    const r = { ...base, resumed: false, outcome: 'stopped' as const, reason: 'the reconciliation does not explain the stop' };
    expect(resumeOutcome(r, 'en')).toBe('Not resumed: the reconciliation does not explain the stop');
    expect(resumeOutcome(r, 'zh')).toBe('未恢复：the reconciliation does not explain the stop');
  });
});
