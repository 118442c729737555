/**
 * Param templates: `{{ labels.X }}`, `{{ annotations.X }}`, `{{ alert.fingerprint }}`, `{{ alert.startsAt }}`,
 * `{{ alert.status }}`, and in an action with `after`, its predecessor's outcome: `{{ after.status }}`,
 * `{{ after.reason }}`, `{{ after.error }}`, `{{ after.result.X }}` (`X` may be a dotted path). A reference
 * is checked when the matrix loads; a label the alert lacks (or a result field the predecessor did not
 * return) renders as the empty string, which the remediation's schema then rejects where a value is required.
 */
export interface TemplateScope {
  labels: Readonly<Record<string, string>>;
  annotations: Readonly<Record<string, string>>;
  alert: { fingerprint: string; startsAt: string; status: string };
  /** The predecessor's outcome, for an action with `after`. */
  after?: PredecessorScope;
}

export interface PredecessorScope {
  status: string;
  reason: string | null;
  error: string | null;
  result: Readonly<Record<string, unknown>> | null;
}

/** A markup a param's text is written in: `slack` is Slack mrkdwn (the `notify.webhook` text). */
export type TextFormat = 'slack';

export interface TemplateOptions {
  /** Whether `{{ after.* }}` may be used: only in an action that names a predecessor. */
  after?: boolean;
  /** Applied to every rendered value: a PromQL query escapes them for its string literals. */
  escape?: (value: string) => string;
  /**
   * Params (by top-level name) whose text is in a markup, as the remediation declares
   * (`Remediation.textParams`): every value substituted into them is escaped for it, the matrix
   * author's literal text is kept as written (a deliberate `<!here>` still pings).
   */
  textParams?: Readonly<Record<string, TextFormat>> | undefined;
}

const CONTROL = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]+/gu;

/**
 * On one line: CR, LF, tabs, the other control characters, Unicode line and paragraph separators
 * and bidirectional overrides become one space, so the value can never start a line of its own
 * (a forged `Approve:` line) nor turn the text around it.
 */
export function oneLine(value: string): string {
  return value.replace(CONTROL, ' ');
}

