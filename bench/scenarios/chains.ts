import { CHAIN_ALERTNAME, SERIES, summarize, type PacedResult } from '../common.js';
import { TERMINAL_STATUSES } from '../../src/schemas/runs.js';
import { newGroup, poolOf, serviceEnv, waitForRuns, type Group } from '../groups.js';
import { sampled } from '../proc-measurements.js';
import { runLoad, startChild, type Child } from '../processes.js';
import { CHAIN_ALERTS, CHAIN_RATE, log, startsAt, tag } from '../settings.js';
import type { ChainResult } from './results.js';

/** The bench matrix's chain rule (bench/response-matrix.yaml). */
const RULE = 'bench-chain';
/** Waits until both runs of every chain (one alert each) are in a final status; returns how many runs are. */
const waitChains = (group: Group, fingerprints: string[], timeoutMs: number): Promise<number> =>
  waitForRuns(
    group,
    'rule = $1 AND fingerprint = ANY($2) AND status = ANY($3)',
    [RULE, fingerprints, TERMINAL_STATUSES],
    2 * fingerprints.length,
    timeoutMs,
  );

interface ChainRow {
  fingerprint: string;
  first_status: string;
  first_started: number | null;
  /** Epoch ms of the predecessor's `succeeded` event (run_events.at, PostgreSQL's clock_timestamp()). */
  first_succeeded: number | null;
  second_status: string | null;
  second_started: number | null;
}

/**
 * Scenario 7: outcome-aware chains. Every alert of the chain rule makes two bench.noop runs, the
 * second stored `waiting` until the first succeeded; per chain, the time from the predecessor's
 * success being stored to the dependent starting.
 */
export async function scenarioChains(split: boolean): Promise<ChainResult> {
  const group = newGroup(split ? 'f' : 'e');
  const started: Child[] = [];
  try {
    const api = await startChild(split ? 'svc-api7' : 'svc-all7', 'service.ts', serviceEnv(group, split ? 'api' : 'all'));
    started.push(api);
    if (split) started.push(await startChild('svc-worker7', 'service.ts', serviceEnv(group, 'worker')));
    const role = split ? 'ROLE=api + ROLE=worker processes' : 'ROLE=all';
    log(`7${split ? 'b' : ''} chains, ${role}: ${CHAIN_ALERTS} chain alerts at ${CHAIN_RATE}/s (+20 warm-up)`);
    const paced = (count: number, series: number) =>
      runLoad<PacedResult>({
        mode: 'paced',
        url: api.url,
        count,
        ratePerSec: CHAIN_RATE,
        tag,
        series,
        startsAt,
        alertname: CHAIN_ALERTNAME,
      });
    const warm = await paced(20, SERIES.chainWarmup);
    await waitChains(
      group,
      warm.alerts.map((a) => a.fingerprint),
      15_000,
    );
    const s = await sampled(started, () => paced(CHAIN_ALERTS, SERIES.chain));
    const load = s.value;
    const fps = load.alerts.filter((a) => a.status === 200).map((a) => a.fingerprint);
    await waitChains(group, fps, 30_000);
    const { rows } = await poolOf(group).query<ChainRow>(
      `SELECT f.fingerprint, f.status AS first_status, (f.result->>'startedAt')::float8 AS first_started,
              (SELECT (extract(epoch FROM e.at) * 1000)::float8 FROM run_events e
                WHERE e.run_id = f.id AND e.type = 'succeeded' ORDER BY e.id LIMIT 1) AS first_succeeded,
              d.status AS second_status, (d.result->>'startedAt')::float8 AS second_started
         FROM runs f
         LEFT JOIN runs d ON d.rule = f.rule AND d.fingerprint = f.fingerprint AND d.starts_at = f.starts_at AND d.after_action = f.action
        WHERE f.rule = $1 AND f.after_action IS NULL AND f.fingerprint = ANY($2)`,
      [RULE, fps],
    );
    const byFp = new Map(rows.map((r) => [r.fingerprint, r]));
    const chainLat: number[] = [];
    const firstLat: number[] = [];
    const otherStatuses: Record<string, number> = {};
    const count = (k: string) => void (otherStatuses[k] = (otherStatuses[k] ?? 0) + 1);
    for (const a of load.alerts) {
      const r = a.status === 200 ? byFp.get(a.fingerprint) : undefined;
      if (!r) continue;
      if (r.first_status !== 'succeeded') count(`first ${r.first_status}`);
      if (typeof r.first_started === 'number') firstLat.push(r.first_started - a.okAt);
      if (r.second_status !== 'succeeded') count(r.second_status ?? 'no dependent');
      if (r.first_status === 'succeeded' && r.second_status === 'succeeded' && r.first_succeeded !== null && r.second_started !== null)
        chainLat.push(r.second_started - r.first_succeeded);
    }
    return {
      role,
      load,
      webhookMs: load.latencyMs,
      chainMs: summarize(chainLat),
      firstMs: summarize(firstLat),
      completed: chainLat.length,
      missing: CHAIN_ALERTS - chainLat.length,
      otherStatuses,
      peakRss: s.peakRss,
      cpu: s.cpu,
    };
  } finally {
    for (const c of started.reverse()) await c.stop();
  }
}
