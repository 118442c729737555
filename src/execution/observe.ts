import type { Metrics } from '../metrics.js';
import type { Notifier } from '../notify/notifier.js';
import type { Run } from '../schemas/runs.js';

/**
 * Records what a run's new status means for the metrics and for on-call: a run created, or a
 * dependent that left `waiting`. `context` adds lines to an approval notice (the predecessor's outcome).
 */
export function observeStatus(run: Run, metrics: Metrics, notifier: Notifier, context: readonly string[] = []): void {
  metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: run.status });
  if (run.status === 'suppressed') metrics.suppressed.inc({ remediation: run.remediation, reason: run.reason ?? 'unknown' });
  if (run.status === 'pending_approval') notifier.notify(run, run.reason === 'escalated' ? 'escalated' : 'pending_approval', context);
}
