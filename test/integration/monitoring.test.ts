/**
 * The shipped monitoring of the service itself (config/prometheus/remediator-alerts.yml, its unit tests,
 * config/grafana/remediator-dashboard.json) read against what a LIVE service exports on GET /metrics.
 *
 * The whole service runs in this process against the local PostgreSQL and Redis (its own database and
 * QUEUE_PREFIX), with a stand-in for Prometheus' query API, and is driven through every path that
 * creates a labelled series the monitoring reads: a run that is checked, succeeds, ends unverified and
 * is reverted; a run that is verified; a failed run; a run suppressed by its cooldown; an approval that expires and one that
 * stays pending; an alert no rule matches. Then every PromQL expression of the rules and the dashboard
 * must read only metric names the service exports (Prometheus' own `up` aside), only labels those
 * series carry, and only label values they take, so a misspelt name, label or value fails here instead
 * of silently selecting nothing in production.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Type } from '@sinclair/typebox';
import request from 'supertest';
import { parse as parseYaml } from 'yaml';
import { defineRemediation } from '../../remediations/types.js';
import { deliver, getRun, settled } from '../support/api.js';
import { alertMessage, eventually, isolation, REDIS_URL, startService } from '../support/harness.js';

// ---------------------------------------------------------------------------------------------------
// The exposition format: metric families (`# TYPE`) and, per sample name, its labels and their values.

interface Exposition {
  /** Family name -> type (counter, gauge, histogram, summary, untyped). */
  types: Map<string, string>;
  /** Sample name (a family's name, or a histogram's `_bucket`, `_sum`, `_count`) -> label -> values seen. */
  samples: Map<string, Map<string, Set<string>>>;
}

const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const unescapeLabel = (v: string) => v.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples = new Map<string, Map<string, Set<string>>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/.exec(line);
    if (type) {
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (line.startsWith('#') || line.trim() === '') continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+(?: \d+)?$/.exec(line);
    assert.ok(sample, `unreadable /metrics line: ${line}`);
    const labels = samples.get(sample[1]!) ?? new Map<string, Set<string>>();
    samples.set(sample[1]!, labels);
    for (const [, name, value] of (sample[2] ?? '').matchAll(LABEL_PAIR)) {
      const values = labels.get(name!) ?? new Set<string>();
      values.add(unescapeLabel(value!));
      labels.set(name!, values);
    }
  }
  return { types, samples };
}

// ---------------------------------------------------------------------------------------------------
// PromQL, read just far enough to name what an expression selects.

interface Token {
  kind: 'ident' | 'number' | 'string' | 'op' | 'range';
  text: string;
}

const IDENT = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
const DURATION = /(?:\d+(?:ms|[smhdwy]))+(?![a-zA-Z0-9_:.])/y;
const NUMBER = /(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(?![a-zA-Z0-9_:.])/y;
const OPERATORS = ['=~', '!~', '!=', '==', '>=', '<=', '(', ')', '{', '}', ',', '=', '>', '<', '+', '-', '*', '/', '%', '^', '@'];

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const sticky = (re: RegExp) => {
    re.lastIndex = i;
    const m = re.exec(expr);
    return m ? m[0] : undefined;
  };
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let value = '';
      while (j < expr.length && expr[j] !== c) {
        if (expr[j] === '\\' && c !== '`') j++;
        value += expr[j] ?? '';
        j++;
      }
      if (j >= expr.length) throw new Error(`unterminated string at ${i}`);
      tokens.push({ kind: 'string', text: value });
      i = j + 1;
      continue;
    }
    if (c === '[') {
      // A range or subquery: durations and Grafana's interval variables, no names.
      const end = expr.indexOf(']', i);
      if (end < 0) throw new Error(`unterminated [ at ${i}`);
      tokens.push({ kind: 'range', text: expr.slice(i, end + 1) });
      i = end + 1;
      continue;
    }
    const duration = sticky(DURATION);
    const number = duration ?? sticky(NUMBER);
    if (number !== undefined) {
      tokens.push({ kind: 'number', text: number });
      i += number.length;
      continue;
    }
    const ident = sticky(IDENT);
    if (ident !== undefined) {
      tokens.push({ kind: 'ident', text: ident });
      i += ident.length;
      continue;
    }
    const op = OPERATORS.find((o) => expr.startsWith(o, i));
    if (!op) throw new Error(`unexpected ${JSON.stringify(c)} at ${i}`);
    tokens.push({ kind: 'op', text: op });
    i += op.length;
  }
  return tokens;
}

