import type { NotifyTarget } from '../../remediations/types.js';
import type { Log } from '../kernel/log.js';
import type { RunStore } from '../store/runs.js';
import type { Run } from '../schemas/runs.js';

export type NotificationKind = 'pending_approval' | 'escalated' | 'expired' | 'failed' | 'unverified';

const HEADLINE: Record<NotificationKind, string> = {
  pending_approval: 'needs approval',
  escalated: 'escalated: failed 3 times in a row, needs approval',
  expired: 'approval expired, not executed',
  failed: 'failed',
  unverified: 'succeeded but did not help (unverified): its next runs on this target need approval',
};

/** The message on-call gets: what the run would do and, while it waits, the exact command that approves it. */
export function notificationText(run: Run, kind: NotificationKind, publicUrl: string, context: readonly string[] = []): string {
  const lines = [
    `[conduit-remediator] ${run.remediation} on ${run.target ?? 'unknown target'} ${HEADLINE[kind]}`,
    `Run ${run.id} (rule ${run.rule}, alert ${run.alert.labels['alertname'] ?? run.alert.fingerprint})`,
    ...context,
  ];
  if (run.plan) lines.push(`Plan: ${run.plan}`);
  if (kind === 'failed' && run.error) lines.push(`Error: ${run.error}`);
  if (kind === 'pending_approval' || kind === 'escalated') {
    if (run.approval.expiresAt) lines.push(`Expires at ${run.approval.expiresAt}`);
    lines.push(
      `Approve: curl -X POST -H "Authorization: Bearer $REMEDIATOR_TOKEN" -H 'Content-Type: application/json' -d '{}' ${publicUrl}/api/runs/${run.id}/approve`,
      `Reject:  curl -X POST -H "Authorization: Bearer $REMEDIATOR_TOKEN" -H 'Content-Type: application/json' -d '{}' ${publicUrl}/api/runs/${run.id}/reject`,
    );
  }
  return lines.join('\n');
}

/**
 * Tells on-call about runs that need a human. Best effort and off the request path: a failed
 * notification is logged and recorded in the run's timeline, never blocks or fails the run.
 */
export function createNotifier(deps: {
  target: NotifyTarget | undefined;
  runs: RunStore;
  log: Log;
  publicUrl: string;
  timeoutMs?: number;
  /** One line saying whether the run's alert still fires (asked of Alertmanager), for approval notices. */
  firingLine?: (run: Run) => Promise<string | undefined>;
}) {
  const pending = new Set<Promise<void>>();

  async function send(run: Run, kind: NotificationKind, context: readonly string[]): Promise<void> {
    if (!deps.target) return;
    try {
      const firing = kind === 'pending_approval' || kind === 'escalated' ? await deps.firingLine?.(run) : undefined;
      await deps.target.post(notificationText(run, kind, deps.publicUrl, firing ? [...context, firing] : context), {
        signal: new AbortController().signal,
        timeoutMs: deps.timeoutMs ?? 5000,
      });
      await deps.runs.addEvent(run.id, 'notified', { kind });
    } catch (err) {
      deps.log.warn({ runId: run.id, kind, err: (err as Error).message }, 'notification failed');
      await deps.runs.addEvent(run.id, 'notification_failed', { kind, error: (err as Error).message }).catch(() => {});
    }
  }

  return {
    notify(run: Run, kind: NotificationKind, context: readonly string[] = []): void {
      const p = send(run, kind, context).finally(() => pending.delete(p));
      pending.add(p);
    },
    /** Waits for notifications in flight, at shutdown. */
    async drain(): Promise<void> {
      await Promise.allSettled([...pending]);
    },
  };
}

export type Notifier = ReturnType<typeof createNotifier>;
