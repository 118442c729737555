/**
 * A Prometheus rules file (`groups[].rules[]`, as promtool reads it), for `remediator check --rules`:
 * which alerts it fires and, per alert rule, which labels its alerts can carry.
 *
 * Which labels an alert carries depends on the series its `expr` returns, which only Prometheus
 * knows; `producedLabels` guesses them from the text, erring towards "produced" so that a warning
 * means a label is really missing. A label is produced by an alert rule when it is:
 * - one of the rule's `labels:` (or `alertname`);
 * - named in a `by (...)` of an aggregation (`sum by (a, b) (...)`, `sum (...) by (a)`), in a
 *   `group_left (...)` / `group_right (...)`, as the destination of `label_replace` / `label_join`,
 *   or as the label of `count_values`;
 * - named in a selector (`x{a="..."}`) outside any aggregation;
 * - produced by a recording rule of the same file whose series the expr reads outside any
 *   aggregation (its `by (...)`, its selectors, ..., recursively, plus that rule's `labels:`);
 * - anywhere in the text of an expr (or of such a recording rule's expr) that reads a series of no
 *   recording rule outside any aggregation: such a series keeps labels nobody can list, so any name
 *   the expression mentions counts.
 * An aggregation without `by` (`sum (...)`, `sum without (...)` aside, which keeps labels) drops
 * the labels of what it aggregates; `topk`, `bottomk`, `limitk` and `limit_ratio` keep them. Both
 * sides of a binary operation are taken to keep their labels (`and`, `unless` and `on (...)` are not
 * looked at), which can only make more labels count as produced.
 */
import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { ConfigError } from '../errors.js';

export interface AlertRule {
  alert: string;
  expr: string;
  labels: Readonly<Record<string, string>>;
  /** `file:line:col` of the rule's `alert:` value. */
  at: string;
}

export interface RecordingRule {
  record: string;
  expr: string;
  labels: Readonly<Record<string, string>>;
}

export interface RulesFile {
  path: string;
  alerts: AlertRule[];
  /** By the series they record; a series may be recorded by several rules. */
  records: ReadonlyMap<string, RecordingRule[]>;
}

/** `file:line:col` of a node of the document. */
export function positionOf(file: string, lines: LineCounter, node: unknown): string {
  const offset = node && typeof node === 'object' && 'range' in node && Array.isArray(node.range) ? Number(node.range[0]) : 0;
  const { line, col } = lines.linePos(offset);
  return `${file}:${line}:${col}`;
}

/** Reads and checks a rules file; throws `ConfigError` with `file:line:col` when it is not one. */
export function loadRules(path: string): RulesFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('--rules', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseRules(text, path);
}

export function parseRules(text: string, path: string): RulesFile {
  const lines = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    throw new ConfigError(`${path}:${pos?.line ?? 1}:${pos?.col ?? 1}`, e.message.split('\n')[0] ?? e.message);
  }
  const fail = (node: unknown, where: string, message: string) =>
    new ConfigError(positionOf(path, lines, node ?? doc.contents), `${where}: ${message}`);
  const groups = isMap(doc.contents) ? doc.contents.get('groups', true) : undefined;
  if (!isSeq(groups)) throw fail(doc.contents, 'groups', 'a rules file needs a list `groups`');
  const alerts: AlertRule[] = [];
  const records = new Map<string, RecordingRule[]>();
  groups.items.forEach((group, gi) => {
    const rules = isMap(group) ? group.get('rules', true) : undefined;
    if (!isSeq(rules)) throw fail(group, `groups[${gi}].rules`, 'a group needs a list `rules`');
    rules.items.forEach((rule, ri) => {
      const where = `groups[${gi}].rules[${ri}]`;
      if (!isMap(rule)) throw fail(rule, where, 'a rule is a map with `alert` or `record`, and `expr`');
      const scalar = (key: string): { node: Node; value: string } | undefined => {
        const node = rule.get(key, true);
        if (node === undefined) return undefined;
        if (!isScalar(node) || node.value === null || typeof node.value === 'object')
          throw fail(node, `${where}.${key}`, 'must be a string');
        return { node, value: String(node.value) };
      };
      const alert = scalar('alert');
      const record = scalar('record');
      const expr = scalar('expr');
      if ((alert === undefined) === (record === undefined)) throw fail(rule, where, 'a rule has either `alert` or `record`');
      if (!expr) throw fail(rule, where, 'a rule needs `expr`');
      const labelsNode = rule.get('labels', true);
      const labels: Record<string, string> = {};
      if (labelsNode !== undefined && labelsNode !== null) {
        if (!isMap(labelsNode)) throw fail(labelsNode, `${where}.labels`, 'must be a map of label names to values');
        for (const pair of labelsNode.items) {
          const key = isScalar(pair.key) ? String(pair.key.value) : '';
          if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(key)) throw fail(pair.key, `${where}.labels`, `"${key}" is not a label name`);
          labels[key] = isScalar(pair.value) ? String(pair.value.value ?? '') : '';
        }
      }
      if (alert) alerts.push({ alert: alert.value, expr: expr.value, labels, at: positionOf(path, lines, alert.node) });
      else {
        const list = records.get(record!.value) ?? [];
        list.push({ record: record!.value, expr: expr.value, labels });
        records.set(record!.value, list);
      }
    });
  });
  return { path, alerts, records };
}