/** Prometheus 2.x functions and aggregation operators. */
const FUNCTIONS = new Set(
  (
    'abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max clamp_min ' +
    'cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv exp floor ' +
    'histogram_count histogram_fraction histogram_quantile histogram_sum holt_winters hour idelta increase irate ' +
    'label_join label_replace last_over_time ln log10 log2 max_over_time min_over_time minute month pi ' +
    'predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort sort_desc ' +
    'sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year start end ' +
    'sum min max avg group stddev stdvar count count_values bottomk topk quantile'
  ).split(' '),
);
const AGGREGATIONS = new Set('sum min max avg group stddev stdvar count count_values bottomk topk quantile'.split(' '));
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'atan2']);
const MATCH_OPS = new Set(['=', '!=', '=~', '!~']);

interface Selector {
  name: string;
  matchers: Array<{ label: string; op: string; value: string }>;
  at: number;
}
interface Analysis {
  selectors: Selector[];
  /** `by (...)`, `without (...)`, `on (...)`...: the labels listed, and the metrics they apply to. */
  groupings: Array<{ clause: string; labels: string[]; metrics: string[] }>;
  problems: string[];
}

function analyse(expr: string): Analysis {
  let tokens: Token[];
  try {
    tokens = tokenize(expr);
  } catch (err) {
    return { selectors: [], groupings: [], problems: [`cannot read the expression: ${(err as Error).message}`] };
  }
  const problems: string[] = [];
  const partner = new Map<number, number>();
  const open: number[] = [];
  tokens.forEach((t, i) => {
    if (t.text === '(' && t.kind === 'op') open.push(i);
    if (t.text === ')' && t.kind === 'op') {
      const o = open.pop();
      if (o === undefined) problems.push('unbalanced parentheses: a ) closes nothing');
      else {
        partner.set(o, i);
        partner.set(i, o);
      }
    }
  });
  if (open.length > 0) problems.push('unbalanced parentheses: a ( is never closed');
  if (problems.length > 0) return { selectors: [], groupings: [], problems };

  const selectors: Selector[] = [];
  const scopes: Array<{ clause: string; labels: string[]; from: number; to: number }> = [];
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    const next = tokens[i + 1];
    if (tok.kind === 'op' && tok.text === '{') {
      problems.push('a selector without a metric name ({...}) cannot be checked');
      while (i < tokens.length && tokens[i]!.text !== '}') i++;
      continue;
    }
    if (tok.kind !== 'ident') continue;
    if (GROUPING.has(tok.text)) {
      if (next?.text !== '(') {
        if (!tok.text.startsWith('group_')) problems.push(`${tok.text} without a label list`);
        continue;
      }
      const close = partner.get(i + 1)!;
      const inside = tokens.slice(i + 2, close);
      const labels = inside.filter((t) => t.kind === 'ident').map((t) => t.text);
      if (inside.some((t) => t.kind !== 'ident' && t.text !== ','))
        problems.push(`${tok.text} (...) lists something other than label names`);
      let scope: [number, number] | undefined;
      if (tok.text === 'by' || tok.text === 'without') {
        if (tokens[close + 1]?.text === '(') scope = [close + 1, partner.get(close + 1)!];
        else if (tokens[i - 1]?.text === ')') scope = [partner.get(i - 1)!, i - 1];
        else problems.push(`${tok.text} (${labels.join(', ')}) belongs to no aggregation`);
      } else scope = [-1, tokens.length];
      if (scope) scopes.push({ clause: tok.text, labels, from: scope[0], to: scope[1] });
      i = close;
      continue;
    }
    if (KEYWORDS.has(tok.text) || /^(inf|nan)$/i.test(tok.text)) continue;
    // `sum by (x) (...)`: the aggregation's argument follows its grouping.
    if (AGGREGATIONS.has(tok.text) && next?.kind === 'ident' && (next.text === 'by' || next.text === 'without')) continue;
    if (next?.kind === 'op' && next.text === '(') {
      if (!FUNCTIONS.has(tok.text)) problems.push(`unknown function ${tok.text}()`);
      continue;
    }
    const selector: Selector = { name: tok.text, matchers: [], at: i };
    if (next?.kind === 'op' && next.text === '{') {
      let j = i + 2;
      while (j < tokens.length && tokens[j]!.text !== '}') {
        const [label, op, value] = [tokens[j], tokens[j + 1], tokens[j + 2]];
        if (label?.kind !== 'ident' || op?.kind !== 'op' || !MATCH_OPS.has(op.text) || value?.kind !== 'string') {
          problems.push(`cannot read the label matchers of ${tok.text}`);
          while (j < tokens.length && tokens[j]!.text !== '}') j++;
          break;
        }
        selector.matchers.push({ label: label.text, op: op.text, value: value.text });
        j += 3;
        if (tokens[j]?.text === ',') j++;
      }
      i = j;
    }
    selectors.push(selector);
  }
  const groupings = scopes.map((s) => ({
    clause: s.clause,
    labels: s.labels,
    metrics: [...new Set(selectors.filter((sel) => sel.at > s.from && sel.at < s.to).map((sel) => sel.name))],
  }));
  return { selectors, groupings, problems };
}

