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

const label = (labels: Readonly<Record<string, string>>, name: string) => (Object.hasOwn(labels, name) ? (labels[name] ?? '') : '');

const matcherRe = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/;

function unquote(raw: string): string {
  if (!raw.startsWith('"')) {
    if (/["{},]/.test(raw)) throw new Error(`unquoted value ${raw} contains a special character; quote it`);
    return raw;
  }
  // As Alertmanager's parser: \" \\ and \n are escapes; any other backslash stays, so `"db\d+"` is the regex db\d+.
  let out = '';
  for (let i = 1; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === '"') {
      if (i !== raw.length - 1) throw new Error(`value ${raw} has text after its closing quote`);
      return out;
    }
    if (c === '\\' && i + 1 < raw.length) {
      const next = raw[++i]!;
      out += next === 'n' ? '\n' : next === '"' || next === '\\' ? next : `\\${next}`;
    } else {
      out += c;
    }
  }
  throw new Error(`value ${raw} has no closing quote`);
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
    return { name, op, value, test: (labels) => (label(labels, name) === value) === equal };
  }
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${value})$`);
  } catch (err) {
    throw new Error(`invalid regex in "${text}": ${(err as Error).message}`);
  }
  const positive = op === '=~';
  return { name, op, value, test: (labels) => re.test(label(labels, name)) === positive };
}

export function matchesAll(matchers: readonly Matcher[], labels: Readonly<Record<string, string>>): boolean {
  for (const m of matchers) if (!m.test(labels)) return false;
  return true;
}
