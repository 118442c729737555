/**
 * The results table: a row per scenario with its target, the verdicts, and the headline figures, for
 * one repetition (`resultsTable`) and for the median of the repetitions (`medianTable`).
 */
import os from 'node:os';
import type { CannonResult } from './common.js';
import type { TableStats } from './groups.js';
import type { Counters } from './round-trips.js';
import type { MemReport, Scenarios } from './scenarios/results.js';
import {
  BIG_MESSAGE_ALERTS,
  CHAIN_ALERTS,
  CHAIN_RATE,
  CONNECTIONS,
  DUPLICATES,
  DURATION,
  EXEC_ALERTS,
  EXEC_RATE,
  MiB,
  STORM_ALERTS,
  STORM_MESSAGES,
  TARGETS,
} from './settings.js';

export const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
export const fmtMs = (n: number | undefined) =>
  n !== undefined && Number.isFinite(n) ? (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(1)) : '—';
const fmtX = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '—');
const fmtMiB = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;
/** `CPU in cores: service 0.59, postgres 0.80, redis 0.10, load 0.40; machine 1.9 of 2 busy`. */
const cpuOf = (s: { cpu: Record<string, number> }, name: string) => {
  const c = s.cpu;
  if (c[name] === undefined) return '';
  const f = (v: number | undefined) => (v ?? 0).toFixed(2);
  const bg = c['postgres-bg'] ?? 0;
  return `CPU cores: ${name === 'baseline' ? 'server' : 'service'} ${f(c[name])}, postgres ${f(c['postgres'])}${bg >= 0.05 ? ` (+${f(bg)} upkeep)` : ''}, redis ${f(c['redis'])}, load ${f(c['load'])}, other ${f(c['other'])}; machine ${f(c['machine'])} of ${os.cpus().length} busy`;
};

export interface Row {
  id: string;
  scenario: string;
  rate: string;
  p50: string;
  p99: string;
  max: string;
  detail: string;
  target: string;
  result: 'PASS' | 'FAIL' | 'info' | 'error';
  /** The figures behind rate, p50, p99 and max, so that repetitions can be combined (rate in `unit`). */
  values?: { rate?: number; unit?: string; p50?: number; p99?: number; max?: number };
}

export interface Verdict {
  id: string;
  target: string;
  met: boolean | undefined;
  note: string;
}

/** One repetition's table. */
export interface Table {
  rows: Row[];
  verdicts: Verdict[];
  figures: Record<string, number>;
}

/**
 * Figures that count failures (answers that were not 200, runs created by re-deliveries, alerts that
 * never executed): combined over the repetitions by their worst value, not their median, so one bad
 * repetition fails the target.
 */
const WORST_OF = new Set([
  'intakeFailures',
  'stormIncomplete',
  'duplicateRunsCreated',
  'duplicateFailures',
  'execAllMissing',
  'execSplitMissing',
  'bigMessageIncomplete',
  'chainAllMissing',
  'chainSplitMissing',
]);

/**
 * The rows each step of run.ts (by its name, as BENCH_ONLY names it) measures: a run of only some
 * steps shows only their rows.
 */
export const STEP_ROWS: Readonly<Record<string, readonly string[]>> = {
  baseline: ['1'],
  intake: ['2', '3', '3b', '4', '6'],
  intakeAll: ['2b'],
  execAll: ['5a'],
  execSplit: ['5b'],
  chains: ['7'],
  chainsSplit: ['7b'],
  atRest: ['6r'],
};

/** Labels of scenario 6's sampled peaks (keys of `memory.perScenario`). */
const PEAK_LABELS: Record<string, string> = { bigMessage: `storm 3b (one ${BIG_MESSAGE_ALERTS.toLocaleString('en-US')}-alert message)` };