// ---------------------------------------------------------------------------------------------------
// The check: what an expression reads, against what the live service exports.

/** Prometheus' own series of every target, with the labels it gives them. */
const PROMETHEUS_OWN: Record<string, string[]> = { up: ['job', 'instance'] };
/** Labels Prometheus adds to every scraped sample; series of promtool unit tests carry them. */
const TARGET_LABELS = ['job', 'instance'];
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];
const oneLine = (q: string) => q.replace(/\s+/g, ' ').trim();

interface CheckOptions {
  /** Accept `job` and `instance` on the service's metrics (true for the series of promtool tests). */
  targetLabels?: boolean;
  /** Which labels' values are checked against the live ones: all of them (default) or those named. */
  values?: 'all' | ReadonlySet<string>;
}

/** Why `name` is not a series the service exports, or undefined when it is one. */
function notExported(name: string, live: Exposition): string | undefined {
  const type = live.types.get(name);
  if (type === 'histogram' || type === 'summary') return `${name} is a ${type}: PromQL reads its _bucket, _sum or _count series`;
  if (type !== undefined) return undefined;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (!name.endsWith(suffix)) continue;
    const base = live.types.get(name.slice(0, -suffix.length));
    if (base === 'histogram' || (base === 'summary' && suffix !== '_bucket')) return undefined;
  }
  return `${name} is not exported on /metrics`;
}

const LITERAL_ALTERNATION = /^[\w:+-]+(\|[\w:+-]+)*$/;

