/** The results table: a row per scenario with its target, the verdicts, and the headline figures. */
import os from 'node:os';
import type { CannonResult } from './common.js';
import type { TableStats } from './groups.js';
import type { Counters } from './round-trips.js';
import type { MemReport, Scenarios } from './scenarios/results.js';
import { CONNECTIONS, DUPLICATES, DURATION, EXEC_ALERTS, EXEC_RATE, MiB, STORM_ALERTS, STORM_MESSAGES, TARGETS } from './settings.js';

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
}

export interface Verdict {
  id: string;
  target: string;
  met: boolean | undefined;
  note: string;
}

export function resultsTable(
  scenarios: Scenarios,
  errors: Record<string, string>,
): { rows: Row[]; verdicts: Verdict[]; figures: Record<string, number> } {
  const rows: Row[] = [];
  const verdicts: Verdict[] = [];
  const figures: Record<string, number> = {};
  const rate = (r: CannonResult, alertsPerMessage = 1) => (r.ok * alertsPerMessage) / r.durationSec;
  const failures = (r: CannonResult) =>
    r.non2xx + r.errors > 0 ? `; ${r.non2xx} non-2xx ${JSON.stringify(r.statusCodes)}, ${r.errors} errors` : '';

  const b = scenarios.baseline;
  const baseRps = b ? rate(b.load) : NaN;
  if (b) {
    figures['baselineRps'] = baseRps;
    rows.push({
      id: '1',
      scenario: `baseline: bare Fastify 5 route, same body + schema, c=${CONNECTIONS}, ${DURATION} s`,
      rate: `${fmtInt(baseRps)} req/s`,
      p50: fmtMs(b.load.latencyMs.p50),
      p99: fmtMs(b.load.latencyMs.p99),
      max: fmtMs(b.load.latencyMs.max),
      detail: `${fmtInt(b.load.ok)} requests${failures(b.load)}; ${cpuOf(b.sampled, 'baseline')}`,
      target: 'ceiling',
      result: 'info',
    });
  } else rows.push(errorRow('1', 'baseline', errors['baseline']));

  const s2 = scenarios.intake;
  const s2Rate = s2 ? rate(s2.load) : NaN;
  if (s2) {
    const ratio = s2Rate / baseRps;
    const okRatio = ratio >= TARGETS.intakeRatio;
    const okP99 = s2.load.latencyMs.p99 < TARGETS.intakeP99Ms;
    const clean = s2.load.non2xx + s2.load.errors === 0;
    figures['intakeAlertsPerSec'] = s2Rate;
    figures['intakeRatio'] = ratio;
    figures['intakeP99Ms'] = s2.load.latencyMs.p99;
    rows.push({
      id: '2',
      scenario: `intake: unique single-alert messages, auto bench.noop, ROLE=api, c=${CONNECTIONS}, ${DURATION} s`,
      rate: `${fmtInt(s2Rate)} alerts/s`,
      p50: fmtMs(s2.load.latencyMs.p50),
      p99: fmtMs(s2.load.latencyMs.p99),
      max: fmtMs(s2.load.latencyMs.max),
      detail: `${fmtX(ratio)} baseline; ${fmtInt(s2.runsStored)} runs stored${failures(s2.load)}; ${perAlert(s2.sent, s2.alertsSent)}${seqScans(s2.scans)}; ${cpuOf(s2.sampled, 'svc-api')}`,
      target: `≥ ${TARGETS.intakeRatio}× baseline, p99 < ${TARGETS.intakeP99Ms} ms`,
      result: okRatio && okP99 && clean ? 'PASS' : 'FAIL',
    });
    const need = TARGETS.intakeRatio * baseRps;
    verdicts.push({
      id: '2',
      target: rows.at(-1)!.target,
      met: okRatio && okP99 && clean,
      note: [
        okRatio
          ? `throughput met: ${fmtX(ratio)} of the baseline's ${fmtInt(baseRps)} req/s`
          : `throughput gap: ${fmtX(ratio)} of the baseline; needs ${fmtInt(need)} alerts/s, ${fmtX(need / s2Rate)} the measured ${fmtInt(s2Rate)}`,
        okP99
          ? `p99 met: ${fmtMs(s2.load.latencyMs.p99)} ms`
          : `p99 gap: ${fmtMs(s2.load.latencyMs.p99)} ms against ${TARGETS.intakeP99Ms} ms`,
        ...(clean ? [] : [`${s2.load.non2xx} non-2xx answers and ${s2.load.errors} errors under load`]),
      ].join('; '),
    });
  } else rows.push(errorRow('2', 'intake, ROLE=api', errors['intake']));

  const s2b = scenarios.intakeAll;
  if (s2b) {
    const r = rate(s2b.load);
    figures['intakeAllAlertsPerSec'] = r;
    rows.push({
      id: '2b',
      scenario: `intake as 2, worker in the same process (ROLE=all)`,
      rate: `${fmtInt(r)} alerts/s`,
      p50: fmtMs(s2b.load.latencyMs.p50),
      p99: fmtMs(s2b.load.latencyMs.p99),
      max: fmtMs(s2b.load.latencyMs.max),
      detail: `${fmtX(r / baseRps)} baseline; ${fmtInt(s2b.executedDuring)} runs executed meanwhile${failures(s2b.load)}; ${cpuOf(s2b.sampled, 'svc-all')}`,
      target: `info (2's target: ${fmtX(r / baseRps)}, p99 ${fmtMs(s2b.load.latencyMs.p99)} ms)`,
      result: 'info',
    });
  } else rows.push(errorRow('2b', 'intake, ROLE=all', errors['intakeAll']));

  const s3 = scenarios.storm;
  if (s3) {
    const m = s3.load.messages;
    const okAll = m.every((x) => x.status === 200 && x.received === STORM_ALERTS && x.runs === STORM_ALERTS);
    const max = s3.load.latencyMs.max;
    const alerts = m.filter((x) => x.status === 200).length * STORM_ALERTS;
    const busy = m.reduce((acc, x) => acc + x.ms, 0) / 1000;
    const met = okAll && max < TARGETS.stormMaxMs;
    figures['stormMaxMs'] = max;
    figures['stormAlertsPerSec'] = alerts / busy;
    rows.push({
      id: '3',
      scenario: `storm: ${STORM_MESSAGES} sequential messages × ${fmtInt(STORM_ALERTS)} unique alerts, ROLE=api`,
      rate: `${fmtInt(alerts / busy)} alerts/s`,
      p50: fmtMs(s3.load.latencyMs.p50),
      p99: fmtMs(s3.load.latencyMs.p99),
      max: fmtMs(max),
      detail: `per message; ${m.filter((x) => x.status === 200).length}/${m.length} answered 200, ${fmtInt(s3.runsStored)} runs stored; ${perAlert(s3.sent, s3.alertsSent, m.length)}${seqScans(s3.scans)}; ${cpuOf(s3.sampled, 'svc-api')}`,
      target: `each message < ${TARGETS.stormMaxMs} ms`,
      result: met ? 'PASS' : 'FAIL',
    });
    verdicts.push({
      id: '3',
      target: rows.at(-1)!.target,
      met,
      note: met
        ? `slowest of ${m.length} messages ${fmtMs(max)} ms`
        : `slowest message ${fmtMs(max)} ms, median ${fmtMs(s3.load.latencyMs.p50)} ms against ${TARGETS.stormMaxMs} ms (${fmtX(max / TARGETS.stormMaxMs)} the target)${okAll ? '' : `; not every message answered 200 with ${STORM_ALERTS} runs: ${JSON.stringify(m.filter((x) => x.status !== 200 || x.runs !== STORM_ALERTS).slice(0, 3))}`}`,
    });
  } else rows.push(errorRow('3', 'storm', errors['intake']));

  const s4 = scenarios.duplicates;
  if (s4) {
    const r = rate(s4.load);
    const created = s4.runsAfter - s4.runsBefore;
    const factor = r / s2Rate;
    const met = factor >= TARGETS.duplicateFactor && created === 0 && s4.load.non2xx + s4.load.errors === 0;
    figures['duplicateAlertsPerSec'] = r;
    figures['duplicateFactor'] = factor;
    figures['duplicateRunsCreated'] = created;
    rows.push({
      id: '4',
      scenario: `duplicate flood: ${fmtInt(DUPLICATES)} re-deliveries of ${fmtInt(s4.knownAlerts)} known alerts, c=${CONNECTIONS}`,
      rate: `${fmtInt(r)} alerts/s`,
      p50: fmtMs(s4.load.latencyMs.p50),
      p99: fmtMs(s4.load.latencyMs.p99),
      max: fmtMs(s4.load.latencyMs.max),
      detail: `${fmtX(factor)} scenario 2; ${created} runs created${failures(s4.load)}; ${perAlert(s4.sent, s4.alertsSent)}${seqScans(s4.scans)}; ${cpuOf(s4.sampled, 'svc-api')}`,
      target: `≥ ${TARGETS.duplicateFactor}× scenario 2, 0 runs created`,
      result: met ? 'PASS' : 'FAIL',
    });
    verdicts.push({
      id: '4',
      target: rows.at(-1)!.target,
      met,
      note: [
        factor >= TARGETS.duplicateFactor
          ? `throughput met: ${fmtX(factor)} scenario 2`
          : `throughput gap: ${fmtX(factor)} scenario 2 (${fmtInt(r)} against the ${fmtInt(TARGETS.duplicateFactor * s2Rate)} alerts/s needed)`,
        created === 0 ? 'dedup met: 0 runs created' : `dedup FAILED: ${created} runs created by re-deliveries`,
      ].join('; '),
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
    const met = ex.execMs.p99 < TARGETS.execP99Ms && ex.missing === 0;
    figures[`${key}P99Ms`] = ex.execMs.p99;
    rows.push({
      id,
      scenario: `alert → execution: ${EXEC_ALERTS} alerts at ${EXEC_RATE}/s, ${ex.role}`,
      rate: '—',
      p50: fmtMs(ex.execMs.p50),
      p99: fmtMs(ex.execMs.p99),
      max: fmtMs(ex.execMs.max),
      detail: `webhook 200 → bench.noop start; webhook itself p50 ${fmtMs(ex.webhookMs.p50)} / p99 ${fmtMs(ex.webhookMs.p99)} ms; ${ex.executed}/${EXEC_ALERTS} executed; other CPU ${(ex.cpu['other'] ?? 0).toFixed(2)} cores`,
      target: `p99 < ${TARGETS.execP99Ms} ms`,
      result: met ? 'PASS' : 'FAIL',
    });
    verdicts.push({
      id,
      target: `${ex.role}: p99 < ${TARGETS.execP99Ms} ms`,
      met,
      note: met
        ? `p99 ${fmtMs(ex.execMs.p99)} ms (p50 ${fmtMs(ex.execMs.p50)} ms)`
        : `p99 ${fmtMs(ex.execMs.p99)} ms against ${TARGETS.execP99Ms} ms${ex.missing ? `; ${ex.missing} alerts never started` : ''}`,
    });
  }

  const mem = scenarios.memory;
  if (mem) {
    const peak = Math.max(mem.vmHwm, mem.peakSampled);
    const met = peak < TARGETS.rssMiB * MiB;
    figures['peakRssMiB'] = peak / MiB;
    rows.push({
      id: '6',
      scenario: 'memory: peak RSS of the ROLE=api service process over scenarios 2-4',
      rate: '—',
      p50: '—',
      p99: '—',
      max: '—',
      detail: `${fmtMiB(peak)} (VmHWM); sampled peaks: ${Object.entries(mem.perScenario)
        .map(([k, v]) => `${k} ${fmtMiB(v)}`)
        .join(', ')}${memDetail(mem.process)}`,
      target: `< ${TARGETS.rssMiB} MiB`,
      result: met ? 'PASS' : 'FAIL',
    });
    verdicts.push({
      id: '6',
      target: rows.at(-1)!.target,
      met,
      note: met ? `peak ${fmtMiB(peak)}` : `peak ${fmtMiB(peak)}, ${fmtMiB(peak - TARGETS.rssMiB * MiB)} over`,
    });
  } else rows.push(errorRow('6', 'memory', errors['intake']));

  for (const v of ['2', '3', '4', '5a', '5b', '6']) {
    if (!verdicts.some((x) => x.id === v))
      verdicts.push({ id: v, target: '', met: undefined, note: 'not measured: the scenario failed (see errors)' });
  }
  verdicts.sort((a, b) => a.id.localeCompare(b.id));
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
