import type { TargetKind } from '../../remediations/types.js';
import { DependencyError } from '../errors.js';
import { TimeoutError } from '../kernel/timeout.js';
import type { Log } from '../kernel/log.js';
import { decideAll } from '../gates/at-intake.js';
import type { Counters } from '../gates/counters.js';
import { dedupId, dedupKey, dedupKeyOf, type DedupKey } from '../gates/dedup.js';
import { matchAlert, matchesAnyRule } from '../matrix/match.js';
import type { MatrixSource } from '../matrix/source.js';
import type { Action } from '../matrix/types.js';
import { boundedLabel, MAX_ALERTNAMES, type Metrics } from '../metrics.js';
import type { Notifier } from '../notify/notifier.js';
import type { RunQueue } from '../queue/queue.js';
import type { WebhookAlert, WebhookMessage } from '../schemas/alertmanager.js';
import type { AlertSnapshot, Run, RunRef } from '../schemas/runs.js';
import type { RunStore, StoredRun } from '../store/runs.js';
import type { Chains } from '../execution/chains.js';
import { observeStatus } from '../execution/observe.js';
import { createAnswers, type Answer } from './answers.js';
import { createBatcher } from './batcher.js';
import { capAlert, DEFAULT_ALERT_CAPS, type AlertCaps } from './caps.js';

export interface IntakeDeps {
  matrix: MatrixSource;
  chains: Pick<Chains, 'release' | 'settle'>;
  runs: RunStore;
  counters: Pick<Counters, 'peek'>;
  queue: RunQueue;
  metrics: Metrics;
  notifier: Notifier;
  log: Log;
  dryRun: boolean;
  configured: ReadonlySet<TargetKind>;
  /** Alerts one batch of concurrent deliveries may carry; a bigger message goes in slices of this many, two at a time. */
  maxBatchAlerts?: number;
  /** INTAKE_TIMEOUT: how long a delivery may take, waiting for a batch included. */
  timeoutMs?: number;
  /** How much of an alert a run stores (MAX_LABELS, MAX_LABEL_VALUE, MAX_ALERT_SIZE); the defaults when absent. */
  caps?: AlertCaps;
}

export interface IntakeResult {
  received: number;
  runs: Array<{ id: string; rule: string; remediation: string; status: string; duplicate: boolean }>;
}

/** The alert as Alertmanager sent it, in the shape runs store. */
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

/** Runs a step of a batch, recording which dependency the batch now waits on. */
type Track = <T>(dependency: 'PostgreSQL' | 'Redis', promise: Promise<T>) => Promise<T>;

interface Matched {
  message: number;
  alert: AlertSnapshot;
  action: Action;
  key: DedupKey;
  /** `dedupId(key)`, for Map lookups. */
  id: string;
}

/**
 * The webhook's work. Every alert is matched against the matrix and every matched action becomes a
 * run decided by the gates. Deliveries that arrive together are processed as one batch: one lookup
 * of existing runs by dedup key, one INSERT for the new ones, one enqueue. A delivery is answered
 * only when all of that is durable; any failure propagates, so the caller answers 5xx and
 * Alertmanager retries. A re-delivery finds its runs by dedup key and re-adds the job of any still
 * `queued` whose job is missing, which is how a run stored just before Redis failed gets executed.
 */