/** Everything in `expr` that does not match the live service's /metrics; empty when it all does. */
function check(expr: string, live: Exposition, opts: CheckOptions = {}): string[] {
  const { selectors, groupings, problems: found } = analyse(expr);
  const problems = [...found];
  if (problems.length === 0 && selectors.length === 0) problems.push('reads no metric at all');
  const checkValues = (label: string) => opts.values === undefined || opts.values === 'all' || opts.values.has(label);
  /** The labels a selected series has (with their live values; undefined values: any), or a problem. */
  const labelsOf = (name: string): Map<string, Set<string> | undefined> | string => {
    const own = PROMETHEUS_OWN[name];
    if (own) return new Map(own.map((l) => [l, undefined]));
    const why = notExported(name, live);
    if (why) return why;
    const labels = new Map<string, Set<string> | undefined>(live.samples.get(name) ?? []);
    if (!live.samples.has(name)) return `${name} has no sample on /metrics to read its labels from`;
    if (opts.targetLabels) for (const l of TARGET_LABELS) if (!labels.has(l)) labels.set(l, undefined);
    return labels;
  };
  const has = (labels: Map<string, Set<string> | undefined>) => [...labels.keys()].sort().join(', ') || 'none';
  for (const sel of selectors) {
    const labels = labelsOf(sel.name);
    if (typeof labels === 'string') {
      // A name that is not exported is a problem whether or not labels are read from it.
      if (notExported(sel.name, live) || sel.matchers.length > 0) problems.push(labels);
      continue;
    }
    for (const m of sel.matchers) {
      if (!labels.has(m.label)) {
        problems.push(`${sel.name} has no label "${m.label}" on /metrics (it has ${has(labels)})`);
        continue;
      }
      const values = labels.get(m.label);
      if (!values || !checkValues(m.label) || m.value === '') continue;
      const wanted = m.op === '=' ? [m.value] : m.op === '=~' && LITERAL_ALTERNATION.test(m.value) ? m.value.split('|') : [];
      for (const v of wanted) {
        if (!values.has(v)) problems.push(`${sel.name} never has ${m.label}="${v}" on /metrics (it has ${[...values].sort().join(', ')})`);
      }
    }
  }
  for (const g of groupings) {
    for (const name of g.metrics) {
      const labels = labelsOf(name);
      if (typeof labels === 'string') {
        if (g.labels.length > 0 && !notExported(name, live)) problems.push(labels);
        continue;
      }
      for (const l of g.labels) {
        if (!labels.has(l))
          problems.push(`${g.clause} (${g.labels.join(', ')}): ${name} has no label "${l}" on /metrics (it has ${has(labels)})`);
      }
    }
  }
  return [...new Set(problems)].map((p) => `${p}, in: ${oneLine(expr)}`);
}

// ---------------------------------------------------------------------------------------------------
// The shipped files.

interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ alert?: string; record?: string; expr: string }> }>;
}
interface UnitTests {
  tests: Array<{ input_series?: Array<{ series: string }>; promql_expr_test?: Array<{ expr: string }> }>;
}
interface Dashboard {
  panels: Array<{ id: number; title: string; targets?: Array<{ expr?: string }> }>;
}

const rules = parseYaml(readFileSync('config/prometheus/remediator-alerts.yml', 'utf8')) as RuleFile;
const unitTests = parseYaml(readFileSync('config/prometheus/remediator-alerts.test.yml', 'utf8')) as UnitTests;
const dashboard = JSON.parse(readFileSync('config/grafana/remediator-dashboard.json', 'utf8')) as Dashboard;

const ruleExprs = rules.groups.flatMap((g) => g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: r.expr })));
const panelExprs = dashboard.panels.flatMap((p) =>
  (p.targets ?? []).flatMap((t) => (t.expr ? [{ where: `panel ${p.id} "${p.title}"`, expr: t.expr }] : [])),
);
const seriesOfTests = unitTests.tests.flatMap((t, n) => (t.input_series ?? []).map((s) => ({ where: `test ${n + 1}`, expr: s.series })));

// ---------------------------------------------------------------------------------------------------
// The live service.

