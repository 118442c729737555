/// <reference lib="dom" />
/**
 * A few DOM helpers. Text goes in as text nodes, never as HTML: labels, annotations and comments
 * come from alerts and people, and none of it is ever parsed as markup.
 */

export type Child = Node | string | number | null | undefined | false;
type Props = Record<string, string | number | boolean | null | undefined | EventListener>;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = String(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === 'object' ? c : String(c));
  }
}

/** Replaces an element's children, leaving the element (and the page's scroll position) in place. */
export function fill(el: Element, ...children: Child[]): void {
  const frag = document.createDocumentFragment();
  for (const c of children) if (c !== null && c !== undefined && c !== false) frag.append(typeof c === 'object' ? c : String(c));
  el.replaceChildren(frag);
}

/** A link only for http(s) URLs: anything else (javascript:, data:) is shown as text. */
export function safeLink(url: string | undefined, text: string): Child {
  if (!url) return null;
  try {
    const u = new URL(url);
    if (u.protocol === 'http:' || u.protocol === 'https:')
      return h('a', { href: u.href, target: '_blank', rel: 'noopener noreferrer' }, text);
  } catch {
    // not a URL
  }
  return h('span', { class: 'muted' }, `${text}: ${url}`);
}

export function fmtDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const hr = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d}d ${hr}h`;
  if (hr > 0) return `${hr}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(sec).padStart(2, '0')}s`;
  return `${sec}s`;
}

/** A time as the reader's clock shows it; the exact instant in its title. */
export function time(iso: string | null | undefined): Child {
  if (!iso) return null;
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return iso;
  const sameDay = t.toDateString() === new Date().toDateString();
  const text = sameDay ? t.toLocaleTimeString() : t.toLocaleString();
  return h('time', { datetime: t.toISOString(), title: t.toISOString() }, text);
}

export function json(value: unknown): HTMLPreElement {
  return h('pre', { class: 'json' }, JSON.stringify(value, null, 2));
}