export function createIntake(deps: IntakeDeps) {
  const unmatchedName = boundedLabel(MAX_ALERTNAMES);
  const caps = deps.caps ?? DEFAULT_ALERT_CAPS;
  const answers = createAnswers();
  /** What each batch in flight is waiting on, so a delivery past its deadline can name the dependency that held it up. */
  const waitingOn = new Map<number, { dependency: 'PostgreSQL' | 'Redis'; since: number }>();
  let batches = 0;

  async function processBatch(messages: WebhookMessage[]): Promise<IntakeResult[]> {
    const id = ++batches;
    const started = performance.now();
    const track: Track = (dependency, promise) => {
      waitingOn.set(id, { dependency, since: started });
      return promise;
    };
    try {
      return await processTracked(messages, track);
    } finally {
      waitingOn.delete(id);
    }
  }

  /**
   * The dedup lookup and what follows for the matched actions not answered from memory: the new
   * runs decided, stored and enqueued, the known queued ones whose job is missing enqueued again.
   * Returns every run by dedup key, and whether this batch created it.
   */
  async function lookUpAndStore(matched: Matched[], track: Track): Promise<Map<string, { run: Run | RunRef; created: boolean }>> {
    // One decision per dedup key, even when several deliveries in the batch carry the same alert.
    const unique = new Map<string, Matched>();
    for (const m of matched) if (!unique.has(m.id)) unique.set(m.id, m);
    const gateContext = { counters: deps.counters, paused: false, dryRun: deps.dryRun, configured: deps.configured };
    // Decided before the lookup, so that the lookup and the insert are one statement: a key that
    // exists costs only its gate peek (read-only), and re-deliveries mostly come from `answers`.
    const decided = await track('Redis', decideAll([...unique.values()], gateContext));
    const first = await track('PostgreSQL', deps.runs.insertOrFind(decided));
    let stored: StoredRun[];
    if (first.paused) {
      // The kill switch is on: the new keys are decided again, paused, and stored so.
      const { existing } = first;
      const fresh = [...unique.values()].filter((m) => !existing.has(m.id));
      const paused = await track('Redis', decideAll(fresh, { ...gateContext, paused: true }));
      const inserted = await track('PostgreSQL', deps.runs.insert(paused));
      const byId = new Map(inserted.map((s) => [dedupId(dedupKeyOf(s.run)), s]));
      stored = [...unique.keys()].map((id) => byId.get(id) ?? { run: existing.get(id)!, duplicate: true as const });
    } else stored = first.stored;

    const inserted = stored.flatMap((s) => (s.duplicate ? [] : [s.run]));
    // A resolution that raced these firing runs (another message of the batch, another replica): cancel them now.
    const late = await track(
      'PostgreSQL',
      deps.runs.cancelResolved(
        inserted.filter((r) => r.phase === 'firing' && (r.status === 'pending_approval' || r.status === 'waiting')).map((r) => r.id),
      ),
    );
    const cancelled = new Map(late.map((r) => [r.id, r]));
    const created: Run[] = [];
    const known: RunRef[] = [];
    const byKey = new Map<string, { run: Run | RunRef; created: boolean }>();
    // `stored` is in the order of `unique`: each run's key is the one it was decided for.
    const ids = [...unique.keys()];
    stored.forEach((s, i) => {
      if (s.duplicate) {
        known.push(s.run);
        byKey.set(ids[i]!, { run: s.run, created: false });
      } else {
        const run = cancelled.get(s.run.id) ?? s.run;
        created.push(run);
        byKey.set(ids[i]!, { run, created: true });
      }
    });
    // Observed before the enqueue: a notice about a stored pending approval must go out even if Redis then fails.
    for (const run of created) observeStatus(run, deps.metrics, deps.notifier);
    // The log's audit trail starts here for a run that will not move soon on its own (ended at once:
    // suppressed, failed out of scope...; or waiting for a human or a predecessor). A queued one's
    // next line is its start.
    for (const run of created) {
      if (run.status === 'queued') continue;
      deps.log.info(
        { runId: run.id, rule: run.rule, remediation: run.remediation, from: null, to: run.status, reason: run.reason },
        'run status changed',
      );
    }
    await track(
      'Redis',
      Promise.all([
        deps.queue.enqueue(created.filter((r) => r.status === 'queued').map((r) => r.id)),
        deps.queue.enqueueMissing(known.filter((r) => r.status === 'queued').map((r) => r.id)),
      ]),
    );
    // Dependents whose predecessor is final already (created final here, or finished before this resolution) move on now.
    await track('PostgreSQL', deps.chains.settle(created));
    return byKey;
  }

  async function processTracked(messages: WebhookMessage[], track: Track): Promise<IntakeResult[]> {
    const matched: Matched[] = [];
    const resolved: AlertSnapshot[] = [];
    messages.forEach((message, index) => {
      for (const alert of message.alerts) {
        // Matched as Alertmanager sent it; runs store (and render their params from) the capped alert.
        const sent = toSnapshot(alert);
        const { alert: snapshot, truncated } = capAlert(sent, caps);
        if (truncated) deps.metrics.alertsTruncated.inc();
        const actions = matchAlert(deps.matrix.current, sent);
        deps.metrics.alertsReceived.inc({ status: alert.status });
        // A resolution of a rule without onResolved triggers nothing, but it matched.
        if (actions.length === 0 && !matchesAnyRule(deps.matrix.current, sent)) {
          deps.metrics.alertsUnmatched.inc({ alertname: unmatchedName(snapshot.labels['alertname'] ?? '') });
        }
        if (alert.status === 'resolved') resolved.push(snapshot);
        for (const action of actions) {
          const key = dedupKey(action.rule, action.key, snapshot);
          matched.push({ message: index, alert: snapshot, action, key, id: dedupId(key) });
        }
      }
    });

    if (resolved.length > 0) {
      const cancelledRuns = await track('PostgreSQL', deps.runs.resolveEpisodes(resolved));
      for (const run of cancelledRuns) {
        deps.metrics.runs.inc({ rule: run.rule, remediation: run.remediation, status: 'cancelled' });
        if (run.approval.required) deps.metrics.approvalWait.observe((Date.parse(run.updatedAt) - Date.parse(run.createdAt)) / 1000);
      }
      await track('PostgreSQL', deps.chains.release(cancelledRuns));
    }
    if (matched.length === 0) return messages.map((m) => ({ received: m.alerts.length, runs: [] }));

    // Re-deliveries answered from memory: a final run as it was, a queued one once Redis says its job still waits.
    const recalled = new Map<string, Answer>();
    for (const m of matched) {
      const answer = answers.recall(m.id);
      if (answer) recalled.set(m.id, answer);
    }
    const queuedRecalls = [...recalled].filter(([, a]) => a.status === 'queued');
    if (queuedRecalls.length > 0) {
      const waiting = await track('Redis', deps.queue.untaken(queuedRecalls.map(([, a]) => a.id)));
      queuedRecalls.forEach(([key], i) => {
        if (waiting[i]) return;
        recalled.delete(key);
        answers.forget(key);
      });
    }
    const byKey = new Map<string, { run: Answer; created: boolean }>();
    for (const [key, run] of recalled) byKey.set(key, { run, created: false });
    const rest = recalled.size === 0 ? matched : matched.filter((m) => !recalled.has(m.id));
    if (rest.length > 0) {
      for (const [key, entry] of await lookUpAndStore(rest, track)) {
        byKey.set(key, entry);
        answers.remember(key, entry.run);
      }
    }

    // The first delivery in the batch to name a run it created answers `duplicate: false`; every other one, true.
    const claimed = new Set<string>();
    const results: IntakeResult[] = messages.map((m) => ({ received: m.alerts.length, runs: [] }));
    for (const m of matched) {
      const entry = byKey.get(m.id)!;
      const duplicate = !entry.created || claimed.has(m.id);
      claimed.add(m.id);
      const { run } = entry;
      results[m.message]!.runs.push({ id: run.id, rule: run.rule, remediation: run.remediation, status: run.status, duplicate });
    }
    return results;
  }

  const maxBatchAlerts = deps.maxBatchAlerts ?? 500;
  const batched = createBatcher(processBatch, {
    weight: (m: WebhookMessage) => Math.max(1, m.alerts.length),
    maxWeight: maxBatchAlerts,
    // Two batches at a time: one is decided and stored while the other waits on PostgreSQL or Redis,
    // and what arrives meanwhile goes in the next one. More at once make smaller batches, and each
    // batch costs a statement, a commit and two Redis calls whatever its size (single-alert
    // deliveries at c=50: batches of about 12 alerts, and 10-25 % more alerts/s than 6 batches of 5).
    concurrency: 2,
  });

  /** The slices of the messages being taken in slices, so that a deadline can drop those still waiting. */
  const slicesOf = new Map<WebhookMessage, WebhookMessage[]>();

  /**
   * A message of more than maxBatchAlerts alerts in slices, two at a time (one stores while the other
   * is decided), answered as one: what a batch builds of its alerts (runs, the insert's payload, jobs)
   * is then there for two slices at most. A slice that fails fails the delivery; its retry finds the
   * runs of the slices stored before.
   */
  async function submit(message: WebhookMessage): Promise<IntakeResult> {
    if (message.alerts.length <= maxBatchAlerts) return batched(message);
    const slices: WebhookMessage[] = [];
    for (let i = 0; i < message.alerts.length; i += maxBatchAlerts) {
      slices.push({ ...message, alerts: message.alerts.slice(i, i + maxBatchAlerts) });
    }
    slicesOf.set(message, slices);
    try {
      return await submitSlices(message, slices);
    } finally {
      slicesOf.delete(message);
    }
  }

  async function submitSlices(message: WebhookMessage, slices: WebhookMessage[]): Promise<IntakeResult> {
    const parts: IntakeResult[] = new Array(slices.length);
    let next = 0;
    let failed = false;
    const lane = async () => {
      while (next < slices.length && !failed) {
        const at = next++;
        try {
          parts[at] = await batched(slices[at]!);
        } catch (err) {
          // The delivery fails; the other lane takes no further slice.
          failed = true;
          throw err;
        }
      }
    };
    await Promise.all([lane(), lane()]);
    return { received: message.alerts.length, runs: parts.flatMap((p) => p.runs) };
  }

  /** The dependency the oldest batch in flight waits on: what holds up a delivery past its deadline. */
  function blockedOn(): 'PostgreSQL' | 'Redis' {
    let oldest: { dependency: 'PostgreSQL' | 'Redis'; since: number } | undefined;
    for (const w of waitingOn.values()) if (!oldest || w.since < oldest.since) oldest = w;
    // Every batch starts with PostgreSQL (the dedup lookup).
    return oldest?.dependency ?? 'PostgreSQL';
  }

  /**
   * Takes one delivery, answered within `timeoutMs` (INTAKE_TIMEOUT): stored, or a `DependencyError`
   * naming what held it up, so the webhook answers 503 and Alertmanager retries. A batch that goes on
   * past the deadline may still commit; the retry then finds its runs by dedup key. A delivery (or a
   * slice of one) still waiting for a batch at its deadline leaves the queue: its retry takes its place.
   */
  return function intake(message: WebhookMessage): Promise<IntakeResult> {
    const timeoutMs = deps.timeoutMs;
    if (timeoutMs === undefined) return submit(message);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const dependency = blockedOn();
        deps.log.warn({ dependency, timeoutMs, alerts: message.alerts.length }, 'delivery not stored within INTAKE_TIMEOUT');
        const err = new DependencyError(dependency, 'intake', new TimeoutError(`delivery waiting on ${dependency}`, timeoutMs));
        for (const piece of slicesOf.get(message) ?? [message]) batched.drop(piece, err);
        reject(err);
      }, timeoutMs);
    });
    return Promise.race([submit(message), deadline]).finally(() => clearTimeout(timer));
  };
}

export type Intake = ReturnType<typeof createIntake>;