/** Reversible on purpose: it "flips" a switch and its inverse flips it back; it touches nothing. */
const flip = defineRemediation({
  name: 'monitoring.flip',
  summary: 'Test remediation: flips a named switch; its revert flips it back',
  runbookStep: 'none',
  params: Type.Object({ key: Type.String(), to: Type.Union([Type.Literal('on'), Type.Literal('off')]) }, { additionalProperties: false }),
  requires: 'none',
  target: (p) => `monitoring/${p.key}`,
  plan: (p) => `flip ${p.key} ${p.to}`,
  async execute(p) {
    return { summary: `Flipped ${p.key} ${p.to}`, to: p.to };
  },
  revert: (p) => ({ remediation: 'monitoring.flip', params: { key: p.key, to: p.to === 'on' ? 'off' : 'on' } }),
});

const MATRIX = `
defaults: { cooldown: 0s, approvalTimeout: 30m }
rules:
  - name: monitoring-flip
    matchers: ['alertname="MonitoringFlip"']
    actions:
      - remediation: monitoring.flip
        params: { key: '{{ labels.key }}', to: 'on' }
        check: { query: 'monitoring_condition{key="{{ labels.key }}"} > 0' }
        verify: { query: 'monitoring_fixed{key="{{ labels.key }}"} == 1', within: 1s, every: 200ms }
        onUnverified: revert
  - name: monitoring-verified
    matchers: ['alertname="MonitoringVerified"']
    actions:
      - remediation: monitoring.flip
        params: { key: '{{ labels.key }}', to: 'on' }
        verify: { query: 'monitoring_condition{key="{{ labels.key }}"} > 0', within: 10s, every: 200ms }
        onUnverified: none
  - name: monitoring-fail
    matchers: ['alertname="MonitoringFail"']
    actions:
      - remediation: test.fail
        params: { key: '{{ labels.key }}' }
  - name: monitoring-cooldown
    matchers: ['alertname="MonitoringCooldown"']
    actions:
      - remediation: test.count
        params: { key: shared }
        cooldown: 1h
  - name: monitoring-expiring
    matchers: ['alertname="MonitoringExpiring"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
        approvalTimeout: 1s
  - name: monitoring-approval
    matchers: ['alertname="MonitoringApproval"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
`;

/**
 * Prometheus' instant query API as the service's client reads it: the condition a check asks about
 * holds (one sample), the improvement a verification waits for never comes (no sample).
 */
function startQueryStandIn(): Promise<{ url: string; queries: string[]; close(): Promise<void> }> {
  const queries: string[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://stand-in');
      const query = url.searchParams.get('query') ?? new URLSearchParams(body).get('query') ?? '';
      queries.push(query);
      const result = query.startsWith('monitoring_condition') ? [{ metric: {}, value: [Date.now() / 1000, '1'] }] : [];
      res.writeHead(url.pathname === '/api/v1/query' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result } }));
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ url: `http://127.0.0.1:${port}`, queries, close: () => new Promise<void>((r) => server.close(() => r())) });
    });
  });
}