export function resultsTable(scenarios: Scenarios, errors: Record<string, string>): Table {
  const rows: Row[] = [];
  const figures: Record<string, number> = {};
  const rate = (r: CannonResult, alertsPerMessage = 1) => (r.ok * alertsPerMessage) / r.durationSec;
  const failures = (r: CannonResult) =>
    r.non2xx + r.errors > 0 ? `; ${r.non2xx} non-2xx ${JSON.stringify(r.statusCodes)}, ${r.errors} errors` : '';
  const lat = (l: { p50: number; p99: number; max: number }) => ({ p50: fmtMs(l.p50), p99: fmtMs(l.p99), max: fmtMs(l.max) });

  const b = scenarios.baseline;
  const baseRps = b ? rate(b.load) : NaN;
  const ofBaseline = (r: number) => (b ? `${fmtX(r / baseRps)} baseline` : 'no baseline in this run');
  if (b) {
    figures['baselineRps'] = baseRps;
    rows.push({
      id: '1',
      scenario: `baseline: bare Fastify 5 route, same body + schema, c=${CONNECTIONS}, ${DURATION} s`,
      rate: `${fmtInt(baseRps)} req/s`,
      ...lat(b.load.latencyMs),
      detail: `${fmtInt(b.load.ok)} requests${failures(b.load)}; ${cpuOf(b.sampled, 'baseline')}`,
      target: 'ceiling',
      result: 'info',
      values: { rate: baseRps, unit: 'req/s', ...b.load.latencyMs },
    });
  } else rows.push(errorRow('1', 'baseline', errors['baseline']));

  const s2 = scenarios.intake;
  const s2Rate = s2 ? rate(s2.load) : NaN;
  if (s2) {
    figures['intakeAlertsPerSec'] = s2Rate;
    figures['intakeRatio'] = s2Rate / baseRps;
    figures['intakeP99Ms'] = s2.load.latencyMs.p99;
    figures['intakeFailures'] = s2.load.non2xx + s2.load.errors;
    rows.push({
      id: '2',
      scenario: `intake: unique single-alert messages, auto bench.noop, ROLE=api, c=${CONNECTIONS}, ${DURATION} s`,
      rate: `${fmtInt(s2Rate)} alerts/s`,
      ...lat(s2.load.latencyMs),
      detail: `${ofBaseline(s2Rate)}; ${fmtInt(s2.runsStored)} runs stored${failures(s2.load)}; ${perAlert(s2.sent, s2.alertsSent)}${seqScans(s2.scans)}; ${cpuOf(s2.sampled, 'svc-api')}`,
      target: TARGET_TEXT['2']!,
      result: 'info',
      values: { rate: s2Rate, unit: 'alerts/s', ...s2.load.latencyMs },
    });
  } else rows.push(errorRow('2', 'intake, ROLE=api', errors['intake']));

  const s2b = scenarios.intakeAll;
  if (s2b) {
    const r = rate(s2b.load);
    figures['intakeAllAlertsPerSec'] = r;
    figures['intakeAllRatio'] = r / baseRps;
    figures['intakeAllP99Ms'] = s2b.load.latencyMs.p99;
    rows.push({
      id: '2b',
      scenario: `intake as 2, worker in the same process (ROLE=all)`,
      rate: `${fmtInt(r)} alerts/s`,
      ...lat(s2b.load.latencyMs),
      detail: `${ofBaseline(r)}; ${fmtInt(s2b.executedDuring)} runs executed meanwhile${failures(s2b.load)}; ${cpuOf(s2b.sampled, 'svc-all')}`,
      target: 'info',
      result: 'info',
      values: { rate: r, unit: 'alerts/s', ...s2b.load.latencyMs },
    });
  } else rows.push(errorRow('2b', 'intake, ROLE=all', errors['intakeAll']));

  const s3 = scenarios.storm;
  if (s3) {
    const m = s3.load.messages;
    const incomplete = m.filter((x) => x.status !== 200 || x.received !== STORM_ALERTS || x.runs !== STORM_ALERTS);
    const alerts = m.filter((x) => x.status === 200).length * STORM_ALERTS;
    const busy = m.reduce((acc, x) => acc + x.ms, 0) / 1000;
    figures['stormMaxMs'] = s3.load.latencyMs.max;
    figures['stormP50Ms'] = s3.load.latencyMs.p50;
    figures['stormAlertsPerSec'] = alerts / busy;
    figures['stormIncomplete'] = incomplete.length;
    rows.push({
      id: '3',
      scenario: `storm: ${STORM_MESSAGES} sequential messages × ${fmtInt(STORM_ALERTS)} unique alerts, ROLE=api`,
      rate: `${fmtInt(alerts / busy)} alerts/s`,
      ...lat(s3.load.latencyMs),
      detail: `per message; ${m.length - incomplete.length}/${m.length} answered 200 with every run, ${fmtInt(s3.runsStored)} runs stored${incomplete.length ? ` (first incomplete: ${JSON.stringify(incomplete.slice(0, 2))})` : ''}; ${perAlert(s3.sent, s3.alertsSent, m.length)}${seqScans(s3.scans)}; ${cpuOf(s3.sampled, 'svc-api')}`,
      target: TARGET_TEXT['3']!,
      result: 'info',
      values: { rate: alerts / busy, unit: 'alerts/s', ...s3.load.latencyMs },
    });
  } else rows.push(errorRow('3', 'storm', errors['intake']));

  const s3b = scenarios.bigMessage;
  if (s3b) {
    const m = s3b.load.messages;
    const incomplete = m.filter((x) => x.status !== 200 || x.received !== BIG_MESSAGE_ALERTS || x.runs !== BIG_MESSAGE_ALERTS);
    const ms = s3b.load.latencyMs.max;
    const alertsPerSec = (m.filter((x) => x.status === 200).length * BIG_MESSAGE_ALERTS) / (ms / 1000);
    figures['bigMessageMs'] = ms;
    figures['bigMessageIncomplete'] = incomplete.length;
    rows.push({
      id: '3b',
      scenario: `big message: one message of ${fmtInt(BIG_MESSAGE_ALERTS)} unique alerts, ROLE=api, right after 3 on its process`,
      rate: `${fmtInt(alertsPerSec)} alerts/s`,
      ...lat(s3b.load.latencyMs),
      detail: `time to the complete 200; ${incomplete.length === 0 ? 'answered 200 with every run' : `not answered 200 with every run: ${JSON.stringify(incomplete)}`}, ${fmtInt(s3b.runsStored)} runs stored; ${perAlert(s3b.sent, s3b.alertsSent, m.length)}${seqScans(s3b.scans)}; ${cpuOf(s3b.sampled, 'svc-api')}`,
      target: TARGET_TEXT['3b']!,
      result: 'info',
      values: { rate: alertsPerSec, unit: 'alerts/s', ...s3b.load.latencyMs },
    });
  } else rows.push(errorRow('3b', 'big message', errors['intake']));

  const s4 = scenarios.duplicates;
  if (s4) {
    const r = rate(s4.load);
    const created = s4.runsAfter - s4.runsBefore;
    figures['duplicateAlertsPerSec'] = r;
    figures['duplicateFactor'] = r / s2Rate;
    figures['duplicateRunsCreated'] = created;
    figures['duplicateFailures'] = s4.load.non2xx + s4.load.errors;
    rows.push({
      id: '4',
      scenario: `duplicate flood: ${fmtInt(DUPLICATES)} re-deliveries of ${fmtInt(s4.knownAlerts)} known alerts, c=${CONNECTIONS}`,
      rate: `${fmtInt(r)} alerts/s`,
      ...lat(s4.load.latencyMs),
      detail: `${fmtX(r / s2Rate)} scenario 2; ${created} runs created${failures(s4.load)}; ${perAlert(s4.sent, s4.alertsSent)}${seqScans(s4.scans)}; ${cpuOf(s4.sampled, 'svc-api')}`,
      target: TARGET_TEXT['4']!,
      result: 'info',
      values: { rate: r, unit: 'alerts/s', ...s4.load.latencyMs },
    });
  } else rows.push(errorRow('4', 'duplicate flood', errors['intake']));

  for (const [id, ex, key] of [
    ['5a', scenarios.execAll, 'execAll'],
    ['5b', scenarios.execSplit, 'execSplit'],
  ] as const) {
    if (!ex) {
      rows.push(errorRow(id, `alert to execution (${id === '5a' ? 'ROLE=all' : 'api + worker'})`, errors[key]));
      continue;
    }
    figures[`${key}P99Ms`] = ex.execMs.p99;
    figures[`${key}P50Ms`] = ex.execMs.p50;
    figures[`${key}Missing`] = ex.missing;
    rows.push({
      id,
      scenario: `alert → execution: ${EXEC_ALERTS} alerts at ${EXEC_RATE}/s, ${ex.role}`,
      rate: '—',
      ...lat(ex.execMs),
      detail: `webhook 200 → bench.noop start; webhook itself p50 ${fmtMs(ex.webhookMs.p50)} / p99 ${fmtMs(ex.webhookMs.p99)} ms; ${ex.executed}/${EXEC_ALERTS} executed; other CPU ${(ex.cpu['other'] ?? 0).toFixed(2)} cores`,
      target: TARGET_TEXT[id]!,
      result: 'info',
      values: { ...ex.execMs },
    });
  }

  const mem = scenarios.memory;
  if (mem) {
    const peak = Math.max(mem.vmHwm, mem.peakSampled);
    figures['peakRssMiB'] = peak / MiB;
    rows.push({
      id: '6',
      scenario: 'memory: peak RSS of the ROLE=api service process over scenarios 2-4 (3b included)',
      rate: '—',
      p50: '—',
      p99: '—',
      max: fmtMiB(peak),
      detail: `${fmtMiB(peak)} (VmHWM); sampled peaks: ${Object.entries(mem.perScenario)
        .map(([k, v]) => `${PEAK_LABELS[k] ?? k} ${fmtMiB(v)}`)
        .join(', ')}${memDetail(mem.process)}`,
      target: TARGET_TEXT['6']!,
      result: 'info',
      values: { max: peak / MiB, unit: 'MiB' },
    });
  } else rows.push(errorRow('6', 'memory', errors['intake']));

  const rest = scenarios.atRest;
  if (rest) {
    figures['restRssMiB'] = rest.withoutKube.atRestMiB;
    figures['restKubeRssMiB'] = rest.withKube.atRestMiB;
    const one = (r: typeof rest.withoutKube) =>
      `${r.atRestMiB.toFixed(0)} MiB at rest (${r.afterStartMiB.toFixed(0)} MiB 2 s after start, at most ${r.maxMiB.toFixed(0)} MiB)`;
    rows.push({
      id: '6r',
      scenario: `memory at rest: RSS of an idle ROLE=all process after ${rest.seconds} s, without / with a kubeconfig`,
      rate: '—',
      p50: '—',
      p99: '—',
      max: `${rest.withoutKube.atRestMiB.toFixed(0)} / ${rest.withKube.atRestMiB.toFixed(0)} MiB`,
      detail: `without Kubernetes: ${one(rest.withoutKube)}; with a kubeconfig: ${one(rest.withKube)}`,
      target: TARGET_TEXT['6r']!,
      result: 'info',
      values: { max: Math.max(rest.withoutKube.atRestMiB, rest.withKube.atRestMiB), unit: 'MiB' },
    });
  } else rows.push(errorRow('6r', 'memory at rest', errors['atRest']));

  for (const [id, ch, key, step] of [
    ['7', scenarios.chainAll, 'chainAll', 'chains'],
    ['7b', scenarios.chainSplit, 'chainSplit', 'chainsSplit'],
  ] as const) {
    if (!ch) {
      rows.push(errorRow(id, `chains (${id === '7' ? 'ROLE=all' : 'api + worker'})`, errors[step]));
      continue;
    }
    figures[`${key}P99Ms`] = ch.chainMs.p99;
    figures[`${key}P50Ms`] = ch.chainMs.p50;
    figures[`${key}Missing`] = ch.missing;
    const others = Object.entries(ch.otherStatuses);
    rows.push({
      id,
      scenario: `chains: ${CHAIN_ALERTS} alerts at ${CHAIN_RATE}/s, each a bench.noop and a dependent (after, when: succeeded), ${ch.role}`,
      rate: '—',
      ...lat(ch.chainMs),
      detail: `predecessor's success stored → dependent's bench.noop start; ${ch.completed}/${CHAIN_ALERTS} chains completed${others.length ? ` (${others.map(([k, n]) => `${n} ${k}`).join(', ')})` : ''}; webhook 200 → predecessor start p50 ${fmtMs(ch.firstMs.p50)} / p99 ${fmtMs(ch.firstMs.p99)} ms; webhook itself p50 ${fmtMs(ch.webhookMs.p50)} / p99 ${fmtMs(ch.webhookMs.p99)} ms; other CPU ${(ch.cpu['other'] ?? 0).toFixed(2)} cores`,
      target: TARGET_TEXT[id]!,
      result: 'info',
      values: { ...ch.chainMs },
    });
  }

  const verdicts = judge(figures);
  for (const row of rows) {
    const v = verdicts.find((x) => x.id === row.id);
    if (v && row.result !== 'error') row.result = v.met === undefined ? 'error' : v.met ? 'PASS' : 'FAIL';
  }
  return { rows, verdicts, figures };
}

