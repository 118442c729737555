/**
 * Param templates: `{{ labels.X }}`, `{{ annotations.X }}`, `{{ alert.fingerprint }}`, `{{ alert.startsAt }}`,
 * `{{ alert.status }}`. A reference is checked when the matrix loads; a label the alert lacks renders as
 * the empty string, which the remediation's schema then rejects where a value is required.
 */
export interface TemplateScope {
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  alert: { fingerprint: string; startsAt: string; status: string };
}

type Part = string | ((scope: TemplateScope) => string);
const refRe = /\{\{\s*([^}]*?)\s*\}\}/g;
const ALERT_FIELDS = new Set(['fingerprint', 'startsAt', 'status']);

function compileRef(ref: string): (scope: TemplateScope) => string {
  const m = /^(labels|annotations|alert)\.([a-zA-Z_][a-zA-Z0-9_]*)$/.exec(ref);
  if (!m) throw new Error(`"{{ ${ref} }}" is not a template reference (labels.X, annotations.X, alert.fingerprint, alert.startsAt)`);
  const [, scope, key] = m as unknown as [string, 'labels' | 'annotations' | 'alert', string];
  if (scope === 'alert') {
    if (!ALERT_FIELDS.has(key)) throw new Error(`"alert.${key}" is not an alert field (fingerprint, startsAt, status)`);
    return (s) => s.alert[key as 'fingerprint' | 'startsAt' | 'status'];
  }
  return (s) => (Object.hasOwn(s[scope], key) ? (s[scope][key] ?? '') : '');
}

/** Compiles a string into a renderer; strings without references render to themselves. */
export function compileTemplate(text: string): (scope: TemplateScope) => string {
  const parts: Part[] = [];
  let last = 0;
  for (const m of text.matchAll(refRe)) {
    if (m.index > last) parts.push(text.slice(last, m.index));
    parts.push(compileRef(m[1] ?? ''));
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  if (parts.some((p) => typeof p === 'string' && (p.includes('{{') || p.includes('}}')))) {
    throw new Error(`unbalanced "{{" or "}}" in "${text}"`);
  }
  if (parts.length === 1 && typeof parts[0] === 'string') {
    const constant = parts[0];
    return () => constant;
  }
  return (scope) => parts.map((p) => (typeof p === 'string' ? p : p(scope))).join('');
}

export type ParamsRenderer = (scope: TemplateScope) => Record<string, unknown>;

/** Compiles every string inside a params tree; numbers, booleans and nested objects are kept. */
export function compileParams(params: Record<string, unknown>): ParamsRenderer {
  const compileValue = (value: unknown): ((scope: TemplateScope) => unknown) => {
    if (typeof value === 'string') return compileTemplate(value);
    if (Array.isArray(value)) {
      const items = value.map(compileValue);
      return (s) => items.map((f) => f(s));
    }
    if (value !== null && typeof value === 'object') {
      const entries = Object.entries(value).map(([k, v]) => [k, compileValue(v)] as const);
      return (s) => Object.fromEntries(entries.map(([k, f]) => [k, f(s)]));
    }
    return () => value;
  };
  const render = compileValue(params);
  return (scope) => render(scope) as Record<string, unknown>;
}
