import type { RunSilences } from '../alertmanager/silences.js';
import type { createFailureStreak } from '../gates/escalation.js';
import { answerDetail, queryErrors } from '../gates/condition.js';
import type { Log } from '../kernel/log.js';
import type { Metrics } from '../metrics.js';
import type { Notifier } from '../notify/notifier.js';
import type { PrometheusClient, QueryAnswer } from '../prometheus/client.js';
import type { Run } from '../schemas/runs.js';
import type { RunStore } from '../store/runs.js';
import type { Chains } from './chains.js';
import type { Reverts } from './reverts.js';

export interface VerifierDeps {
  runs: RunStore;
  prometheus: PrometheusClient | undefined;
  chains: Pick<Chains, 'releaseQuietly'>;
  streak: Pick<ReturnType<typeof createFailureStreak>, 'arm'>;
  reverts: Pick<Reverts, 'revert'>;
  metrics: Metrics;
  notifier: Notifier;
  log: Log;
  /** Alertmanager silences of runs whose action has `silence`: an unverified run's is expired early. */
  silences?: Pick<RunSilences, 'expire'>;
  /** How long one replica holds a verification it is evaluating before another may take it. */
  claimMs?: number;
}

/**
 * `verify`: after a remediation succeeded, proof that it helped. The run's verification is `pending`
 * in PostgreSQL with its next evaluation time (`verify_due`) and deadline (`verify_until`); every
 * sweep of every replica claims what is due (SKIP LOCKED) and asks Prometheus. A non-empty result
 * ends it `verified`; an empty one, no data or no answer waits for the next evaluation, and at the
 * deadline ends it `unverified`. Each end is one conditional UPDATE, so it happens once, and it
 * survives restarts and lost replicas. Unverified with `onUnverified: escalate` notifies on-call and
 * makes the remediation's next runs on that target need approval; with `revert`, a revert run undoes it. Either end moves on the runs
 * waiting for it (`when: verified | unverified`).
 */
export function createVerifier(deps: VerifierDeps) {
  const claimMs = deps.claimMs ?? 30_000;

  async function evaluate(run: Run, expired: boolean): Promise<void> {
    const verify = run.gates.verify!;
    let answer: QueryAnswer | undefined;
    let errors: string[] | undefined;
    if (deps.prometheus) {
      try {
        answer = await deps.prometheus.query(verify.query, AbortSignal.timeout(10_000));
      } catch (err) {
        errors = queryErrors(err);
      }
    } else errors = ['PROMETHEUS_URL is not set'];
    const detail = { query: verify.query, ...(answer ? answerDetail(answer) : { errors }) };
    if (answer && answer.samples.length > 0) return settle(run, 'verified', detail);
    if (expired) return settle(run, 'unverified', { ...detail, withinMs: verify.withinMs });
    await deps.runs.nextVerification(run.id, verify.everyMs, {
      type: errors ? 'verification_check_failed' : 'verification_checked',
      detail,
    });
  }

  async function settle(run: Run, result: 'verified' | 'unverified', detail: Record<string, unknown>): Promise<void> {
    const settled = await deps.runs.settleVerification(run.id, result, { type: result, detail });
    if (!settled) return;
    deps.metrics.verifications.inc({ remediation: run.remediation, result });
    // Not proven to help: on-call is paged for the alert again. A verified run's silence runs out on its own.
    if (result === 'unverified' && settled.gates.silenceMs !== undefined) await deps.silences?.expire(settled, 'unverified');
    if (result === 'unverified' && (run.gates.onUnverified ?? 'escalate') === 'escalate') {
      await deps.streak.arm(run.remediation, run.target ?? run.remediation);
      await deps.runs.addEvent(run.id, 'escalation_armed', { reason: 'unverified' });
      const value = (detail['samples'] as Array<{ value: unknown }> | undefined)?.[0]?.value;
      deps.notifier.notify(settled, 'unverified', [
        `Verification: ${run.gates.verify!.query}`,
        `Last answer: ${detail['errors'] ? `no answer (${(detail['errors'] as string[]).join('; ')})` : value === undefined ? 'no series matched' : String(value)}`,
      ]);
    }
    if (result === 'unverified' && run.gates.onUnverified === 'revert') await deps.reverts.revert(settled, 'unverified');
    await deps.chains.releaseQuietly([settled]);
  }

  /** Evaluates the pending verifications that are due; the sweeper calls it on every replica. */
  async function verifyDue(): Promise<number> {
    const due = await deps.runs.claimVerifications(claimMs, 100);
    for (const { run, expired } of due) {
      try {
        await evaluate(run, expired);
      } catch (err) {
        deps.log.warn({ runId: run.id, err: (err as Error).message }, 'verification not evaluated; it is due again after its claim');
      }
    }
    return due.length;
  }

  return { verifyDue };
}

export type Verifier = ReturnType<typeof createVerifier>;
