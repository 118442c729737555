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

  /** What an unverified end of `run` sets off; each calls out (and may fail). */
  const followUpsOf = (run: Run) => {
    const onUnverified = run.gates.onUnverified ?? 'escalate';
    return { silence: run.gates.silenceMs !== undefined, escalate: onUnverified === 'escalate', revert: onUnverified === 'revert' };
  };
  const anyOf = (todo: ReturnType<typeof followUpsOf>) => todo.silence || todo.escalate || todo.revert;

  async function settle(run: Run, result: 'verified' | 'unverified', detail: Record<string, unknown>): Promise<void> {
    // An unverified run stays claimed while its follow-ups run: one that fails is retried by a later sweep.
    const followUpInMs = result === 'unverified' && anyOf(followUpsOf(run)) ? claimMs : null;
    const settled = await deps.runs.settleVerification(run.id, result, { type: result, detail }, followUpInMs);
    if (!settled) return;
    deps.metrics.verifications.inc({ remediation: run.remediation, result });
    if (result === 'unverified') await followUp(settled, detail);
    await deps.chains.releaseQuietly([settled]);
  }

  /**
   * What an unverified end sets off: the alert's silence ended early, the escalation armed and
   * on-call told, the revert created. Each step is safe to repeat (arming sets the streak to at
   * least its limit, a second revert finds the first), so a sweep that finds the run still due
   * (one of them failed) runs them again; on-call may then hear of it twice, never not at all.
   */
  async function followUp(run: Run, detail: Record<string, unknown> | undefined): Promise<void> {
    const todo = followUpsOf(run);
    // Not proven to help: on-call is paged for the alert again. A verified run's silence runs out on its own.
    if (todo.silence) await deps.silences?.expire(run, 'unverified');
    if (todo.escalate) {
      await deps.streak.arm(run.remediation, run.target ?? run.remediation);
      await deps.runs.addEvent(run.id, 'escalation_armed', { reason: 'unverified' });
      const value = (detail?.['samples'] as Array<{ value: unknown }> | undefined)?.[0]?.value;
      const errors = detail?.['errors'] as string[] | undefined;
      deps.notifier.notify(run, 'unverified', [
        `Verification: ${run.gates.verify!.query}`,
        detail === undefined
          ? "Last answer: in the run's timeline"
          : `Last answer: ${errors ? `no answer (${errors.join('; ')})` : value === undefined ? 'no series matched' : String(value)}`,
      ]);
    }
    if (todo.revert) await deps.reverts.revert(run, 'unverified');
    if (anyOf(todo)) await deps.runs.followUpsDone(run.id);
  }

  /** Evaluates the pending verifications that are due; the sweeper calls it on every replica. */
  async function verifyDue(): Promise<number> {
    const due = await deps.runs.claimVerifications(claimMs, 100);
    for (const { run, expired } of due) {
      try {
        // Unverified already, its follow-ups not all done: only they are retried.
        if (run.verification === 'unverified') await followUp(run, undefined);
        else await evaluate(run, expired);
      } catch (err) {
        deps.log.warn(
          { runId: run.id, err: (err as Error).message },
          'verification not evaluated, or its follow-ups not all done; it is due again after its claim',
        );
      }
    }
    return due.length;
  }

  return { verifyDue };
}

export type Verifier = ReturnType<typeof createVerifier>;
