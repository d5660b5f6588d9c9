import type { AppStateDto, DeskError, DraftDto, SetupResult, StatusDto, SyncSummaryDto } from './bindings';
import { translate, langFromLocale, type Key, type Lang } from './i18n';

export type View = 'issue' | 'invoices' | 'batch' | 'stats' | 'settings';

export const app = $state({
  state: null as AppStateDto | null,
  loadError: null as DeskError | null,
  status: null as StatusDto | null,
  lang: langFromLocale(typeof navigator === 'undefined' ? '' : navigator.language) as Lang,
  view: 'issue' as View,
  /** The lease shown once after setup. */
  welcome: null as SetupResult | null,
  /** A draft to open in the issue form (credit note, reissue), taken by the form. */
  prefill: null as DraftDto | null,
  /** Bumped to ask the issue form for a blank invoice (Ctrl+N, "New invoice"). */
  newInvoiceTick: 0,
  /** Bumped whenever invoices change (list refresh). */
  dataTick: 0,
  syncing: false,
  syncProgress: '',
  syncSummary: null as SyncSummaryDto | null,
  syncError: null as DeskError | null,
});

export function t(key: Key, params: Record<string, string | number> = {}): string {
  return translate(app.lang, key, params);
}

export function applyState(s: AppStateDto) {
  app.state = s;
  app.lang = s.lang === 'zh' ? 'zh' : 'en';
  document.documentElement.lang = app.lang === 'zh' ? 'zh-CN' : 'en';
  const theme = s.settings.theme;
  if (theme === 'light' || theme === 'dark') document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}
