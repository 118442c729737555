import { AlertmanagerUnavailable, type AlertCheck } from '../alertmanager/check.js';
import { retryFor } from '../kernel/retry.js';
import type { AlertFiring, Run } from '../schemas/runs.js';

/**
 * The re-check before acting: a firing-phase run asks Alertmanager (`ALERTMANAGER_URL`) whether its
 * alert episode still fires, after its queue wait and after an approval. An alert no longer active
 * cancels the run (`alert_resolved`), whether or not the resolved notice ever reached the webhook.
 * While no Alertmanager answers, the check is retried for `CHECK_TIMEOUT`; then the action's
 * `onCheckError` decides: `skip` (default, reason `check_unavailable`) or `proceed`. Every check
 * and its answer is an event of the run's timeline. `check: { alertFiring: false }` turns it off.
 */
export type FiringVerdict = { kind: 'unchecked' } | { kind: 'firing' } | { kind: 'resolved' } | { kind: 'unavailable'; proceed: boolean };

export interface FiringGateDeps {
  check: AlertCheck | undefined;
  timeoutMs: number;
  addEvent(runId: string, type: string, detail: Record<string, unknown>): Promise<void>;
  /** Aborts a check waiting to retry when the process shuts down: the job is retried elsewhere. */
  shutdown: AbortSignal;
}

const refOf = (run: Run) => ({ fingerprint: run.alert.fingerprint, startsAt: run.alert.startsAt, labels: run.alert.labels });
const errorsOf = (err: unknown): string[] =>
  err instanceof AlertmanagerUnavailable ? err.errors : [(err as Error).message ?? String(err)];

export function createFiringGate(deps: FiringGateDeps) {
  return async function confirmFiring(run: Run): Promise<FiringVerdict> {
    const check = deps.check;
    if (!check || run.phase !== 'firing' || run.gates.alertFiring === false) return { kind: 'unchecked' };
    const proceed = run.gates.onCheckError === 'proceed';
    const answer = await retryFor((signal) => check.isFiring(refOf(run), signal), {
      timeoutMs: deps.timeoutMs,
      shutdown: deps.shutdown,
      onFailure: (err, attempt, last, elapsedMs) =>
        deps.addEvent(run.id, 'alert_check_failed', {
          attempt,
          errors: errorsOf(err),
          ...(last ? { gaveUpAfterMs: elapsedMs, then: proceed ? 'proceed' : 'skip' } : {}),
        }),
    });
    if (!answer.ok) return { kind: 'unavailable', proceed };
    const { firing, state, source } = answer.value;
    await deps.addEvent(run.id, 'alert_checked', { firing, state, alertmanager: source, attempt: answer.attempts });
    return { kind: firing ? 'firing' : 'resolved' };
  };
}

export type ConfirmFiring = ReturnType<typeof createFiringGate>;

/** Whether a run's alert fires right now, for people: the run page and approval notices. Never throws. */
export async function currentFiring(check: AlertCheck, run: Run): Promise<AlertFiring> {
  const checkedAt = new Date().toISOString();
  try {
    const answer = await check.isFiring(refOf(run), AbortSignal.timeout(3000));
    return { firing: answer.firing, state: answer.state, alertmanager: answer.source, checkedAt };
  } catch (err) {
    return { firing: null, state: null, alertmanager: null, checkedAt, error: errorsOf(err).join('; ') };
  }
}

/** `currentFiring` as one line of an approval notice. */
export function firingLine(f: AlertFiring): string {
  if (f.firing === true) return `Alert still firing (${f.state ?? 'active'} in Alertmanager ${f.alertmanager}, ${f.checkedAt})`;
  if (f.firing === false) return `Alert no longer firing in Alertmanager ${f.alertmanager} (${f.checkedAt}): approving it cancels the run`;
  return `Alert state unknown: no Alertmanager answered (${f.error ?? 'no answer'})`;
}
