import { decide } from '../gates/decide.js';
import { matchAlert } from '../matrix/match.js';
import type { WebhookMessage } from '../schemas/alertmanager.js';
import type { Services } from '../services.js';
import { createRunLookup } from '../store/runs.js';
import { toSnapshot } from './intake.js';

const OUTCOME: Record<string, string> = {
  queued: 'would_queue',
  pending_approval: 'would_wait_for_approval',
  suppressed: 'would_suppress',
  failed: 'would_fail',
};

/**
 * What the webhook would do with a message right now: the same matching and gate decisions, with
 * the budget only peeked at and nothing written. Existing runs with the same dedup key show as duplicates.
 */
export async function simulate(services: Services, message: WebhookMessage) {
  const lookup = createRunLookup(services.pool);
  const { paused } = await services.control.get();
  const gateContext = {
    budget: services.budget,
    paused,
    dryRun: services.config.dryRun,
    configured: services.targets.configured,
    now: () => new Date(),
  };
  const alerts = [];
  for (const alert of message.alerts) {
    const snapshot = toSnapshot(alert);
    const actions = matchAlert(services.matrix, snapshot);
    const decisions = await Promise.all(actions.map((a) => decide(a, snapshot, gateContext)));
    const existing = await lookup.byDedupKey(
      decisions.map((d) => ({ rule: d.rule, action: d.action, fingerprint: snapshot.fingerprint, startsAt: snapshot.startsAt })),
    );
    const wouldCancel = alert.status === 'resolved' ? await lookup.cancellable(snapshot.fingerprint, snapshot.startsAt) : [];
    alerts.push({
      fingerprint: snapshot.fingerprint,
      status: snapshot.status,
      labels: snapshot.labels,
      matched: actions.length > 0,
      wouldCancel: wouldCancel.map((r) => ({ id: r.id, status: r.status })),
      actions: decisions.map((d) => {
        const found = existing.find((r) => r.rule === d.rule && r.action === d.action);
        return {
          rule: d.rule,
          action: d.action,
          remediation: d.remediation,
          params: d.params,
          target: d.target,
          plan: d.plan,
          error: d.error,
          approvalRequired: d.approvalRequired,
          dryRun: d.dryRun,
          outcome: found ? 'duplicate' : (OUTCOME[d.status] ?? d.status),
          status: d.status,
          reason: d.reason,
          existingRun: found ? { id: found.id, status: found.status } : null,
        };
      }),
    });
  }
  return { paused, dryRun: services.config.dryRun, alerts };
}
