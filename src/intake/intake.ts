import type { Log, TargetKind } from '../../remediations/types.js';
import type { Budget } from '../gates/budget.js';
import { decide } from '../gates/decide.js';
import { matchAlert } from '../matrix/match.js';
import type { Matrix } from '../matrix/types.js';
import type { Metrics } from '../metrics.js';
import type { Notifier } from '../notify/notifier.js';
import type { RunQueue } from '../queue/queue.js';
import type { WebhookAlert, WebhookMessage } from '../schemas/alertmanager.js';
import type { ControlStore } from '../store/control.js';
import type { RunStore } from '../store/runs.js';
import type { AlertSnapshot, NewRun, Run } from '../store/types.js';

export interface IntakeDeps {
  matrix: Matrix;
  runs: RunStore;
  control: ControlStore;
  budget: Budget;
  queue: RunQueue;
  metrics: Metrics;
  notifier: Notifier;
  log: Log;
  dryRun: boolean;
  configured: ReadonlySet<TargetKind>;
  now: () => Date;
}

export interface IntakeResult {
  received: number;
  runs: Array<{ id: string; rule: string; remediation: string; status: string; duplicate: boolean }>;
}

export function toSnapshot(alert: WebhookAlert): AlertSnapshot {
  return {
    fingerprint: alert.fingerprint,
    status: alert.status,
    startsAt: alert.startsAt,
    endsAt: alert.endsAt,
    ...(alert.generatorURL !== undefined ? { generatorURL: alert.generatorURL } : {}),
    labels: alert.labels,
    annotations: alert.annotations,
  };
}

/** Records what a run's first status means for the metrics and for on-call. */
export function observeNewRun(run: Run, metrics: Metrics, notifier: Notifier): void {
  metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: run.status });
  if (run.status === 'suppressed') metrics.suppressed.inc({ remediation: run.remediation, reason: run.reason ?? 'unknown' });
  if (run.status === 'pending_approval') notifier.notify(run, run.reason === 'escalated' ? 'escalated' : 'pending_approval');
}

/**
 * The webhook's work: every alert is matched against the matrix, every matched action becomes a
 * run decided by the gates, all of them are stored in one statement and the queued ones enqueued.
 * It returns only when all of that is durable; any failure propagates so the caller answers 5xx
 * and Alertmanager retries. A re-delivery finds its runs by dedup key and enqueues the queued ones
 * again, which is how a run stored before a Redis failure still gets executed.
 */
export function createIntake(deps: IntakeDeps) {
  return async function receive(message: WebhookMessage): Promise<IntakeResult> {
    const { paused } = await deps.control.get();
    const gateContext = { budget: deps.budget, paused, dryRun: deps.dryRun, configured: deps.configured, now: deps.now };
    const newRuns: NewRun[] = [];
    const decisions: Array<Promise<NewRun>> = [];
    for (const alert of message.alerts) {
      const snapshot = toSnapshot(alert);
      const actions = matchAlert(deps.matrix, snapshot);
      deps.metrics.alertsReceived.inc({ status: alert.status });
      if (actions.length === 0) deps.metrics.alertsUnmatched.inc();
      if (alert.status === 'resolved') {
        for (const run of await deps.runs.resolveEpisode(snapshot.fingerprint, snapshot.startsAt)) {
          deps.metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: 'cancelled' });
          if (run.approval.required) deps.metrics.approvalWait.observe((Date.parse(run.updatedAt) - Date.parse(run.createdAt)) / 1000);
        }
      }
      decisions.push(...actions.map((action) => decide(action, snapshot, gateContext)));
    }
    newRuns.push(...(await Promise.all(decisions)));

    const stored = await deps.runs.insert(newRuns);
    await deps.queue.enqueue(stored.filter((s) => s.run.status === 'queued').map((s) => s.run.id));
    for (const s of stored) if (!s.duplicate) observeNewRun(s.run, deps.metrics, deps.notifier);
    return {
      received: message.alerts.length,
      runs: stored.map(({ run, duplicate }) => ({ id: run.id, rule: run.rule, remediation: run.remediation, status: run.status, duplicate })),
    };
  };
}

export type Intake = ReturnType<typeof createIntake>;
