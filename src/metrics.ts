import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Where gauges read shared state at scrape time (PostgreSQL and Redis are the truth, not this process). */
export interface MetricSources {
  pendingApprovals(): Promise<number>;
  queueCounts(): Promise<Record<string, number>>;
  paused(): Promise<boolean | undefined>;
}

/** How many alert names `remediator_alerts_unmatched_total` keeps apart: a flood of names cannot grow it without bound. */
export const MAX_ALERTNAMES = 100;

/** Bounds a label's values: the first `max` distinct ones are kept, the rest become `other`. */
export function boundedLabel(max: number): (value: string) => string {
  const seen = new Set<string>();
  return (value) => {
    if (seen.has(value)) return value;
    if (seen.size >= max) return 'other';
    seen.add(value);
    return value;
  };
}

/** Every metric the service exports, on a registry of its own so several apps can live in one process. */
export function createMetrics() {
  let sources: MetricSources | undefined;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'remediator_' });
  // Gauges named `_total` fail `promtool check metrics`; their counts say little about this service anyway.
  for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total']) {
    registry.removeSingleMetric(`remediator_nodejs_${name}`);
  }
  const metrics = {
    registry,
    alertsReceived: new Counter({
      name: 'remediator_alerts_received_total',
      help: 'Alerts received on the webhook, by alert status (firing, resolved) and unmatched.',
      labelNames: ['status'] as const,
      registers: [registry],
    }),
    alertsUnmatched: new Counter({
      name: 'remediator_alerts_unmatched_total',
      help: `Alerts that matched no rule of the response matrix, by alertname (the first ${MAX_ALERTNAMES} names; later ones count as "other").`,
      labelNames: ['alertname'] as const,
      registers: [registry],
    }),
    alertsTruncated: new Counter({
      name: 'remediator_alerts_truncated_total',
      help: 'Alerts stored with labels or annotations cut to MAX_LABELS, MAX_LABEL_VALUE or MAX_ALERT_SIZE (their runs are still created).',
      registers: [registry],
    }),
    runs: new Counter({
      name: 'remediator_runs_total',
      help: 'Runs entering a status, by rule, remediation and status.',
      labelNames: ['rule', 'remediation', 'status'] as const,
      registers: [registry],
    }),
    runDuration: new Histogram({
      name: 'remediator_run_duration_seconds',
      help: 'Time a remediation took to execute.',
      labelNames: ['remediation'] as const,
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    }),
    approvalsPending: new Gauge({
      name: 'remediator_approvals_pending',
      help: 'Runs waiting for a human approval.',
      registers: [registry],
      async collect() {
        if (sources) this.set(await sources.pendingApprovals().catch(() => 0));
      },
    }),
    approvalWait: new Histogram({
      name: 'remediator_approval_wait_seconds',
      help: 'Time from a run asking for approval to its decision (approved, rejected, expired, cancelled).',
      buckets: [1, 10, 30, 60, 300, 600, 1800, 3600, 7200, 86400],
      registers: [registry],
    }),
    suppressed: new Counter({
      name: 'remediator_suppressed_total',
      help: 'Runs suppressed by a safety gate, by remediation and reason.',
      labelNames: ['remediation', 'reason'] as const,
      registers: [registry],
    }),
    queueJobs: new Gauge({
      name: 'remediator_queue_jobs',
      help: 'Jobs in the run queue, by state.',
      labelNames: ['state'] as const,
      registers: [registry],
      async collect() {
        if (!sources) return;
        for (const [state, n] of Object.entries(await sources.queueCounts().catch(() => ({})))) this.set({ state }, n);
      },
    }),
    paused: new Gauge({
      name: 'remediator_paused',
      help: '1 while the kill switch is on.',
      registers: [registry],
      async collect() {
        const paused = await sources?.paused().catch(() => undefined);
        if (paused !== undefined) this.set(paused ? 1 : 0);
      },
    }),
    checks: new Counter({
      name: 'remediator_checks_total',
      help: 'Prometheus checks before acting (check.query), by remediation and result: needed, cleared, unavailable.',
      labelNames: ['remediation', 'result'] as const,
      registers: [registry],
    }),
    verifications: new Counter({
      name: 'remediator_verifications_total',
      help: 'Verifications ended after a remediation succeeded, by remediation and result: verified, unverified.',
      labelNames: ['remediation', 'result'] as const,
      registers: [registry],
    }),
    reverts: new Counter({
      name: 'remediator_reverts_total',
      help: 'Revert runs created, by the remediation they undo.',
      labelNames: ['remediation'] as const,
      registers: [registry],
    }),
    webhookDuration: new Histogram({
      name: 'remediator_webhook_duration_seconds',
      help: 'Time to answer an Alertmanager delivery, by HTTP status code.',
      labelNames: ['code'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    notifications: new Counter({
      name: 'remediator_notifications_total',
      help: 'Notices to on-call, by result: sent, aggregated (folded into a notice listing several runs), dropped (over the cap), failed.',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    webhookRefused: new Counter({
      name: 'remediator_webhook_refused_total',
      help: 'Webhook deliveries refused without storing anything, by reason (too_many_alerts: over MAX_ALERTS_PER_MESSAGE, answered 413).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    reloadSuccessful: new Gauge({
      name: 'remediator_config_last_reload_successful',
      help: 'Whether the last attempt to load the response matrix (at start, SIGHUP or POST /-/reload) succeeded.',
      registers: [registry],
    }),
    reloadSuccessTime: new Gauge({
      name: 'remediator_config_last_reload_success_timestamp_seconds',
      help: 'When the response matrix in use was loaded (Unix seconds).',
      registers: [registry],
    }),
    bindSources(s: MetricSources) {
      sources = s;
    },
  };
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
