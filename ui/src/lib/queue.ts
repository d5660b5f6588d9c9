// The queue panel's words: what the Resume button came to, in the clerk's language. The
// panel itself (components/QueuePanel.svelte) shows the Rust side's QueueDto as it is,
// advice included; this is the one piece of wording it composes.
import type { ResumeDto } from './bindings';
import { translate, type Lang } from './i18n';

/** One line for the outcome of Resume. */
export function resumeOutcome(r: ResumeDto, lang: Lang): string {
  if (r.resumed) {
    const line = translate(lang, 'queueResumed', { a: r.accepted, r: r.rejected, p: r.pending });
    return r.reason ? `${line}. ${r.reason}` : line;
  }
  return translate(lang, 'queueNotResumed', { why: r.reason ?? '' });
}
