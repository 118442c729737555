import type { Static, TSchema } from '@sinclair/typebox';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import type { Log } from '../src/kernel/log.js';

/** Which configured target a remediation acts on; a run whose target is missing fails with `target_not_configured`. */
export type TargetKind = 'conduit' | 'targetDatabase' | 'targetRedis' | 'kubernetes' | 'notify' | 'none';

export interface ConduitTarget {
  /** Base URL of Conduit's Admin API, without a trailing slash. */
  baseUrl: string;
  /** Sent as `X-API-Key`. Never logged. */
  apiKey: string;
}

export interface NotifyOptions {
  signal: AbortSignal;
  timeoutMs: number;
  /** The run posting and its rule: the service folds a rule's posts within a short window into one. */
  runId?: string;
  rule?: string;
}

/** The webhook's HTTP status, or `folded`: the text goes with others of its rule in one message shortly. */
export type NotifyAnswer = { status: number } | { folded: true };

export interface NotifyTarget {
  /** Posts `{ "text": ... }` to the Slack-compatible webhook, whose URL (a secret) the target keeps to itself. */
  post(text: string, opts: NotifyOptions): Promise<NotifyAnswer>;
}

/** Where the service keeps its own state; host and port as DATABASE_URL names them, for messages. */
export interface OwnDatabase {
  name: string;
  host: string;
  port: number;
}

/**
 * A Kubernetes configuration loaded on first use: the client library is imported then, not at start.
 * Loads once; every later call answers the same configuration (or the same failure).
 */
export interface KubeConfigSource {
  lazy: true;
  load(): Promise<KubeConfig>;
}

/** The clients of everything a remediation may act on. Built once per process from configuration. */
export interface Targets {
  conduit?: ConduitTarget;
  targetDatabase?: pg.Pool;
  targetRedis?: Redis;
  /** A loaded configuration (tests), or one loaded on the first Kubernetes run (the service). */
  kubernetes?: KubeConfig | KubeConfigSource;
  notify?: NotifyTarget;
  settings: {
    /** Tables `postgres.archive-old-data` may touch (ARCHIVE_TABLES). */
    archiveTables: string[];
    /** The service's own Redis key prefix (QUEUE_PREFIX): `redis.flush-cache` never touches it. */
    queuePrefix: string;
    /**
     * `application_name` of every PostgreSQL session the service opens (PG_APPLICATION_NAME):
     * `postgres.kill-idle-connections` never terminates a session that carries it.
     */
    applicationName?: string;
    /**
     * The service's own database (DATABASE_URL): `postgres.*` refuses to act on a database of this
     * name on any target server, since no URL proves two servers apart (aliases, PgBouncer).
     */
    ownDatabase?: OwnDatabase;
  };
}

export interface ExecutionContext {
  runId: string;
  /** The matrix rule the run belongs to. */
  rule?: string;
  /** Aborted when the run times out or the process shuts down: stop between steps and pass it to every request. */
  signal: AbortSignal;
  /** Per-request timeout in milliseconds, for clients that take one. */
  timeoutMs: number;
  targets: Targets;
  log: Log;
  now(): Date;
}

export interface Remediation<S extends TSchema = TSchema> {
  /** Stable name used in the matrix, e.g. `conduit.disable-provider`. */
  name: string;
  /** One line: what it does. */
  summary: string;
  /** The runbook step it automates. */
  runbookStep: string;
  /** TypeBox schema of the params; rendered params are validated against it before anything runs. */
  params: S;
  requires: TargetKind;
  /**
   * Params whose text is written in a markup (`slack`: Slack mrkdwn), by name: a value the matrix
   * templates into one from the alert (`{{ labels.X }}`, `{{ annotations.X }}`, `{{ after.* }}`) is
   * escaped for it (`&`, `<`, `>` as entities, on one line), the matrix author's own text is kept.
   */
  textParams?: Readonly<Record<string, 'slack'>>;
  /** The key cooldowns and rate limits count against, e.g. `conduit/provider/openai`. */
  target(params: Static<S>): string;
  /** Exactly what `execute` would do, for dry runs and simulation. Pure: no I/O. */
  plan(params: Static<S>): string;
  /**
   * Idempotent: running it twice does no more harm than once. Honours `ctx.signal`. The result is
   * stored on the run; the catalogue's remediations return a `RemediationResult`.
   */
  execute(params: Static<S>, ctx: ExecutionContext): Promise<Record<string, unknown>>;
  /**
   * How to undo a run of it, from its params and what it recorded (`result`): the inverse remediation
   * and its params, which carry the state the run left behind so the revert refuses (`changed_since`)
   * when someone changed it since. Null when the run changed nothing. Absent: it cannot be reverted.
   */
  revert?(params: Static<S>, result: Record<string, unknown>): RevertStep | null;
}

/** A revert: which remediation undoes a run, with which params. */
export interface RevertStep {
  remediation: string;
  params: Record<string, unknown>;
}

/**
 * What a remediation of the catalogue returns: its figures, and `summary`, one past-tense sentence
 * saying what was actually done (or that nothing needed doing), for people and for notices templated
 * from a predecessor's result (`{{ after.result.summary }}`).
 */
export type RemediationResult = Record<string, unknown> & { summary: string };

/** Keeps the params type of each module while the catalogue holds them as `Remediation`. */
export function defineRemediation<S extends TSchema>(r: Remediation<S>): Remediation {
  return r as unknown as Remediation;
}

export type RemediationErrorCode =
  | 'target_not_configured'
  | 'invalid_params'
  | 'refused'
  | 'not_found'
  | 'unauthorized'
  | 'conflict'
  | 'target_error'
  | 'timeout'
  | 'aborted'
  /** A revert found its target changed since the run it undoes: someone else's change is never undone. */
  | 'changed_since'
  /** The target answered, and its answer is that the check failed (a provider's connection test). */
  | 'test_failed'
  /** Not attempted: over a cap of the service's own (notices a minute). */
  | 'rate_limited';

/**
 * A failure with a stable code. `retryable` failures (5xx, network errors, timeouts, conflicts)
 * are retried with backoff; the others fail the run at once.
 */
export class RemediationError extends Error {
  readonly code: RemediationErrorCode;
  readonly retryable: boolean;
  readonly detail: Record<string, unknown> | undefined;

  constructor(
    code: RemediationErrorCode,
    message: string,
    opts: { retryable?: boolean; detail?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RemediationError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
    this.detail = opts.detail;
  }
}

/** Throws `aborted` when the signal has fired: call between batches and steps. */
export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) {
    throw new RemediationError('aborted', `aborted: ${String(signal.reason ?? 'signal')}`, { retryable: true });
  }
}