describe('the shipped monitoring reads what a live service exports', (s) => {
  const iso = isolation('monitoring');
  let prometheus: Awaited<ReturnType<typeof startQueryStandIn>>;
  let live: Exposition;
  let text = '';
  const runs: Record<string, { id: string; status: string; reason?: string | null }> = {};

  before(async () => {
    prometheus = await startQueryStandIn();
  });
  const svc = startService(s, () => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX,
    extraRemediations: [flip],
    env: { TARGET_REDIS_URL: REDIS_URL, PROMETHEUS_URL: prometheus.url, SWEEP_INTERVAL: '100ms' },
  }));
  after(async () => {
    await prometheus?.close();
    await iso.drop();
  });

  before(async () => {
    const fire = async (alertname: string, key: string) => {
      const [run] = await deliver(svc, alertMessage([{ labels: { alertname, key } }]));
      assert.ok(run, `${alertname} created a run`);
      return run;
    };
    // Checked (needed), succeeded, never verified within 1s, reverted.
    const flipped = await fire('MonitoringFlip', 'a');
    await settled(svc, flipped.id, 'succeeded');
    const unverified = await eventually(
      async () => {
        const run = await getRun(svc, flipped.id);
        return run.verification === 'unverified' && run.revertedBy ? run : undefined;
      },
      15_000,
      'the flip unverified and reverted',
    );
    const revert = await settled(svc, unverified.revertedBy!, 'succeeded');
    runs['reverted'] = unverified;
    runs['revert'] = revert;
    const verified = await fire('MonitoringVerified', 'v');
    await settled(svc, verified.id, 'succeeded');
    runs['verified'] = await eventually(
      async () => {
        const run = await getRun(svc, verified.id);
        return run.verification === 'verified' ? run : undefined;
      },
      15_000,
      'the second flip verified',
    );
    runs['failed'] = await settled(svc, (await fire('MonitoringFail', 'f')).id, 'failed');
    runs['cooled'] = await settled(svc, (await fire('MonitoringCooldown', 'c1')).id, 'succeeded');
    runs['suppressed'] = await settled(svc, (await fire('MonitoringCooldown', 'c2')).id, 'suppressed');
    runs['expired'] = await settled(svc, (await fire('MonitoringExpiring', 'e')).id, 'expired', 15_000);
    runs['pending'] = await fire('MonitoringApproval', 'p');
    assert.deepEqual(await deliver(svc, alertMessage([{ labels: { alertname: 'MonitoringNobody', key: 'n' } }])), [], 'no rule matches');
    text = (
      await request(svc.url)
        .get('/metrics')
        .expect(200)
        .expect('content-type', /text\/plain/)
    ).text;
    live = parseExposition(text);
  });

  it('went through every path the monitoring reads, and /metrics shows it', () => {
    assert.equal(runs['suppressed']!.reason, 'cooldown');
    assert.equal(runs['pending']!.status, 'pending_approval');
    assert.ok(
      prometheus.queries.some((q) => q.startsWith('monitoring_condition')) &&
        prometheus.queries.some((q) => q.startsWith('monitoring_fixed')),
      `the service asked the check and the verification: ${prometheus.queries.join('; ')}`,
    );
    const values = (sample: string, label: string) => [...(live.samples.get(sample)?.get(label) ?? [])].sort();
    for (const status of ['queued', 'running', 'succeeded', 'failed', 'suppressed', 'expired', 'pending_approval']) {
      assert.ok(values('remediator_runs_total', 'status').includes(status), `remediator_runs_total{status="${status}"} is on /metrics`);
    }
    assert.deepEqual(values('remediator_suppressed_total', 'reason'), ['cooldown']);
    assert.deepEqual(values('remediator_checks_total', 'result'), ['needed']);
    assert.deepEqual(values('remediator_verifications_total', 'result'), ['unverified', 'verified']);
    assert.deepEqual(values('remediator_reverts_total', 'remediation'), ['monitoring.flip']);
    assert.deepEqual(values('remediator_webhook_duration_seconds_count', 'code'), ['200']);
    assert.deepEqual(values('remediator_alerts_unmatched_total', 'alertname'), ['MonitoringNobody']);
    assert.ok(values('remediator_run_duration_seconds_bucket', 'remediation').includes('monitoring.flip'));
    assert.deepEqual(values('remediator_queue_jobs', 'state'), [
      'active',
      'completed',
      'delayed',
      'failed',
      'paused',
      'prioritized',
      'waiting',
    ]);
    assert.match(text, /^remediator_approvals_pending 1$/m, 'the approval left pending is counted');
    assert.match(text, /^remediator_approval_wait_seconds_count [1-9]/m, 'the expired approval was observed');
    assert.match(text, /^remediator_paused 0$/m);
  });

  it('a healthy service reports its matrix loaded: RemediatorReloadFailed stays silent', () => {
    assert.equal(live.types.get('remediator_config_last_reload_successful'), 'gauge');
    assert.equal(live.types.get('remediator_config_last_reload_success_timestamp_seconds'), 'gauge');
    assert.match(text, /^remediator_config_last_reload_successful 1$/m);
    const at = Number(/^remediator_config_last_reload_success_timestamp_seconds (\S+)$/m.exec(text)?.[1]);
    assert.ok(Math.abs(Date.now() / 1000 - at) < 600, `the matrix was loaded at ${at}, when the service started`);
  });

  it('every alert rule reads only exported metrics, with labels and label values the service uses', () => {
    assert.ok(ruleExprs.length >= 10);
    const problems = ruleExprs.flatMap(({ where, expr }) => check(expr, live).map((p) => `${where}: ${p}`));
    assert.deepEqual(problems, []);
  });

  it('every dashboard query reads only exported metrics, with labels and label values the service uses', () => {
    assert.ok(panelExprs.length >= dashboard.panels.length);
    const problems = panelExprs.flatMap(({ where, expr }) => check(expr, live).map((p) => `${where}: ${p}`));
    assert.deepEqual(problems, []);
  });

  it('the unit tests of the alerts feed series named and labelled as the live ones', () => {
    assert.ok(seriesOfTests.length > 20);
    // Rule and remediation names come from the shipped matrix there, not from this file's matrix.
    const opts = { targetLabels: true, values: new Set(['status', 'result', 'state']) };
    const problems = seriesOfTests.flatMap(({ where, expr }) => check(expr, live, opts).map((p) => `${where}: ${p}`));
    assert.deepEqual(problems, []);
  });

  it('the check catches a misspelt metric, suffix, label, label value or function', () => {
    const caught: Array<[string, RegExp]> = [
      ['sum(rate(remediator_run_total[5m]))', /remediator_run_total is not exported/],
      ['sum by (le) (rate(remediator_run_duration_seconds_buckets[5m]))', /remediator_run_duration_seconds_buckets is not exported/],
      ['rate(remediator_run_duration_seconds[5m])', /remediator_run_duration_seconds is a histogram/],
      ['remediator_queue_jobs_bucket', /remediator_queue_jobs_bucket is not exported/],
      ['sum by (rul, remediation) (rate(remediator_runs_total[5m]))', /remediator_runs_total has no label "rul"/],
      ['sum(remediator_approvals_pending) by (state)', /remediator_approvals_pending has no label "state"/],
      ['remediator_runs_total{status="fialed"}', /never has status="fialed"/],
      ['max by (state) (remediator_queue_jobs{state=~"waiting|prioritised"})', /never has state="prioritised"/],
      ['remediator_paused{instance="remediator-0:8080"}', /remediator_paused has no label "instance"/],
      ['rat(remediator_runs_total[5m])', /unknown function rat\(\)/],
      ['up{jbo=~".*remediator.*"} == 0', /up has no label "jbo"/],
      ['sum(rate(remediator_runs_total[5m]) by (status)', /unbalanced parentheses/],
      ['vector(1)', /reads no metric at all/],
    ];
    for (const [expr, problem] of caught) {
      const problems = check(expr, live);
      assert.ok(
        problems.some((p) => problem.test(p)),
        `${expr}: expected a problem matching ${problem}, got ${JSON.stringify(problems)}`,
      );
    }
    // And expressions that are right pass, so the above fail for the reason they name.
    for (const expr of [
      'sum by (rule, remediation) (increase(remediator_runs_total{status="failed"}[30m])) > 0',
      'histogram_quantile(0.95, sum by (le, remediation) (rate(remediator_run_duration_seconds_bucket[$__rate_interval])))',
      'max by (state) (remediator_queue_jobs{state=~"waiting|prioritized"}) unless on () max(remediator_paused) == 1',
      'absent(up{job=~".*remediator.*"})',
      'time() - remediator_config_last_reload_success_timestamp_seconds offset 5m',
    ]) {
      assert.deepEqual(check(expr, live), [], expr);
    }
  });
});
