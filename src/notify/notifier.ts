import { RemediationError, type NotifyTarget } from '../../remediations/types.js';
import type { Log } from '../kernel/log.js';
import { escapeSlack, oneLine } from '../matrix/template.js';
import type { Metrics } from '../metrics.js';
import { approvalMessage, decidedMessage, type SlackMessage } from '../slack/blocks.js';
import type { MessageTarget } from './client.js';
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

/** The headline of a notice listing several runs of one rule. */
const HEADLINE_MANY: Record<NotificationKind, string> = {
  pending_approval: 'need approval',
  escalated: 'escalated: failed 3 times in a row, need approval',
  expired: 'approval expired, not executed',
  failed: 'failed',
  unverified: 'succeeded but did not help (unverified): their next runs on these targets need approval',
};

/** The runs a notice listing several stands for, as `GET /api/runs` selects them. */
const LIST_STATUS: Record<NotificationKind, string | undefined> = {
  pending_approval: 'pending_approval',
  escalated: 'pending_approval',
  expired: 'expired',
  failed: 'failed',
  unverified: undefined,
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Runs named one by one in a notice listing several; the rest are counted, with where to find them. */
export const LISTED_RUNS = 20;

const approvable = (kind: NotificationKind) => kind === 'pending_approval' || kind === 'escalated';

/**
 * A value in a notice: on one line (alert data can never start a line, so never forge an `Approve:`
 * one), at most `max` characters, and escaped for Slack mrkdwn (no `<!channel>` ping, no
 * `<https://…|label>` link). Everything in a notice but the service's own words and commands goes
 * through here: targets, labels, plans and errors are all made from alert data.
 */
function field(value: string, max = 1000): string {
  const line = oneLine(value);
  return escapeSlack(line.length > max ? `${line.slice(0, max - 1)}…` : line);
}

function base(publicUrl: string): string {
  return publicUrl.replace(/\/+$/, '');
}

const CURL = `curl -X POST -H "Authorization: Bearer $REMEDIATOR_TOKEN" -H 'Content-Type: application/json' -d '{}'`;

/** The approve and reject commands: written here alone, from PUBLIC_URL and a run id that is a UUID, and last in a notice. */
function commandLines(id: string, publicUrl: string): string[] {
  if (!UUID.test(id)) return [];
  const url = base(publicUrl);
  return [`Approve: ${CURL} ${url}/api/runs/${id}/approve`, `Reject:  ${CURL} ${url}/api/runs/${id}/reject`];
}

/** A notice of one run in two parts: what the run would do (`body`) and, while it waits, the commands that decide it. */
export function noticeParts(
  run: Run,
  kind: NotificationKind,
  publicUrl: string,
  context: readonly string[] = [],
): { body: string[]; commands: string[] } {
  const body = [
    `[conduit-remediator] ${field(run.remediation)} on ${run.target ? field(run.target) : 'unknown target'} ${HEADLINE[kind]}`,
    runLine(run),
    ...context.map((line) => field(line)),
  ];
  if (run.plan) body.push(`Plan: ${field(run.plan)}`);
  if (kind === 'failed' && run.error) body.push(`Error: ${field(run.error)}`);
  if (!approvable(kind)) return { body, commands: [] };
  if (run.approval.expiresAt) body.push(`Expires at ${field(run.approval.expiresAt)}`);
  return { body, commands: commandLines(run.id, publicUrl) };
}

const runLine = (run: Run) =>
  `Run ${field(run.id)} (rule ${field(run.rule)}, alert ${field(run.alert.labels['alertname'] ?? run.alert.fingerprint)})`;

/** The message on-call gets: what the run would do and, while it waits, the exact command that approves it. */
export function notificationText(run: Run, kind: NotificationKind, publicUrl: string, context: readonly string[] = []): string {
  const { body, commands } = noticeParts(run, kind, publicUrl, context);
  return [...body, ...commands].join('\n');
}

/**
 * An approval notice as a Block Kit message: the notice, Approve and Reject buttons whose value is
 * the run id, then the commands; `text` is the whole plain notice (`notificationText`).
 */
export function approvalNotice(run: Run, kind: NotificationKind, publicUrl: string, context: readonly string[] = []): SlackMessage {
  const { body, commands } = noticeParts(run, kind, publicUrl, context);
  return approvalMessage({ text: [...body, ...commands].join('\n'), body, commands, runId: run.id });
}

/** Who decided the run and when, or what became of it: read from the run as stored, escaped. */
export function decisionOutcome(run: Run): string {
  const { decidedBy, decidedAt, expiresAt } = run.approval;
  const at = (time: string | null) => (time ? ` at ${field(time)}` : '');
  if (decidedBy) return `${run.status === 'rejected' ? 'Rejected' : 'Approved'} by ${field(decidedBy, 200)}${at(decidedAt)}`;
  if (run.status === 'expired' || (run.status === 'pending_approval' && expiresAt && Date.parse(expiresAt) <= Date.now())) {
    return `Approval expired${at(expiresAt)}: not executed`;
  }
  if (run.status === 'pending_approval') return 'Waiting for approval';
  return `Not decided: the run is ${field(run.status)}${run.reason ? ` (${field(run.reason, 200)})` : ''}`;
}

/** The answer to a click on a run decided before it: who decided it, how and when. */
export function alreadyDecided(run: Run): string {
  const { decidedBy, decidedAt } = run.approval;
  if (!decidedBy) return `Run ${field(run.id)} cannot be decided: ${decisionOutcome(run)}`;
  const how = run.status === 'rejected' ? 'rejected' : 'approved';
  return `Run ${field(run.id)} was already decided by ${field(decidedBy, 200)} (${how}${decidedAt ? ` at ${field(decidedAt)}` : ''})`;
}

/** What replaces an approval notice once it is decided: the run, its plan, and the outcome. */
export function decisionNotice(run: Run): SlackMessage {
  const outcome = decisionOutcome(run);
  const body = [
    `[conduit-remediator] ${field(run.remediation)} on ${run.target ? field(run.target) : 'unknown target'}: ${outcome}`,
    runLine(run),
  ];
  if (run.plan) body.push(`Plan: ${field(run.plan)}`);
  return decidedMessage(body, outcome);
}

export interface NoticeEntry {
  run: Run;
  context: readonly string[];
}

/**
 * One notice for several runs of one rule and kind: the first `listed` named (id, target, alert,
 * plan or error, context), the rest counted with the query that lists them all; for approvals,
 * one approve command per named run, last.
 */
export function aggregateText(entries: readonly NoticeEntry[], kind: NotificationKind, publicUrl: string, listed = LISTED_RUNS): string {
  const url = base(publicUrl);
  const rule = entries[0]?.run.rule ?? '';
  const shown = entries.slice(0, listed);
  const lines = [`[conduit-remediator] ${entries.length} runs of rule ${field(rule)} ${HEADLINE_MANY[kind]}`];
  for (const { run, context } of shown) {
    const alert = run.alert.labels['alertname'] ?? run.alert.fingerprint;
    lines.push(
      `• Run ${field(run.id)}: ${field(run.remediation)} on ${run.target ? field(run.target, 300) : 'unknown target'} (alert ${field(alert, 200)})`,
    );
    for (const line of context) lines.push(`    ${field(line, 300)}`);
    if (approvable(kind) && run.plan) lines.push(`    Plan: ${field(run.plan, 300)}`);
    if (kind === 'failed' && run.error) lines.push(`    Error: ${field(run.error, 300)}`);
  }
  if (entries.length > shown.length) {
    const status = LIST_STATUS[kind];
    const query = `${status ? `status=${status}&amp;` : ''}rule=${encodeURIComponent(rule)}`;
    lines.push(`And ${entries.length - shown.length} more: GET ${url}/api/runs?${query}`);
  }
  if (approvable(kind)) {
    const ids = shown.map((e) => e.run.id).filter((id) => UUID.test(id));
    for (const id of ids) lines.push(`Approve: remediator approve ${id} --url ${url}`);
    if (ids.length > 0) {
      lines.push(`Reject:  remediator reject RUN_ID --url ${url}`);
      lines.push(`Over HTTP: ${CURL} ${url}/api/runs/RUN_ID/approve (or /reject)`);
    }
  }
  return lines.join('\n');
}

/**
 * One message for the `notify.webhook` posts of one rule that arrived within a window: the first
 * `listed` texts, each a bullet, the rest counted with the query that lists their runs. The texts are
 * the matrix's, with alert data already escaped and kept on one line (the remediation's `textParams`).
 */
export function relayedText(texts: readonly string[], rule: string, publicUrl: string, listed = LISTED_RUNS): string {
  const shown = texts.slice(0, listed);
  const lines = [`[conduit-remediator] ${texts.length} notices of rule ${field(rule)}:`];
  for (const text of shown) lines.push(`• ${text.replace(/\n/g, '\n    ')}`);
  if (texts.length > shown.length) {
    const query = `rule=${encodeURIComponent(rule)}&amp;remediation=notify.webhook`;
    lines.push(`And ${texts.length - shown.length} more: GET ${base(publicUrl)}/api/runs?${query}`);
  }
  return lines.join('\n');
}

/** A `notify.webhook` post folded into the message its rule's window posts when it closes. */
interface Relayed {
  text: string;
  runId: string | undefined;
}

/** Notices that arrive while a window is open, posted as one (`flush`) when it closes. */
interface Window<E> {
  key: string;
  entries: E[];
  timer: NodeJS.Timeout;
  flush(entries: E[]): Promise<void>;
}

/** Timeline events written at once for the runs of one notice. */
const EVENT_BATCH = 10;

/**
 * Tells on-call about runs that need a human. Best effort and off the request path: a failed
 * notification is logged and recorded in the run's timeline, never blocks or fails the run.
 *
 * Floods are folded and capped. The first notice of a kind (approval, escalation, expiry, failure,
 * unverified) for a rule goes at once and opens a window of `windowMs`; the notices of that kind and
 * rule arriving while it is open are posted as ONE notice listing the runs when it closes, which
 * opens the next window (a steady stream is one notice a window). At most `maxPerMinute` notices are
 * posted in any minute; one over it is dropped (`notification_dropped` in its runs' timelines), and
 * a single notice saying how many were dropped goes when the minute allows again. `drain()` posts
 * what the windows hold. `remediator_notifications_total{result}` counts runs: `sent` in a notice of
 * their own, `aggregated` in one listing several, `dropped`, `failed`.
 *
 * `webhookTarget()` is the target `notify.webhook` runs post through, under the same cap and with
 * windows of their own per rule: the first post goes at once (the run has its answer); those within
 * the window after it are folded into one message listing them, posted when it closes, best effort as
 * the service's notices (`notified`, `notification_failed` or `notification_dropped` in each run's
 * timeline); a post while the cap is reached fails its run (`rate_limited`, not retried) and is
 * counted in the notice of dropped notices.
 */
export function createNotifier(deps: {
  /** Where notices go; one that also takes Block Kit messages (`notifyTarget`) gets the interactive ones. */
  target: NotifyTarget | MessageTarget | undefined;
  runs: RunStore;
  log: Log;
  publicUrl: string;
  timeoutMs?: number;
  /** One line saying whether the run's alert still fires (asked of Alertmanager), for approval notices. */
  firingLine?: (run: Run) => Promise<string | undefined>;
  metrics?: Pick<Metrics, 'notifications'>;
  /** How long notices of one kind and rule are collected into one (default 2 s). */
  windowMs?: number;
  /** At most this many notices posted a minute (default 20). */
  maxPerMinute?: number;
  now?: () => number;
  /**
   * Approval notices with Approve and Reject buttons (Slack interactivity is configured:
   * SLACK_SIGNING_SECRET). A notice of one run needing approval (pending or escalated) goes as
   * Block Kit, its `text` the plain notice with the commands; a notice listing several runs, and
   * every other kind, stays plain text. Default false.
   */
  interactive?: boolean;
}) {
  const windowMs = deps.windowMs ?? 2000;
  const maxPerMinute = deps.maxPerMinute ?? 20;
  const now = deps.now ?? (() => Date.now());
  const pending = new Set<Promise<void>>();
  /** By kind (or `webhook`) and rule. */
  const windows = new Map<string, Window<never>>();
  /** When the notices of the last minute were posted, oldest first. */
  const posted: number[] = [];
  const dropped = { notices: 0, runs: 0 };
  let summaryTimer: NodeJS.Timeout | undefined;
  let draining = false;

  function track(p: Promise<void>): void {
    const tracked = p.finally(() => pending.delete(tracked));
    pending.add(tracked);
  }

  /** Whether one more notice fits in the last minute; if it does, it is counted. */
  function admit(): boolean {
    if (full()) return false;
    posted.push(now());
    return true;
  }

  /** Whether the cap of notices a minute is reached (nothing is counted). */
  function full(): boolean {
    const t = now();
    while (posted.length > 0 && posted[0]! <= t - 60_000) posted.shift();
    return posted.length >= maxPerMinute;
  }

  /** A notice (of `runs` runs) over the cap: counted for the metric and the later notice of dropped ones. */
  function countDropped(runs: number): void {
    dropped.notices += 1;
    dropped.runs += runs;
    deps.metrics?.notifications.inc({ result: 'dropped' }, runs);
    scheduleSummary();
  }

  const runIds = (entries: readonly NoticeEntry[]) => entries.map((e) => e.run.id);

  async function events(ids: readonly (string | undefined)[], type: string, detail: Record<string, unknown>): Promise<void> {
    const known = ids.filter((id): id is string => id !== undefined);
    for (let i = 0; i < known.length; i += EVENT_BATCH) {
      await Promise.all(known.slice(i, i + EVENT_BATCH).map((id) => deps.runs.addEvent(id, type, detail).catch(() => {})));
    }
  }

  async function post(message: string | SlackMessage): Promise<void> {
    const opts = { signal: new AbortController().signal, timeoutMs: deps.timeoutMs ?? 5000 };
    const target = deps.target!;
    if (typeof message === 'string' || !message.blocks) {
      await target.post(typeof message === 'string' ? message : message.text, opts);
      return;
    }
    if (!('postMessage' in target)) {
      await target.post(message.text, opts);
      return;
    }
    try {
      await target.postMessage(message, opts);
    } catch (err) {
      // A layout Slack refuses (400 invalid_blocks) must not cost the notice: it goes again as the plain text.
      if (!(err instanceof RemediationError) || (err.detail as { status?: unknown } | undefined)?.status !== 400) throw err;
      deps.log.warn({ err: err.message }, 'the webhook refused the notice with buttons; posting it as plain text');
      await target.post(message.text, opts);
    }
  }

  async function deliver(entries: readonly NoticeEntry[], kind: NotificationKind): Promise<void> {
    const runs = entries.length;
    const first = entries[0]!;
    if (!admit()) {
      countDropped(runs);
      deps.log.warn({ kind, rule: first.run.rule, runs, maxPerMinute }, 'notification dropped: over the cap of notices a minute');
      await events(runIds(entries), 'notification_dropped', { kind, reason: 'rate_limited', maxPerMinute, ...(runs > 1 ? { runs } : {}) });
      return;
    }
    try {
      let message: string | SlackMessage;
      if (runs === 1) {
        const firing = approvable(kind) ? await deps.firingLine?.(first.run) : undefined;
        const context = firing ? [...first.context, firing] : first.context;
        message =
          deps.interactive && approvable(kind)
            ? approvalNotice(first.run, kind, deps.publicUrl, context)
            : notificationText(first.run, kind, deps.publicUrl, context);
      } else {
        message = aggregateText(entries, kind, deps.publicUrl);
      }
      await post(message);
    } catch (err) {
      const error = (err as Error).message;
      deps.metrics?.notifications.inc({ result: 'failed' }, runs);
      deps.log.warn({ runId: first.run.id, kind, runs, err: error }, 'notification failed');
      await events(runIds(entries), 'notification_failed', { kind, error, ...(runs > 1 ? { runs } : {}) });
      return;
    }
    deps.metrics?.notifications.inc({ result: runs === 1 ? 'sent' : 'aggregated' }, runs);
    await events(runIds(entries), 'notified', { kind, ...(runs > 1 ? { runs } : {}) });
  }

  function open<E>(key: string, flush: (entries: E[]) => Promise<void>): Window<E> {
    const w: Window<E> = { key, entries: [], flush, timer: setTimeout(() => close(w), windowMs) };
    w.timer.unref();
    windows.set(key, w as unknown as Window<never>);
    return w;
  }

  /** A window closes: what it collected goes as one notice, and the next window opens; an empty one just ends. */
  function close<E>(w: Window<E>): void {
    clearTimeout(w.timer);
    windows.delete(w.key);
    if (w.entries.length === 0) return;
    const entries = w.entries;
    if (!draining) open(w.key, w.flush);
    track(w.flush(entries));
  }

  /** The open window of `key`, if any, to add to. */
  const windowOf = <E>(key: string): Window<E> | undefined => windows.get(key) as Window<E> | undefined;

  function overCap(): RemediationError {
    return new RemediationError(
      'rate_limited',
      `the notice was not posted: over the cap of ${maxPerMinute} notices a minute (a later notice counts the dropped ones)`,
    );
  }

  /** The message a closing window holds: best effort, as the service's own notices. */
  async function relayFolded(entries: readonly Relayed[], rule: string): Promise<void> {
    const runs = entries.length;
    const detail = { kind: 'webhook', runs };
    if (!admit()) {
      countDropped(runs);
      deps.log.warn({ rule, runs, maxPerMinute }, 'notify.webhook notices dropped: over the cap of notices a minute');
      await events(
        entries.map((e) => e.runId),
        'notification_dropped',
        { ...detail, reason: 'rate_limited', maxPerMinute },
      );
      return;
    }
    const text =
      runs === 1
        ? entries[0]!.text
        : relayedText(
            entries.map((e) => e.text),
            rule,
            deps.publicUrl,
          );
    try {
      await deps.target!.post(text, { signal: new AbortController().signal, timeoutMs: deps.timeoutMs ?? 5000 });
    } catch (err) {
      deps.metrics?.notifications.inc({ result: 'failed' }, runs);
      deps.log.warn({ rule, runs, err: (err as Error).message }, 'notify.webhook notices failed');
      await events(
        entries.map((e) => e.runId),
        'notification_failed',
        { ...detail, error: (err as Error).message },
      );
      return;
    }
    deps.metrics?.notifications.inc({ result: runs === 1 ? 'sent' : 'aggregated' }, runs);
    await events(
      entries.map((e) => e.runId),
      'notified',
      detail,
    );
  }

  function summaryText(): string {
    const url = base(deps.publicUrl);
    return [
      `[conduit-remediator] ${dropped.notices} ${dropped.notices === 1 ? 'notice' : 'notices'} (about ${dropped.runs} ${dropped.runs === 1 ? 'run' : 'runs'}) dropped: over the cap of ${maxPerMinute} notices a minute`,
      `Waiting for approval: GET ${url}/api/runs?status=pending_approval`,
      `Failed: GET ${url}/api/runs?status=failed`,
    ].join('\n');
  }

  /** The count of dropped notices, posted once the last minute has room again. */
  function scheduleSummary(): void {
    if (summaryTimer || draining) return;
    const wait = Math.max(0, (posted[0] ?? now()) + 60_000 - now()) + 10;
    summaryTimer = setTimeout(() => {
      summaryTimer = undefined;
      if (dropped.notices === 0) return;
      if (!admit()) return scheduleSummary();
      track(sendSummary());
    }, wait);
    summaryTimer.unref();
  }

  async function sendSummary(): Promise<void> {
    const text = summaryText();
    const count = { ...dropped };
    dropped.notices = 0;
    dropped.runs = 0;
    try {
      await post(text);
    } catch (err) {
      deps.log.warn({ ...count, err: (err as Error).message }, 'the notice of dropped notices failed');
    }
  }

  return {
    notify(run: Run, kind: NotificationKind, context: readonly string[] = []): void {
      if (!deps.target) return;
      const entry = { run, context };
      const key = `${kind}\u0000${run.rule}`;
      const w = windowOf<NoticeEntry>(key);
      if (w) {
        w.entries.push(entry);
        return;
      }
      if (!draining) open<NoticeEntry>(key, (entries) => deliver(entries, kind));
      track(deliver([entry], kind));
    },
    /** The target `notify.webhook` runs post through (see above); none without NOTIFY_WEBHOOK_URL. */
    webhookTarget(): NotifyTarget | undefined {
      const target = deps.target;
      if (!target) return undefined;
      return {
        async post(text, opts) {
          const rule = opts.rule ?? '';
          const key = `webhook\u0000${rule}`;
          if (full()) {
            countDropped(1);
            throw overCap();
          }
          const w = windowOf<Relayed>(key);
          if (w) {
            w.entries.push({ text, runId: opts.runId });
            return { folded: true };
          }
          if (!draining) open<Relayed>(key, (entries) => relayFolded(entries, rule));
          admit();
          try {
            const answer = await target.post(text, opts);
            deps.metrics?.notifications.inc({ result: 'sent' });
            return answer;
          } catch (err) {
            deps.metrics?.notifications.inc({ result: 'failed' });
            throw err;
          }
        },
      };
    },
    /** Posts what the windows hold and waits for notifications in flight, at shutdown. */
    async drain(): Promise<void> {
      draining = true;
      for (const w of [...windows.values()]) close(w);
      if (summaryTimer) {
        clearTimeout(summaryTimer);
        summaryTimer = undefined;
      }
      if (dropped.notices > 0) track(sendSummary());
      await Promise.allSettled([...pending]);
    },
  };
}

export type Notifier = ReturnType<typeof createNotifier>;
