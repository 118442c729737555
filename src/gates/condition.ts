import { retryFor } from '../kernel/retry.js';
import { PrometheusUnavailable, QueryFailed, type PrometheusClient, type QueryAnswer } from '../prometheus/client.js';
import type { Run } from '../schemas/runs.js';

/**
 * `check.query`: right before a run executes (after its queue wait and after an approval), Prometheus
 * (`PROMETHEUS_URL`) is asked whether the condition still holds. A non-empty result means the
 * remediation is still needed; an empty one ends the run `suppressed`, reason `condition_cleared`.
 * Prometheus unreachable or the query failing is retried for `CHECK_TIMEOUT`, then `onCheckError`
 * decides, as for the Alertmanager re-check. Each evaluation is in the timeline.
 */
export type ConditionVerdict = { kind: 'unchecked' } | { kind: 'needed' } | { kind: 'cleared' } | { kind: 'unavailable'; proceed: boolean };

export interface ConditionGateDeps {
  prometheus: PrometheusClient | undefined;
  timeoutMs: number;
  addEvent(runId: string, type: string, detail: Record<string, unknown>): Promise<void>;
  shutdown: AbortSignal;
  /** Counts each check's result: needed, cleared, unavailable. */
  observe(run: Run, result: 'needed' | 'cleared' | 'unavailable'): void;
}

/** A query's answer as the timeline keeps it: how many series, and the first few with their values. */
export function answerDetail(answer: QueryAnswer): Record<string, unknown> {
  return {
    series: answer.samples.length,
    samples: answer.samples
      .slice(0, 5)
      .map((s) => ({ labels: s.labels, value: Number.isFinite(s.value) ? s.value : String(s.value), at: s.at })),
  };
}

export function queryErrors(err: unknown): string[] {
  if (err instanceof PrometheusUnavailable) return err.errors;
  if (err instanceof QueryFailed) return [err.message];
  if ((err as Error)?.name === 'TimeoutError') return ['no answer within CHECK_TIMEOUT'];
  return [(err as Error)?.message ?? String(err)];
}

export function createConditionGate(deps: ConditionGateDeps) {
  return async function checkCondition(run: Run): Promise<ConditionVerdict> {
    const prometheus = deps.prometheus;
    const query = run.gates.checkQuery;
    if (!prometheus || query === undefined) return { kind: 'unchecked' };
    const proceed = run.gates.onCheckError === 'proceed';
    const answer = await retryFor((signal) => prometheus.query(query, signal), {
      timeoutMs: deps.timeoutMs,
      shutdown: deps.shutdown,
      onFailure: (err, attempt, last, elapsedMs) =>
        deps.addEvent(run.id, 'condition_check_failed', {
          query,
          attempt,
          errors: queryErrors(err),
          ...(last ? { gaveUpAfterMs: elapsedMs, then: proceed ? 'proceed' : 'skip' } : {}),
        }),
    });
    if (!answer.ok) {
      deps.observe(run, 'unavailable');
      return { kind: 'unavailable', proceed };
    }
    const needed = answer.value.samples.length > 0;
    await deps.addEvent(run.id, 'condition_checked', {
      query,
      result: needed ? 'needed' : 'cleared',
      ...answerDetail(answer.value),
    });
    deps.observe(run, needed ? 'needed' : 'cleared');
    return { kind: needed ? 'needed' : 'cleared' };
  };
}

export type CheckCondition = ReturnType<typeof createConditionGate>;
