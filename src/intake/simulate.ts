import { decideAll } from '../gates/at-intake.js';
import { dedupId, dedupKey } from '../gates/dedup.js';
import { answerDetail, queryErrors } from '../gates/condition.js';
import { matchAlert } from '../matrix/match.js';
import type { WebhookMessage } from '../schemas/alertmanager.js';
import type { Services } from '../services.js';
import { capAlert } from './caps.js';
import { toSnapshot } from './intake.js';

const OUTCOME: Record<string, string> = {
  waiting: 'would_wait',
  queued: 'would_queue',
  pending_approval: 'would_wait_for_approval',
  suppressed: 'would_suppress',
  failed: 'would_fail',
};

/**
 * What the webhook would do with a message right now: the same matching and gate decisions, with
 * the budget only peeked at and nothing written. Existing runs with the same dedup key show as duplicates.
 * An action with `after` would wait: its `after` says for which action, what its `when` needs, and
 * where that predecessor stands (created by this message, an existing run, or none: `no_predecessor`).
 * A `check.query` is evaluated against Prometheus (when configured): what it answers now.
 */
export async function simulate(services: Services, message: WebhookMessage) {
  // As the intake does: matched as sent, decided on the alert as its runs would store it.
  const matched = message.alerts.map((alert) => {
    const sent = toSnapshot(alert);
    return { snapshot: capAlert(sent, services.config.alertCaps).alert, actions: matchAlert(services.matrix.current, sent) };
  });
  const keys = matched.flatMap(({ snapshot, actions }) =>
    actions.flatMap((a) => [
      dedupKey(a.rule, a.key, snapshot),
      ...(a.after && a.phase === 'resolved' && a.after.key.startsWith('firing:') ? [dedupKey(a.rule, a.after.key, snapshot)] : []),
    ]),
  );
  const { existing, paused } = await services.runs.findByKeys(keys);
  const gateContext = {
    counters: services.counters,
    paused,
    dryRun: services.config.dryRun,
    configured: services.targets.configured,
  };
  /** What a check query answers right now, when Prometheus is configured. */
  const checkNow = async (query: string | undefined) => {
    if (query === undefined) return null;
    if (!services.prometheus) return { query, result: 'not_evaluated', reason: 'PROMETHEUS_URL is not set' };
    try {
      const answer = await services.prometheus.query(query, AbortSignal.timeout(3000));
      return { query, result: answer.samples.length > 0 ? 'needed' : 'cleared', ...answerDetail(answer) };
    } catch (err) {
      return { query, result: 'unavailable', errors: queryErrors(err) };
    }
  };
  const alerts = [];
  for (const { snapshot, actions } of matched) {
    const decisions = await decideAll(
      actions.map((action) => ({ action, alert: snapshot })),
      gateContext,
    );
    const wouldCancel = snapshot.status === 'resolved' ? await services.runs.pendingOfEpisode(snapshot.fingerprint, snapshot.startsAt) : [];
    const checks = await Promise.all(decisions.map((d) => checkNow(d.gates.checkQuery)));
    alerts.push({
      fingerprint: snapshot.fingerprint,
      status: snapshot.status,
      labels: snapshot.labels,
      matched: actions.length > 0,
      wouldCancel: wouldCancel.map((r) => ({ id: r.id, status: r.status })),
      actions: decisions.map((d, i) => {
        const found = existing.get(dedupId(dedupKey(d.rule, d.action, snapshot)));
        const action = actions[i]!;
        const after = action.after;
        // Within a phase the predecessor is created by this very message; `firing.<id>` names an earlier run.
        const crossPhase = after !== undefined && action.phase === 'resolved' && after.key.startsWith('firing:');
        const inMessage = after !== undefined && !crossPhase;
        const earlier = crossPhase ? existing.get(dedupId(dedupKey(d.rule, after.key, snapshot))) : undefined;
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
          check: checks[i] ?? null,
          verify: d.gates.verify
            ? { query: d.gates.verify.query, withinMs: d.gates.verify.withinMs, everyMs: d.gates.verify.everyMs }
            : null,
          after: after
            ? {
                ref: after.ref,
                when: after.when,
                needs: `${after.ref} ${after.when === 'succeeded' ? 'succeeded (or dry_run)' : after.when === 'failed' ? 'failed' : 'finished, whatever its outcome'}`,
                predecessor: inMessage
                  ? { action: after.key, createdByThisMessage: true, runId: null, status: null }
                  : earlier
                    ? { action: after.key, createdByThisMessage: false, runId: earlier.id, status: earlier.status }
                    : { action: after.key, createdByThisMessage: false, runId: null, status: null, wouldSkip: 'no_predecessor' },
              }
            : null,
        };
      }),
    });
  }
  return { paused, dryRun: services.config.dryRun, alerts };
}