const TARGET_TEXT: Record<string, string> = {
  '2': `≥ ${TARGETS.intakeRatio}× baseline, p99 < ${TARGETS.intakeP99Ms} ms`,
  '3': `each message < ${TARGETS.stormMaxMs} ms`,
  '3b': `< ${fmtInt(TARGETS.bigMessageMs)} ms`,
  '4': `≥ ${TARGETS.duplicateFactor}× scenario 2, 0 runs created`,
  '5a': `p99 < ${TARGETS.execP99Ms} ms`,
  '5b': `p99 < ${TARGETS.execP99Ms} ms`,
  '6': `< ${TARGETS.rssMiB} MiB`,
  '6r': `< ${TARGETS.restRssMiB} MiB each`,
  '7': `p99 < ${TARGETS.chainP99Ms} ms`,
  '7b': `p99 < ${TARGETS.chainP99Ms} ms`,
};

/** The verdicts, from the figures alone (one repetition's, or the median of all of them). */
export function judge(f: Record<string, number>): Verdict[] {
  const verdicts: Verdict[] = [];
  const has = (...keys: string[]) => keys.every((k) => f[k] !== undefined && !Number.isNaN(f[k]));
  const push = (id: string, met: boolean | undefined, note: string) => verdicts.push({ id, target: TARGET_TEXT[id] ?? '', met, note });

  if (has('intakeRatio', 'intakeP99Ms', 'intakeFailures')) {
    const ratio = f['intakeRatio']!;
    const rate = f['intakeAlertsPerSec']!;
    const p99 = f['intakeP99Ms']!;
    const okRatio = ratio >= TARGETS.intakeRatio;
    const okP99 = p99 < TARGETS.intakeP99Ms;
    const clean = f['intakeFailures'] === 0;
    const need = TARGETS.intakeRatio * (rate / ratio);
    push(
      '2',
      okRatio && okP99 && clean,
      [
        okRatio
          ? `throughput met: ${fmtX(ratio)} of the baseline`
          : `throughput gap: ${fmtX(ratio)} of the baseline; needs ${fmtInt(need)} alerts/s, ${fmtX(need / rate)} the measured ${fmtInt(rate)}`,
        okP99 ? `p99 met: ${fmtMs(p99)} ms` : `p99 gap: ${fmtMs(p99)} ms against ${TARGETS.intakeP99Ms} ms`,
        ...(clean ? [] : [`${f['intakeFailures']} non-2xx answers or errors under load`]),
      ].join('; '),
    );
  } else if (has('intakeP99Ms', 'intakeFailures'))
    push('2', undefined, `throughput not judged: no baseline (scenario 1) in this run; p99 ${fmtMs(f['intakeP99Ms'])} ms`);
  else push('2', undefined, 'not measured: the scenario failed (see errors)');

  if (has('stormMaxMs', 'stormIncomplete')) {
    const max = f['stormMaxMs']!;
    const complete = f['stormIncomplete'] === 0;
    const met = complete && max < TARGETS.stormMaxMs;
    push(
      '3',
      met,
      `slowest message ${fmtMs(max)} ms, median message ${fmtMs(f['stormP50Ms'])} ms against ${TARGETS.stormMaxMs} ms (${fmtX(max / TARGETS.stormMaxMs)} the target)${complete ? '' : `; ${f['stormIncomplete']} messages not answered 200 with every run`}`,
    );
  } else push('3', undefined, 'not measured: the scenario failed (see errors)');

  if (has('bigMessageMs', 'bigMessageIncomplete')) {
    const ms = f['bigMessageMs']!;
    const complete = f['bigMessageIncomplete'] === 0;
    push(
      '3b',
      complete && ms < TARGETS.bigMessageMs,
      `the ${fmtInt(BIG_MESSAGE_ALERTS)}-alert message took ${fmtMs(ms)} ms against ${fmtInt(TARGETS.bigMessageMs)} ms (${fmtX(ms / TARGETS.bigMessageMs)} the target)${complete ? '' : '; not answered 200 with every run'}`,
    );
  } else push('3b', undefined, 'not measured: the scenario failed (see errors)');

  if (has('duplicateFactor', 'duplicateRunsCreated', 'duplicateFailures')) {
    const factor = f['duplicateFactor']!;
    const created = f['duplicateRunsCreated']!;
    const met = factor >= TARGETS.duplicateFactor && created === 0 && f['duplicateFailures'] === 0;
    push(
      '4',
      met,
      [
        factor >= TARGETS.duplicateFactor
          ? `throughput met: ${fmtX(factor)} scenario 2`
          : `throughput gap: ${fmtX(factor)} scenario 2 (${fmtInt(f['duplicateAlertsPerSec']!)} alerts/s)`,
        created === 0 ? 'dedup met: 0 runs created' : `dedup FAILED: ${created} runs created by re-deliveries`,
        ...(f['duplicateFailures'] === 0 ? [] : [`${f['duplicateFailures']} non-2xx answers or errors`]),
      ].join('; '),
    );
  } else push('4', undefined, 'not measured: the scenario failed (see errors)');

  /** A latency target on p99 with a count of samples that never completed (5a/5b, 7/7b). */
  const latencyVerdict = (
    id: string,
    key: string,
    targetMs: number,
    met: (p99: string, p50: string) => string,
    missed: (p99: string) => string,
    incomplete: string,
  ) => {
    if (!has(`${key}P99Ms`, `${key}Missing`)) {
      push(id, undefined, 'not measured: the scenario failed (see errors)');
      return;
    }
    const p99 = f[`${key}P99Ms`]!;
    const missing = f[`${key}Missing`]!;
    const ok = p99 < targetMs && missing === 0;
    push(id, ok, ok ? met(fmtMs(p99), fmtMs(f[`${key}P50Ms`])) : missed(fmtMs(p99)) + (missing ? `; ${missing} ${incomplete}` : ''));
  };
  for (const [id, key] of [
    ['5a', 'execAll'],
    ['5b', 'execSplit'],
  ] as const) {
    latencyVerdict(
      id,
      key,
      TARGETS.execP99Ms,
      (p99, p50) => `p99 ${p99} ms (p50 ${p50} ms)`,
      (p99) => `p99 ${p99} ms against ${TARGETS.execP99Ms} ms`,
      'alerts never started',
    );
  }

  if (has('peakRssMiB')) {
    const peak = f['peakRssMiB']!;
    const met = peak < TARGETS.rssMiB;
    push('6', met, met ? `peak ${peak.toFixed(0)} MiB` : `peak ${peak.toFixed(0)} MiB, ${(peak - TARGETS.rssMiB).toFixed(0)} MiB over`);
  } else push('6', undefined, 'not measured: the scenario failed (see errors)');

  if (has('restRssMiB', 'restKubeRssMiB')) {
    const plain = f['restRssMiB']!;
    const kube = f['restKubeRssMiB']!;
    const met = plain < TARGETS.restRssMiB && kube < TARGETS.restRssMiB;
    push(
      '6r',
      met,
      `at rest ${plain.toFixed(0)} MiB without Kubernetes, ${kube.toFixed(0)} MiB with a kubeconfig, against ${TARGETS.restRssMiB} MiB`,
    );
  } else push('6r', undefined, 'not measured: the scenario failed (see errors)');

  for (const [id, key] of [
    ['7', 'chainAll'],
    ['7b', 'chainSplit'],
  ] as const) {
    const what = (p99: string, p50?: string) =>
      `dependent started p99 ${p99} ms${p50 ? ` (p50 ${p50} ms)` : ''} after its predecessor's success was stored`;
    latencyVerdict(id, key, TARGETS.chainP99Ms, what, (p99) => `${what(p99)}, against ${TARGETS.chainP99Ms} ms`, 'chains did not complete');
  }

  return verdicts.sort((a, b) => a.id.localeCompare(b.id));
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** The headline figures each median row lists per repetition. */
const HEADLINES: Record<string, Array<[string, string, (n: number) => string]>> = {
  '1': [['req/s', 'baselineRps', fmtInt]],
  '2': [
    ['× baseline', 'intakeRatio', (n) => n.toFixed(3)],
    ['p99 ms', 'intakeP99Ms', fmtMs],
  ],
  '2b': [
    ['× baseline', 'intakeAllRatio', (n) => n.toFixed(3)],
    ['p99 ms', 'intakeAllP99Ms', fmtMs],
  ],
  '3': [['slowest message ms', 'stormMaxMs', fmtMs]],
  '3b': [['message ms', 'bigMessageMs', fmtMs]],
  '4': [
    ['× scenario 2', 'duplicateFactor', (n) => n.toFixed(2)],
    ['runs created', 'duplicateRunsCreated', fmtInt],
  ],
  '5a': [['p99 ms', 'execAllP99Ms', fmtMs]],
  '5b': [['p99 ms', 'execSplitP99Ms', fmtMs]],
  '6': [['peak MiB', 'peakRssMiB', (n) => n.toFixed(0)]],
  '6r': [
    ['at rest MiB', 'restRssMiB', (n) => n.toFixed(0)],
    ['with a kubeconfig', 'restKubeRssMiB', (n) => n.toFixed(0)],
  ],
  '7': [
    ['p99 ms', 'chainAllP99Ms', fmtMs],
    ['chains missing', 'chainAllMissing', fmtInt],
  ],
  '7b': [
    ['p99 ms', 'chainSplitP99Ms', fmtMs],
    ['chains missing', 'chainSplitMissing', fmtInt],
  ],
};

/**
 * The median of the repetitions: every figure is the median of its repetitions' values (a ratio is
 * taken within each repetition first: scenario 2 against that repetition's baseline, 4 against that
 * repetition's 2), except the failure counts, which take their worst value. The verdicts are judged on
 * those medians. A row's rate, p50, p99 and max are each the median of that column.
 */
export function medianTable(tables: readonly Table[]): Table {
  const keys = [...new Set(tables.flatMap((t) => Object.keys(t.figures)))];
  const figures: Record<string, number> = {};
  for (const k of keys) {
    const vals = tables.map((t) => t.figures[k]).filter((v): v is number => v !== undefined);
    figures[k] = WORST_OF.has(k) ? Math.max(...vals) : median(vals);
  }
  const verdicts = judge(figures);
  const ids = [...new Set(tables.flatMap((t) => t.rows.map((r) => r.id)))];
  const rows = ids.map((id): Row => {
    const mine = tables.map((t) => t.rows.find((r) => r.id === id));
    const measured = mine.filter((r): r is Row => r !== undefined && r.result !== 'error');
    const first = measured[0] ?? mine.find((r) => r !== undefined)!;
    if (measured.length === 0) return first;
    const col = (k: 'rate' | 'p50' | 'p99' | 'max') => median(measured.map((r) => r.values?.[k] ?? NaN));
    const unit = first.values?.unit;
    const rateV = col('rate');
    const perRep = (HEADLINES[id] ?? [])
      .map(([label, key, fmt]) => `${label} ${tables.map((t) => (t.figures[key] === undefined ? '—' : fmt(t.figures[key]))).join(' / ')}`)
      .join('; ');
    const v = verdicts.find((x) => x.id === id);
    const missingReps = tables.length - measured.length;
    return {
      id,
      scenario: first.scenario,
      rate: Number.isFinite(rateV) && unit !== 'MiB' ? `${fmtInt(rateV)} ${unit ?? ''}`.trim() : '—',
      p50: fmtMs(col('p50')),
      p99: fmtMs(col('p99')),
      max:
        id === '6r'
          ? `${(figures['restRssMiB'] ?? NaN).toFixed(0)} / ${(figures['restKubeRssMiB'] ?? NaN).toFixed(0)} MiB`
          : unit === 'MiB'
            ? `${col('max').toFixed(0)} MiB`
            : fmtMs(col('max')),
      detail: `median of ${measured.length}${missingReps ? ` (${missingReps} repetitions failed)` : ''}; repetitions ${tables.map((_, i) => i + 1).join(' / ')}: ${perRep}`,
      target: first.target,
      result: first.result === 'info' && !v ? 'info' : v?.met === undefined ? 'error' : v.met ? 'PASS' : 'FAIL',
    };
  });
  return { rows, verdicts, figures };
}

/** `; runs table: 120 sequential scans read 2,400,000 rows`, when there were any. */
function seqScans(t: TableStats): string {
  return t.seqScans > 0
    ? `; runs table: ${fmtInt(t.seqScans)} sequential scans read ${fmtInt(t.seqRowsRead)} rows (${fmtInt(t.indexScans)} index scans)`
    : '';
}

/** `per alert: 2.00 PostgreSQL statements, 2.00 Redis commands` (or per message, for messages of many alerts). */
function perAlert(sent: Counters, alerts: number, messages?: number): string {
  if (alerts <= 0) return '';
  const each = messages ? { n: messages, what: 'message' } : { n: alerts, what: 'alert' };
  const f = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(2));
  return `per ${each.what}: ${f(sent.pgQueries / each.n)} PostgreSQL statements, ${f(sent.redisCommands / each.n)} Redis commands`;
}

function memDetail(m: MemReport | undefined): string {
  if (!m) return '';
  const part = (u: NodeJS.MemoryUsage) =>
    `rss ${fmtMiB(u.rss)}, heap used ${fmtMiB(u.heapUsed)} of ${fmtMiB(u.heapTotal)}, external ${fmtMiB(u.external)}`;
  const anon = m.smaps?.['Anonymous'];
  const spaces = ['new_space', 'old_space', 'code_space', 'large_object_space']
    .map((k) => `${k} ${fmtMiB(m.heapSpaces[k] ?? 0)}`)
    .join(', ');
  return `; after 4: ${part(m.before)}${anon !== undefined ? ` (anonymous ${fmtMiB(anon)})` : ''}; V8 spaces ${spaces}${m.afterGc ? `; after a full GC: ${part(m.afterGc)}` : ''}`;
}

function errorRow(id: string, scenario: string, error: string | undefined): Row {
  return { id, scenario, rate: '—', p50: '—', p99: '—', max: '—', detail: `error: ${error ?? 'not run'}`, target: '', result: 'error' };
}
