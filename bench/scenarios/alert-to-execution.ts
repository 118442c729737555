import { SERIES, summarize, type PacedResult } from '../common.js';
import { newGroup, poolOf, serviceEnv, waitForRuns, type Group } from '../groups.js';
import { sampled } from '../proc-measurements.js';
import { runLoad, startChild, type Child } from '../processes.js';
import { EXEC_ALERTS, EXEC_RATE, log, startsAt, tag } from '../settings.js';
import type { ExecResult } from './results.js';

const waitExecuted = (group: Group, fingerprints: string[], timeoutMs: number): Promise<number> =>
  waitForRuns(
    group,
    "fingerprint = ANY($1) AND status IN ('succeeded', 'failed', 'suppressed')",
    [fingerprints],
    fingerprints.length,
    timeoutMs,
  );

/** Scenario 5: webhook 200 to the remediation starting, at a steady rate. */
export async function scenarioExec(split: boolean): Promise<ExecResult> {
  const group = newGroup(split ? 'd' : 'c');
  const started: Child[] = [];
  try {
    const api = await startChild(split ? 'svc-api5' : 'svc-all5', 'service.ts', serviceEnv(group, split ? 'api' : 'all'));
    started.push(api);
    if (split) started.push(await startChild('svc-worker5', 'service.ts', serviceEnv(group, 'worker')));
    const role = split ? 'ROLE=api + ROLE=worker processes' : 'ROLE=all';
    log(`5${split ? 'b' : 'a'} alert to execution, ${role}: ${EXEC_ALERTS} alerts at ${EXEC_RATE}/s (+20 warm-up)`);
    const warm = await runLoad<PacedResult>({
      mode: 'paced',
      url: api.url,
      count: 20,
      ratePerSec: EXEC_RATE,
      tag,
      series: SERIES.execWarmup,
      startsAt,
    });
    await waitExecuted(
      group,
      warm.alerts.map((a) => a.fingerprint),
      15_000,
    );
    const s = await sampled(started, () =>
      runLoad<PacedResult>({ mode: 'paced', url: api.url, count: EXEC_ALERTS, ratePerSec: EXEC_RATE, tag, series: SERIES.exec, startsAt }),
    );
    const load = s.value;
    const fps = load.alerts.filter((a) => a.status === 200).map((a) => a.fingerprint);
    const executed = await waitExecuted(group, fps, 30_000);
    const { rows } = await poolOf(group).query<{ fingerprint: string; started: number | null }>(
      "SELECT fingerprint, (result->>'startedAt')::float8 AS started FROM runs WHERE fingerprint = ANY($1)",
      [fps],
    );
    const startedAt = new Map(rows.map((r) => [r.fingerprint, r.started]));
    const lat: number[] = [];
    for (const a of load.alerts) {
      const st = startedAt.get(a.fingerprint);
      if (a.status === 200 && typeof st === 'number') lat.push(st - a.okAt);
    }
    return {
      role,
      load,
      webhookMs: load.latencyMs,
      execMs: summarize(lat),
      executed,
      missing: EXEC_ALERTS - lat.length,
      peakRss: s.peakRss,
      cpu: s.cpu,
    };
  } finally {
    for (const c of started.reverse()) await c.stop();
  }
}
