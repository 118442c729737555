/**
 * Alertmanager's matcher syntax: `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`.
 * Values may be unquoted when they contain no special characters, as amtool accepts.
 * Regexes are anchored at both ends, as Alertmanager anchors them (`^(?:re)$`).
 */
export type MatchOp = '=' | '!=' | '=~' | '!~';

export interface Matcher {
  name: string;
  op: MatchOp;
  value: string;
  test(labels: Readonly<Record<string, string>>): boolean;
}

const matcherRe = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/;

function unquote(raw: string): string {
  if (!raw.startsWith('"')) {
    if (/["{},]/.test(raw)) throw new Error(`unquoted value ${raw} contains a special character; quote it`);
    return raw;
  }
  if (raw.length < 2 || !raw.endsWith('"')) throw new Error(`value ${raw} has no closing quote`);
  try {
    return JSON.parse(raw) as string;
  } catch {
    throw new Error(`value ${raw} is not a valid quoted string`);
  }
}

/** Parses one matcher; throws with a message saying what is wrong. */
export function parseMatcher(text: string): Matcher {
  const m = matcherRe.exec(text);
  if (!m) throw new Error(`"${text}" is not a matcher (name="value", name!="value", name=~"re", name!~"re")`);
  const [, name, op, raw] = m as unknown as [string, string, MatchOp, string];
  const value = unquote(raw);
  if (op === '=' || op === '!=') {
    const equal = op === '=';
    // A missing label matches the empty string, as in Alertmanager.
    return { name, op, value, test: (labels) => ((labels[name] ?? '') === value) === equal };
  }
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${value})$`, 'u');
  } catch (err) {
    throw new Error(`invalid regex in "${text}": ${(err as Error).message}`);
  }
  const positive = op === '=~';
  return { name, op, value, test: (labels) => re.test(labels[name] ?? '') === positive };
}

export function matchesAll(matchers: readonly Matcher[], labels: Readonly<Record<string, string>>): boolean {
  for (const m of matchers) if (!m.test(labels)) return false;
  return true;
}
