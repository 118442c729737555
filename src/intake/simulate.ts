import { decideAll } from '../gates/at-intake.js';
import { dedupId, dedupKey } from '../gates/dedup.js';
import { matchAlert } from '../matrix/match.js';
import type { WebhookMessage } from '../schemas/alertmanager.js';
import type { Services } from '../services.js';
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
  const matched = message.alerts.map((alert) => {
    const snapshot = toSnapshot(alert);
    return { snapshot, actions: matchAlert(services.matrix, snapshot) };
  });
  const keys = matched.flatMap(({ snapshot, actions }) => actions.map((a) => dedupKey(a.rule, a.key, snapshot)));
  const { existing, paused } = await services.runs.findByKeys(keys);
  const gateContext = {
    counters: services.counters,
    paused,
    dryRun: services.config.dryRun,
    configured: services.targets.configured,
    now: () => new Date(),
  };
  const alerts = [];
  for (const { snapshot, actions } of matched) {
    const decisions = await decideAll(
      actions.map((action) => ({ action, alert: snapshot })),
      gateContext,
    );
    const wouldCancel = snapshot.status === 'resolved' ? await services.runs.pendingOfEpisode(snapshot.fingerprint, snapshot.startsAt) : [];
    alerts.push({
      fingerprint: snapshot.fingerprint,
      status: snapshot.status,
      labels: snapshot.labels,
      matched: actions.length > 0,
      wouldCancel: wouldCancel.map((r) => ({ id: r.id, status: r.status })),
      actions: decisions.map((d) => {
        const found = existing.get(dedupId(dedupKey(d.rule, d.action, snapshot)));
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
