/**
 * Target scopes: an action's `allow: { <param>: '<regex>' }` names, per param, the values its runs
 * may act on (`allow: { namespace: 'conduit|conduit-staging' }`). The pattern is anchored as
 * Alertmanager anchors its regexes (`^(?:...)$`) and compiled with the `u` flag. A run whose rendered
 * value does not match ends `failed` with reason `out_of_scope`, before any I/O: checked at intake
 * once its params are rendered, and again at execution, with the patterns the run was created with
 * (kept in its `gates`, so a matrix reload does not change existing runs). A number is compared in its
 * decimal form; a param the run does not set is the empty string.
 */

/** `^(?:<pattern>)$`: the whole value must match. */
export const anchor = (pattern: string): string => `^(?:${pattern})$`;

/** Compiles an anchored pattern; throws a SyntaxError naming what is wrong with it. */
export const compileScope = (anchored: string): RegExp => new RegExp(anchored, 'u');

const MAX_CACHED = 1000;
const compiled = new Map<string, RegExp | null>();

/** The compiled pattern, or null when it does not compile (a stored run from a matrix that no longer loads). */
function regexOf(anchored: string): RegExp | null {
  let re = compiled.get(anchored);
  if (re === undefined) {
    try {
      re = compileScope(anchored);
    } catch {
      re = null;
    }
    if (compiled.size >= MAX_CACHED) compiled.clear();
    compiled.set(anchored, re);
  }
  return re;
}

/** A param value as the pattern sees it: strings as they are, numbers in decimal, nothing as ''. */
export function scopeValue(value: unknown): string | undefined {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return undefined;
}

const MAX_SHOWN = 80;
const CONTROL = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]+/gu;
/** On one line (control characters and line breaks as a space) and at most 80 characters: how an error shows a refused value. */
function shorten(value: string): string {
  const line = value.replace(CONTROL, ' ');
  return line.length > MAX_SHOWN ? `${line.slice(0, MAX_SHOWN)}…` : line;
}

export interface OutOfScope {
  param: string;
  /** The value as it was refused, truncated to 80 characters, on one line. */
  value: string;
  pattern: string;
  message: string;
}

/**
 * The first param whose value is outside its `allow` pattern, or undefined when every one is inside.
 * A value that is not a string or a number, or a pattern that does not compile, is outside.
 */
export function outOfScope(
  allow: Readonly<Record<string, string>> | undefined,
  params: Readonly<Record<string, unknown>>,
): OutOfScope | undefined {
  if (!allow) return undefined;
  for (const [param, pattern] of Object.entries(allow)) {
    const set = Object.hasOwn(params, param) && params[param] !== undefined && params[param] !== null;
    const value = scopeValue(set ? params[param] : undefined);
    if (value !== undefined && regexOf(pattern)?.test(value)) continue;
    const refused = shorten(value ?? JSON.stringify(params[param]) ?? '');
    return {
      param,
      value: refused,
      pattern,
      message: `${param} ${set ? JSON.stringify(refused) : '(not set)'} is outside the action's scope: allow.${param} is ${pattern}`,
    };
  }
  return undefined;
}
