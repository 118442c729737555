/**
 * Silences in Alertmanager (API v2) while a remediation works on an alert (`silence: 30m` on an action).
 *
 * - `POST <url>/api/v2/silences` with one matcher per alert label (`isEqual: true`, `isRegex: false`),
 *   `startsAt` now, `endsAt` now plus the action's `silence`, `createdBy: conduit-remediator` and a comment
 *   naming the run (with a link to it). Alertmanager answers `{"silenceID": "<uuid>"}`; a `startsAt` a little
 *   in the past is moved to its own now.
 * - `DELETE <url>/api/v2/silence/<id>` expires one: the silence stays listed with `status.state: expired`.
 *   Expiring an expired silence answers 200 again; an unknown id answers 404 (0.25: 500 `silence not found`).
 *
 * With several URLs (an HA cluster, which gossips silences) a silence is created on the first member that
 * answers, in order, and expired on the member that created it first, then on the others. Every request
 * refuses redirects, and all of them together are bounded by one deadline.
 *
 * `createRunSilences` is what the executor and the verifier use: it never throws. A silence created, one
 * that could not be, and one expired early are events of the run's timeline (`silenced`, `silence_failed`,
 * `silence_expired`, `silence_expire_failed`), and the ids of a run's silences are read back from them.
 */
import type { Log } from '../kernel/log.js';
import { isRecord, networkError, oneLine, parseBaseUrl } from '../kernel/http.js';
import type { Run, RunEvent } from '../schemas/runs.js';

export const SILENCE_CREATED_BY = 'conduit-remediator';

/** The timeline events of a run's silence. */
export const SILENCE_EVENTS = {
  /** A silence was created: `silenceId`, `alertmanager`, `startsAt`, `endsAt`, `durationMs`. */
  created: 'silenced',
  /** No silence could be created (the remediation went ahead): `errors`, `durationMs`. */
  failed: 'silence_failed',
  /** A silence was expired early: `silenceId`, `alertmanager`, `reason` (the run's status, or `unverified`). */
  expired: 'silence_expired',
  /** Expiring it early failed; it runs out at its `endsAt`: `silenceId`, `reason`, `errors`. */
  expireFailed: 'silence_expire_failed',
} as const;

export interface SilenceMatcher {
  name: string;
  value: string;
  isRegex: false;
  isEqual: true;
}

export interface NewSilence {
  labels: Readonly<Record<string, string>>;
  durationMs: number;
  comment: string;
}

export interface CreatedSilence {
  id: string;
  /** The Alertmanager base URL that created it. */
  alertmanager: string;
  startsAt: string;
  endsAt: string;
}

/** No Alertmanager created (or expired) the silence. `errors` has one line per URL, e.g. `http://a:9093: ECONNREFUSED`. */
export class SilenceError extends Error {
  override readonly name = 'SilenceError';
  readonly errors: string[];

  constructor(what: string, errors: string[]) {
    super(`${what}: ${errors.join('; ')}`);
    this.errors = errors;
  }
}

export interface SilenceClient {
  readonly urls: readonly string[];
  /** Creates the silence on the first Alertmanager that answers; rejects with `SilenceError` when none did. */
  create(silence: NewSilence, signal?: AbortSignal): Promise<CreatedSilence>;
  /**
   * Expires a silence, asking `first` (the Alertmanager that created it) before the others. `found: false`:
   * every Alertmanager answered that it has no such silence. Rejects with `SilenceError` when none answered.
   */
  expire(id: string, first?: string, signal?: AbortSignal): Promise<{ alertmanager: string; found: boolean }>;
}

const DEFAULT_TIMEOUT_MS = 5000;

/** The silence's matchers: every label of the alert, equal. Empty values are left out (a label with one is no label). */
export function silenceMatchers(labels: Readonly<Record<string, string>>): SilenceMatcher[] {
  return Object.entries(labels)
    .filter(([, value]) => value !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => ({ name, value, isRegex: false, isEqual: true }));
}

type Answer = { ok: true; status: number; body: string } | { ok: false; error: string };

