// Messages that cross a boundary (errors, the authority's reasons and what to do about
// them) live in one place for both front ends: crates/core/locales/{en,zh}.ftl, read by
// the Rust crates through kaipiao_core::i18n and here through @fluent/bundle. The UI's own
// labels stay in i18n.ts. See docs/ARCHITECTURE.md, "Messages and languages".
import { FluentBundle, FluentResource, type FluentVariable } from '@fluent/bundle';
import enFtl from '../../../crates/core/locales/en.ftl?raw';
import zhFtl from '../../../crates/core/locales/zh.ftl?raw';
import type { Lang } from './i18n';

/** The text of each language's file, as shipped. */
export const SOURCES: Record<Lang, string> = { en: enFtl, zh: zhFtl };

/** What went wrong while loading or formatting (parse errors, unknown ids, missing arguments). */
export const problems: string[] = [];

function load(lang: Lang): FluentBundle {
  // No U+2068/U+2069 around arguments, as in Rust: the texts are compared and copied.
  const bundle = new FluentBundle(lang === 'zh' ? 'zh-CN' : 'en', { useIsolating: false });
  const errors = bundle.addResource(new FluentResource(SOURCES[lang]));
  for (const e of errors) problems.push(`${lang}.ftl: ${e.message}`);
  return bundle;
}

const bundles: Record<Lang, FluentBundle> = { en: load('en'), zh: load('zh') };

/** Whether `lang` has the message `id`. */
export function hasMessage(lang: Lang, id: string): boolean {
  return bundles[lang].hasMessage(id);
}

/** Every message id of `lang`. */
export function messageIds(lang: Lang): string[] {
  return [...SOURCES[lang].matchAll(/^([a-zA-Z][\w-]*) =/gm)].map((m) => m[1]);
}

/** The message `id` in `lang`, or null when the files have no such message. */
export function message(lang: Lang, id: string, args: Record<string, FluentVariable> = {}): string | null {
  const msg = bundles[lang].getMessage(id);
  if (!msg?.value) return null;
  const errors: Error[] = [];
  const text = bundles[lang].formatPattern(msg.value, args, errors);
  for (const e of errors) problems.push(`${id}: ${e.message}`);
  return text;
}