type Token = { kind: 'ident' | 'string' | 'number' | 'op' | 'punct'; text: string };

/** PromQL's tokens, roughly: enough to tell names, strings, parentheses and commas apart. */
function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  const re =
    /\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`|([a-zA-Z_:][a-zA-Z0-9_:]*)|(\d[\w.]*|\.\d[\w.]*)|(=~|!~|!=|==|>=|<=|[=<>+\-*/%^@])|([(){}[\],])|./gy;
  for (const m of expr.matchAll(re)) {
    const text = m[0];
    if (/^\s/.test(text) || text.startsWith('#')) continue;
    if (text.startsWith('"') || text.startsWith("'") || text.startsWith('`')) tokens.push({ kind: 'string', text: text.slice(1, -1) });
    else if (m[1] !== undefined) tokens.push({ kind: 'ident', text });
    else if (m[2] !== undefined) tokens.push({ kind: 'number', text });
    else if (m[3] !== undefined) tokens.push({ kind: 'op', text });
    else tokens.push({ kind: 'punct', text });
  }
  return tokens;
}

/** Aggregations whose result carries only the `by` labels (or, with `without`, all but some). */
const DROPPING = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'quantile']);
/** Aggregations that return some of their input series as they are. */
const KEEPING = new Set(['topk', 'bottomk', 'limitk', 'limit_ratio']);
const MODIFIERS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set([...MODIFIERS, 'bool', 'offset', 'and', 'or', 'unless', 'atan2', 'inf', 'nan', 'start', 'end']);

interface Frame {
  kind: 'drop' | 'keep' | 'call' | 'brace' | 'bracket';
  fn?: string;
  arg: number;
  /** What leaves this frame: labels, and series read outside any aggregation. */
  labels: Set<string>;
  series: Set<string>;
  /** An aggregation's `by` labels, which its result carries. */
  by: string[];
}

const frame = (kind: Frame['kind'], fn?: string): Frame => ({
  kind,
  ...(fn !== undefined ? { fn } : {}),
  arg: 0,
  labels: new Set(),
  series: new Set(),
  by: [],
});