export function createSilenceClient(opts: { urls: readonly string[]; timeoutMs?: number; now?: () => Date }): SilenceClient {
  const urls = Object.freeze([...new Set(opts.urls.map((url, i) => parseBaseUrl(url.trim(), `Alertmanager URL ${i + 1}`)))]);
  if (urls.length === 0) throw new Error('createSilenceClient: at least one Alertmanager URL is required');
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error('createSilenceClient: timeoutMs must be a positive number');
  const now = opts.now ?? (() => new Date());

  /**
   * Asks each of `order` in turn until `done` accepts an answer. Each gets an equal share of what is left of the
   * deadline, so a member that hangs does not leave the next one without time.
   */
  async function inTurn<T>(
    order: readonly string[],
    request: (base: string) => { path: string; init: RequestInit },
    done: (base: string, answer: { status: number; body: string }) => { value: T } | { error: string },
    signal: AbortSignal | undefined,
  ): Promise<{ value: T } | { errors: string[] }> {
    const deadline = Date.now() + timeoutMs;
    const errors: string[] = [];
    for (const [i, base] of order.entries()) {
      signal?.throwIfAborted();
      const left = deadline - Date.now();
      if (left <= 0) {
        errors.push(`${base}: not asked, no time left within ${timeoutMs} ms`);
        continue;
      }
      const share = Math.max(1, Math.floor(left / (order.length - i)));
      const { path, init } = request(base);
      const answer = await send(`${base}${path}`, init, share, signal);
      if (!answer.ok) {
        errors.push(`${base}: ${answer.error}`);
        continue;
      }
      const result = done(base, answer);
      if ('value' in result) return result;
      errors.push(`${base}: ${result.error}`);
    }
    signal?.throwIfAborted();
    return { errors };
  }

  async function send(url: string, init: RequestInit, ms: number, signal: AbortSignal | undefined): Promise<Answer> {
    const timeout = AbortSignal.timeout(ms);
    try {
      const res = await fetch(url, {
        ...init,
        headers: { accept: 'application/json', ...(init.body ? { 'content-type': 'application/json' } : {}) },
        redirect: 'error',
        signal: signal ? AbortSignal.any([timeout, signal]) : timeout,
      });
      return { ok: true, status: res.status, body: await res.text() };
    } catch (err) {
      if (signal?.aborted) return { ok: false, error: 'aborted' };
      if (timeout.aborted) return { ok: false, error: `no answer within ${ms} ms` };
      return { ok: false, error: networkError(err) };
    }
  }

  const httpError = (status: number, body: string) => {
    const said = oneLine(body.replace(/^"|"\s*$/g, ''));
    return `HTTP ${status}${said ? `: ${said}` : ''}`;
  };

  return {
    urls,
    async create(silence, signal) {
      if (!Number.isInteger(silence.durationMs) || silence.durationMs <= 0) throw new TypeError('a silence lasts more than 0 ms');
      const matchers = silenceMatchers(silence.labels);
      if (matchers.length === 0) throw new SilenceError('no silence created', ['the alert has no labels to match']);
      const start = now();
      const startsAt = start.toISOString();
      const endsAt = new Date(start.getTime() + silence.durationMs).toISOString();
      const body = JSON.stringify({ matchers, startsAt, endsAt, createdBy: SILENCE_CREATED_BY, comment: silence.comment });
      const result = await inTurn<CreatedSilence>(
        urls,
        () => ({ path: '/api/v2/silences', init: { method: 'POST', body } }),
        (base, answer) => {
          if (answer.status < 200 || answer.status > 299) return { error: httpError(answer.status, answer.body) };
          let parsed: unknown;
          try {
            parsed = JSON.parse(answer.body);
          } catch {
            return { error: 'answer is not JSON' };
          }
          const id = isRecord(parsed) ? parsed['silenceID'] : undefined;
          if (typeof id !== 'string' || id === '') return { error: 'answer has no silenceID' };
          return { value: { id, alertmanager: base, startsAt, endsAt } };
        },
        signal,
      );
      if ('value' in result) return result.value;
      throw new SilenceError('no silence created', result.errors);
    },

    async expire(id, first, signal) {
      const order = first && urls.includes(first) ? [first, ...urls.filter((u) => u !== first)] : urls;
      const notFound: string[] = [];
      const result = await inTurn<string>(
        order,
        () => ({ path: `/api/v2/silence/${encodeURIComponent(id)}`, init: { method: 'DELETE' } }),
        (base, answer) => {
          if (answer.status >= 200 && answer.status <= 299) return { value: base };
          // Another member may have it yet (gossip is not instant): this answer only counts when none has.
          if (answer.status === 404 || /silence not found/i.test(answer.body)) notFound.push(base);
          return { error: httpError(answer.status, answer.body) };
        },
        signal,
      );
      if ('value' in result) return { alertmanager: result.value, found: true };
      if (notFound.length === order.length) return { alertmanager: notFound[0]!, found: false };
      throw new SilenceError(`silence ${id} not expired`, result.errors);
    },
  };
}

/** A silence of a run, as its `silenced` event records it. */
export interface RunSilence {
  id: string;
  alertmanager: string;
  endsAt: string;
}

/** The silences of a run's timeline that were created and not expired early since, oldest first. */
export function openSilences(events: readonly RunEvent[]): RunSilence[] {
  const open = new Map<string, RunSilence>();
  for (const event of events) {
    const detail = event.detail as Record<string, unknown>;
    const id = detail['silenceId'];
    if (typeof id !== 'string') continue;
    if (event.type === SILENCE_EVENTS.created) {
      const { alertmanager, endsAt } = detail;
      open.set(id, { id, alertmanager: String(alertmanager ?? ''), endsAt: String(endsAt ?? '') });
    } else if (event.type === SILENCE_EVENTS.expired) open.delete(id);
  }
  return [...open.values()];
}