/** Slack mrkdwn's control characters as entities: `<!channel>`, `<https://…|label>` and `<@U…>` show as typed, never ping or link. */
export function escapeSlack(value: string): string {
  return value.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** How a value substituted from the alert (or a predecessor's outcome) is written into text of each format. */
export const TEXT_ESCAPES: Readonly<Record<TextFormat, (value: string) => string>> = {
  slack: (value) => escapeSlack(oneLine(value)),
};

type Part = string | ((scope: TemplateScope) => string);
const refRe = /\{\{\s*([^}]*?)\s*\}\}/g;
const ALERT_FIELDS = new Set(['fingerprint', 'startsAt', 'status']);

const AFTER_FIELDS = new Set(['status', 'reason', 'error']);

/** A result value as text: strings as they are, numbers and booleans printed, anything else as JSON. */
function text(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function compileAfterRef(ref: string, opts: TemplateOptions): (scope: TemplateScope) => string {
  if (!opts.after) throw new Error(`"{{ ${ref} }}" needs \`after\`: only an action that waits for another can read its outcome`);
  const field = /^after\.([a-zA-Z_][a-zA-Z0-9_]*)$/.exec(ref)?.[1];
  if (field && AFTER_FIELDS.has(field)) return (s) => text(s.after?.[field as 'status' | 'reason' | 'error']);
  const path = /^after\.result((?:\.[a-zA-Z_][a-zA-Z0-9_]*)+)$/.exec(ref)?.[1];
  if (!path) throw new Error(`"{{ ${ref} }}" is not a predecessor field (after.status, after.reason, after.error, after.result.X)`);
  const keys = path.slice(1).split('.');
  return (s) => {
    let value: unknown = s.after?.result;
    for (const key of keys) {
      if (value === null || typeof value !== 'object' || !Object.hasOwn(value, key)) return '';
      value = (value as Record<string, unknown>)[key];
    }
    return text(value);
  };
}

function compileRef(ref: string, opts: TemplateOptions): (scope: TemplateScope) => string {
  const render = compileRawRef(ref, opts);
  const escape = opts.escape;
  return escape ? (s) => escape(render(s)) : render;
}

function compileRawRef(ref: string, opts: TemplateOptions): (scope: TemplateScope) => string {
  if (ref === 'after' || ref.startsWith('after.')) return compileAfterRef(ref, opts);
  const m = /^(labels|annotations|alert)\.([a-zA-Z_][a-zA-Z0-9_]*)$/.exec(ref);
  if (!m) {
    throw new Error(
      `"{{ ${ref} }}" is not a template reference (labels.X, annotations.X, alert.fingerprint, alert.startsAt${opts.after ? ', after.status, after.reason, after.error, after.result.X' : ''})`,
    );
  }
  const [, scope, key] = m as unknown as [string, 'labels' | 'annotations' | 'alert', string];
  if (scope === 'alert') {
    if (!ALERT_FIELDS.has(key)) throw new Error(`"alert.${key}" is not an alert field (fingerprint, startsAt, status)`);
    return (s) => s.alert[key as 'fingerprint' | 'startsAt' | 'status'];
  }
  return (s) => (Object.hasOwn(s[scope], key) ? (s[scope][key] ?? '') : '');
}

/** Compiles a string into a renderer; strings without references render to themselves. */
export function compileTemplate(source: string, opts: TemplateOptions = {}): (scope: TemplateScope) => string {
  const parts: Part[] = [];
  let last = 0;
  for (const m of source.matchAll(refRe)) {
    if (m.index > last) parts.push(source.slice(last, m.index));
    parts.push(compileRef(m[1] ?? '', opts));
    last = m.index + m[0].length;
  }
  if (last < source.length) parts.push(source.slice(last));
  if (parts.some((p) => typeof p === 'string' && (p.includes('{{') || p.includes('}}')))) {
    throw new Error(`unbalanced "{{" or "}}" in "${source}"`);
  }
  if (parts.length === 1 && typeof parts[0] === 'string') {
    const constant = parts[0];
    return () => constant;
  }
  return (scope) => parts.map((p) => (typeof p === 'string' ? p : p(scope))).join('');
}

export type ParamsRenderer = (scope: TemplateScope) => Record<string, unknown>;

/**
 * Compiles every string inside a params tree; numbers, booleans and nested objects are kept. A
 * param named in `opts.textParams` (and every string inside it) escapes its substituted values for
 * its format.
 */
export function compileParams(params: Record<string, unknown>, opts: TemplateOptions = {}): ParamsRenderer {
  const compileValue = (value: unknown, o: TemplateOptions): ((scope: TemplateScope) => unknown) => {
    if (typeof value === 'string') return compileTemplate(value, o);
    if (Array.isArray(value)) {
      const items = value.map((v) => compileValue(v, o));
      return (s) => items.map((f) => f(s));
    }
    if (value !== null && typeof value === 'object') {
      const entries = Object.entries(value).map(([k, v]) => [k, compileValue(v, o)] as const);
      return (s) => Object.fromEntries(entries.map(([k, f]) => [k, f(s)]));
    }
    return () => value;
  };
  const entries = Object.entries(params).map(([key, value]) => {
    const format = opts.textParams && Object.hasOwn(opts.textParams, key) ? opts.textParams[key] : undefined;
    return [key, compileValue(value, format ? { ...opts, escape: chain(TEXT_ESCAPES[format], opts.escape) } : opts)] as const;
  });
  return (scope) => Object.fromEntries(entries.map(([k, f]) => [k, f(scope)]));
}

function chain(first: (value: string) => string, then: ((value: string) => string) | undefined): (value: string) => string {
  return then ? (value) => then(first(value)) : first;
}
