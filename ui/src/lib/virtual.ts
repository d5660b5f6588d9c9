// The window of a virtualized list with fixed row heights: only the rows on screen (plus
// an overscan) exist in the DOM, so 100k invoices scroll like 100.

export interface VirtualWindow {
  start: number;
  end: number; // exclusive
  offsetY: number;
  totalHeight: number;
}

export function virtualWindow(total: number, rowHeight: number, scrollTop: number, viewport: number, overscan = 8): VirtualWindow {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const visible = Math.ceil(viewport / rowHeight) + 2 * overscan;
  const end = Math.min(total, first + visible);
  return { start: Math.min(first, total), end, offsetY: first * rowHeight, totalHeight: total * rowHeight };
}

/** The pages of `size` rows that cover [start, end). */
export function pagesFor(start: number, end: number, size: number): number[] {
  if (end <= start) return [];
  const pages: number[] = [];
  for (let p = Math.floor(start / size); p <= Math.floor((end - 1) / size); p++) pages.push(p);
  return pages;
}