export interface RunSilencesDeps {
  /** Absent when ALERTMANAGER_URL is unset: a run that asks for a silence records that it got none. */
  client: SilenceClient | undefined;
  runs: {
    addEvent(runId: string, type: string, detail: Record<string, unknown>): Promise<void>;
    get(id: string, opts?: { events?: boolean }): Promise<Run | null>;
  };
  log: Log;
  /** The service's external URL: the silence's comment links the run's page under it. */
  publicUrl?: string;
  now?: () => Date;
}

/** A run's silence from its action's `silence` (kept in its gates): created as it starts, expired early when it did not fix the alert. */
export function createRunSilences(deps: RunSilencesDeps) {
  const now = deps.now ?? (() => new Date());

  const comment = (run: Run) =>
    `Silenced by ${SILENCE_CREATED_BY} while run ${run.id} (rule ${run.rule}, remediation ${run.remediation}) works on the alert` +
    (deps.publicUrl ? `: ${deps.publicUrl}/api/runs/${run.id}` : '');

  /** Records an event; a timeline that cannot be written is logged, never thrown. */
  async function record(run: Run, type: string, detail: Record<string, unknown>): Promise<void> {
    await deps.runs.addEvent(run.id, type, detail).catch((err: Error) => {
      deps.log.warn({ runId: run.id, event: type, detail, err: err.message }, 'could not record a silence event');
    });
  }

  async function silencesOf(run: Run): Promise<RunSilence[]> {
    const read = await deps.runs.get(run.id);
    return openSilences(read?.events ?? []);
  }

  /**
   * Silences the run's alert for its `silenceMs`, unless an earlier attempt's silence still holds (a retry, a
   * takeover). Never throws: without a silence the remediation goes ahead, with `silence_failed` in the timeline.
   * `created`: made by this call (not kept from an earlier attempt).
   */
  async function silence(run: Run, signal?: AbortSignal): Promise<{ silence: RunSilence; created: boolean } | null> {
    const durationMs = run.gates.silenceMs;
    if (durationMs === undefined || run.dryRun) return null;
    try {
      const held = (await silencesOf(run)).filter((s) => Date.parse(s.endsAt) > now().getTime()).at(-1);
      if (held) return { silence: held, created: false };
      if (!deps.client) throw new SilenceError('no silence created', ['ALERTMANAGER_URL is not set']);
      const created = await deps.client.create({ labels: run.alert.labels, durationMs, comment: comment(run) }, signal);
      await record(run, SILENCE_EVENTS.created, {
        silenceId: created.id,
        alertmanager: created.alertmanager,
        startsAt: created.startsAt,
        endsAt: created.endsAt,
        durationMs,
      });
      return { silence: { id: created.id, alertmanager: created.alertmanager, endsAt: created.endsAt }, created: true };
    } catch (err) {
      const errors = err instanceof SilenceError ? err.errors : [(err as Error)?.message ?? String(err)];
      deps.log.warn(
        { runId: run.id, rule: run.rule, remediation: run.remediation, errors },
        'alert not silenced; the remediation proceeds',
      );
      await record(run, SILENCE_EVENTS.failed, { errors, durationMs });
      return null;
    }
  }

  /**
   * Expires early the run's silences still open (or only `which`), so that on-call is paged for what the
   * remediation did not fix. `reason`: the run's status, or `unverified`. Never throws.
   */
  async function expire(run: Run, reason: string, which?: readonly RunSilence[]): Promise<void> {
    if (run.gates.silenceMs === undefined) return;
    let open: readonly RunSilence[];
    try {
      open = which ?? (await silencesOf(run));
    } catch (err) {
      deps.log.warn({ runId: run.id, reason, err: (err as Error).message }, "could not read the run's silences to expire them");
      return;
    }
    for (const s of open) {
      try {
        if (!deps.client) throw new SilenceError(`silence ${s.id} not expired`, ['ALERTMANAGER_URL is not set']);
        const done = await deps.client.expire(s.id, s.alertmanager || undefined);
        await record(run, SILENCE_EVENTS.expired, {
          silenceId: s.id,
          alertmanager: done.alertmanager,
          reason,
          ...(done.found ? {} : { found: false }),
        });
      } catch (err) {
        const errors = err instanceof SilenceError ? err.errors : [(err as Error)?.message ?? String(err)];
        deps.log.warn({ runId: run.id, silenceId: s.id, reason, errors }, 'silence not expired; it runs out at its endsAt');
        await record(run, SILENCE_EVENTS.expireFailed, { silenceId: s.id, reason, errors, endsAt: s.endsAt });
      }
    }
  }

  return { silence, expire };
}

export type RunSilences = ReturnType<typeof createRunSilences>;