/** The labels an expression's result keeps (see the file comment), and the series it reads outside aggregations. */
export function exprLabels(expr: string): { labels: Set<string>; series: Set<string> } {
  const tokens = tokenize(expr);
  const stack: Frame[] = [frame('keep')];
  const top = () => stack[stack.length - 1]!;
  const next = (i: number) => tokens[i + 1];
  /** Reads a `(a, b)` list starting at tokens[i] (the `(`); returns its names and the index of its `)`. */
  const list = (i: number): { names: string[]; end: number } => {
    const names: string[] = [];
    let j = i + 1;
    for (; j < tokens.length && tokens[j]!.text !== ')'; j++) if (tokens[j]!.kind === 'ident') names.push(tokens[j]!.text);
    return { names, end: j };
  };
  /** The index just past the `)` matching the `(` at tokens[i]. */
  const closing = (i: number): number => {
    let depth = 0;
    for (let j = i; j < tokens.length; j++) {
      if (tokens[j]!.text === '(') depth++;
      else if (tokens[j]!.text === ')' && --depth === 0) return j;
    }
    return tokens.length;
  };
  /** An aggregation opening at tokens[i] (its keyword): pushes its frame and returns where its argument starts. */
  const aggregation = (i: number): number => {
    const name = tokens[i]!.text;
    let j = i + 1;
    let by: string[] = [];
    let without = false;
    if (tokens[j]?.text === 'by' || tokens[j]?.text === 'without') {
      without = tokens[j]!.text === 'without';
      const l = list(j + 1);
      by = l.names;
      j = l.end + 1;
    }
    if (tokens[j]?.text !== '(') return i + 1;
    const after = tokens[closing(j) + 1]?.text;
    if (after === 'without') without = true;
    const f = frame(KEEPING.has(name) || without ? 'keep' : 'drop', name);
    f.by = without ? [] : by;
    stack.push(f);
    return j + 1;
  };

  let i = 0;
  while (i < tokens.length) {
    const t = tokens[i]!;
    const f = top();
    if (f.kind === 'bracket') {
      if (t.text === ']') stack.pop();
      i++;
      continue;
    }
    if (t.kind === 'ident') {
      const lower = t.text.toLowerCase();
      const following = next(i)?.text;
      if (f.kind === 'brace') {
        if (next(i)?.kind === 'op') f.labels.add(t.text);
        i++;
      } else if ((DROPPING.has(lower) || KEEPING.has(lower)) && (following === '(' || following === 'by' || following === 'without')) {
        i = aggregation(i);
      } else if (MODIFIERS.has(lower) && following === '(') {
        const l = list(i + 1);
        // A postfix `by` belongs to the aggregation that just closed: its result carries them, like a grouping's extra labels.
        if (lower === 'by' || lower === 'group_left' || lower === 'group_right') for (const n of l.names) f.labels.add(n);
        i = l.end + 1;
      } else if (following === '(' && !KEYWORDS.has(lower)) {
        stack.push(frame('call', t.text));
        i += 2;
      } else {
        if (!KEYWORDS.has(lower)) f.series.add(t.text);
        i++;
      }
      continue;
    }
    if (t.kind === 'string') {
      const dest = (f.fn === 'label_replace' || f.fn === 'label_join') && f.arg === 1;
      if ((dest || (f.fn === 'count_values' && f.arg === 0)) && /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(t.text)) {
        if (f.fn === 'count_values') f.by.push(t.text);
        else f.labels.add(t.text);
      }
      i++;
      continue;
    }
    switch (t.text) {
      case '(':
        stack.push(frame('call'));
        break;
      case '{':
        stack.push(frame('brace'));
        break;
      case '[':
        stack.push(frame('bracket'));
        break;
      case ',':
        f.arg++;
        break;
      case ')':
      case '}': {
        if (stack.length === 1) break;
        const done = stack.pop()!;
        const parent = top();
        if (done.kind !== 'drop') {
          for (const l of done.labels) parent.labels.add(l);
          for (const s of done.series) parent.series.add(s);
        }
        for (const l of done.by) parent.labels.add(l);
        break;
      }
      default:
        break;
    }
    i++;
  }
  while (stack.length > 1) {
    const done = stack.pop()!;
    if (done.kind !== 'drop') {
      for (const l of done.labels) top().labels.add(l);
      for (const s of done.series) top().series.add(s);
    }
  }
  return { labels: stack[0]!.labels, series: stack[0]!.series };
}

const words = (text: string) => text.match(/[a-zA-Z_][a-zA-Z0-9_]*/g) ?? [];

/** The labels the alerts of `rule` can carry, by the heuristic of the file comment. */
export function producedLabels(rule: AlertRule, file: RulesFile): Set<string> {
  const memo = new Map<string, Set<string>>();
  const ofExpr = (expr: string, seen: ReadonlySet<string>): Set<string> => {
    const { labels, series } = exprLabels(expr);
    const out = new Set(labels);
    for (const name of series) {
      const recorded = file.records.get(name);
      if (!recorded) {
        for (const w of words(expr)) out.add(w);
        continue;
      }
      if (seen.has(name)) continue;
      let inner = memo.get(name);
      if (!inner) {
        inner = new Set();
        for (const r of recorded) {
          for (const l of Object.keys(r.labels)) inner.add(l);
          for (const l of ofExpr(r.expr, new Set([...seen, name]))) inner.add(l);
        }
        memo.set(name, inner);
      }
      for (const l of inner) out.add(l);
    }
    return out;
  };
  const out = ofExpr(rule.expr, new Set());
  out.add('alertname');
  for (const l of Object.keys(rule.labels)) out.add(l);
  return out;
}
