import { once } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import type pg from 'pg';
import { createCatalogue } from '../remediations/catalogue.js';
import type { Remediation } from '../remediations/types.js';
import type { Log } from './kernel/log.js';
import { createAlertCheck } from './alertmanager/check.js';
import { createRunSilences, createSilenceClient } from './alertmanager/silences.js';
import { createAuth } from './auth.js';
import type { Config } from './config.js';
import { ConfigError } from './errors.js';
import { createChains } from './execution/chains.js';
import { createExecutor } from './execution/executor.js';
import { createReverts } from './execution/reverts.js';
import { createVerifier } from './execution/verifier.js';
import { createFiringGate, currentFiring, firingLine } from './gates/alert-firing.js';
import { createApprovals } from './gates/approval.js';
import { createConditionGate } from './gates/condition.js';
import { createCounters } from './gates/counters.js';
import { createFailureStreak } from './gates/escalation.js';
import { createKillSwitch } from './gates/kill-switch.js';
import { createIntake } from './intake/intake.js';
import { withTimeout } from './kernel/timeout.js';
import { loadMatrix } from './matrix/load.js';
import { createMatrixSource } from './matrix/source.js';
import type { Matrix } from './matrix/types.js';
import { createMetrics } from './metrics.js';
import { createPrometheusClient } from './prometheus/client.js';
import { createNotifier } from './notify/notifier.js';
import { createRunQueue } from './queue/queue.js';
import { createSweeper } from './queue/sweeper.js';
import { createRunWorker } from './queue/worker.js';
import { createDb, openDatabase } from './store/database.js';
import { createKillSwitchStore } from './store/kill-switch.js';
import { migrate } from './store/migrate.js';
import { createRunStore } from './store/runs.js';
import { buildTargets } from './targets.js';

export interface ServiceOptions {
  log: Log;
  catalogue?: ReadonlyMap<string, Remediation>;
  /** A matrix already loaded; otherwise MATRIX_PATH is read. */
  matrix?: Matrix;
  now?: () => Date;
}

/**
 * How to reach the service's Redis: REDIS_URL, or through Sentinel the master REDIS_SENTINEL_NAME
 * (REDIS_URL then gives only the master's credentials and database). ioredis asks the sentinels
 * again after a failover, so every connection (queue, worker, gate counters) follows the new master.
 */
export function redisTarget(config: Pick<Config, 'redisUrl' | 'redisSentinel'>): { url?: string; options: RedisOptions } {
  if (!config.redisSentinel) return { url: config.redisUrl, options: {} };
  const url = new URL(config.redisUrl);
  const db = Number(url.pathname.replace(/^\//, '') || '0');
  return {
    options: {
      sentinels: config.redisSentinel.sentinels,
      name: config.redisSentinel.name,
      ...(config.redisSentinel.password ? { sentinelPassword: config.redisSentinel.password } : {}),
      ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
      ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
      ...(Number.isInteger(db) ? { db } : {}),
      ...(url.protocol === 'rediss:' ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    },
  };
}

/**
 * BullMQ loses jobs when Redis evicts keys: refuse to start on a Redis whose maxmemory-policy is not
 * `noeviction`, unless REDIS_ALLOW_EVICTION. A Redis that does not answer CONFIG (a managed one may
 * rename it) gets a warning instead.
 */
async function checkEviction(redis: Redis, config: Config, log: Log): Promise<void> {
  let policy: string | undefined;
  try {
    const answer = (await redis.config('GET', 'maxmemory-policy')) as string[];
    policy = answer[1];
  } catch (err) {
    log.warn(
      { err: (err as Error).message },
      'cannot read Redis maxmemory-policy; make sure it is noeviction (BullMQ loses jobs otherwise)',
    );
    return;
  }
  if (policy === undefined || policy === 'noeviction') return;
  if (config.redisAllowEviction) {
    log.warn({ policy }, 'Redis maxmemory-policy is not noeviction: queued jobs may be evicted (allowed by REDIS_ALLOW_EVICTION)');
    return;
  }
  throw new ConfigError(
    'REDIS_URL',
    `Redis has maxmemory-policy ${policy}: it may evict queued jobs and gate counters; set maxmemory-policy noeviction (or REDIS_ALLOW_EVICTION=true to start anyway)`,
  );
}

async function connectRedis(target: { url?: string; options: RedisOptions }, opts: RedisOptions, log: Log, name: string): Promise<Redis> {
  const options = { connectionName: name, ...target.options, ...opts };
  const redis = target.url ? new Redis(target.url, options) : new Redis(options);
  let warned = false;
  redis.on('error', (err: Error) => {
    if (!warned) log.warn({ err: err.message, connection: name }, 'Redis connection error; reconnecting');
    warned = true;
  });
  // A command that timed out leaves its connection suspect (a stalled peer never closes it): make a new one.
  const send = redis.sendCommand.bind(redis);
  let dropping = false;
  redis.sendCommand = ((command: Parameters<Redis['sendCommand']>[0], stream?: Parameters<Redis['sendCommand']>[1]) => {
    const result = send(command, stream);
    void Promise.resolve(result).catch((err: Error) => {
      if (!dropping && /Command timed out/.test(err?.message ?? '')) {
        dropping = true;
        log.warn({ connection: name }, 'Redis command timed out; reconnecting');
        redis.disconnect(true);
        setTimeout(() => (dropping = false), 1000).unref();
      }
    });
    return result;
  }) as Redis['sendCommand'];
  redis.on('ready', () => {
    warned = false;
  });
  if (redis.status !== 'ready') await once(redis, 'ready');
  return redis;
}

/** Actions of `matrix` that need a URL the configuration lacks: one warning each, at start and after each reload. */
function warnUnserved(matrix: Matrix, config: Config, log: Log): void {
  const names = (pick: (a: Matrix['rules'][number]['actions'][number]) => boolean) =>
    matrix.rules.flatMap((r) => [...r.actions, ...r.onResolved].filter(pick).map((a) => `${r.name}/${a.id ?? a.key}`));
  const silencing = names((a) => a.silenceMs !== undefined);
  if (config.alertmanagerUrls.length === 0 && silencing.length > 0)
    log.warn({ actions: silencing }, 'ALERTMANAGER_URL is not set: actions with `silence` run without silencing their alert');
  const queried = names((a) => a.conditionQuery !== undefined || a.verify !== undefined);
  if (!config.prometheusUrl && queried.length > 0)
    log.warn(
      { actions: queried },
      'PROMETHEUS_URL is not set: these actions execute without their check.query, and their verify ends unverified',
    );
}

/** Everything the service runs on, wired from configuration. `close` releases it all. */
export async function createServices(config: Config, opts: ServiceOptions) {
  const { log } = opts;
  const now = opts.now ?? (() => new Date());
  const catalogue = opts.catalogue ?? createCatalogue();
  const loaded = opts.matrix ?? loadMatrix(config.matrixPath, catalogue);

  // Migrations may take long (an index on a big table); they run on a pool of their own, without the deadlines.
  const migrations = await openDatabase(config.databaseUrl, { max: 1, applicationName: config.applicationName });
  try {
    await migrate(migrations);
  } finally {
    await migrations.end().catch(() => {});
  }
  const pool: pg.Pool = await openDatabase(config.databaseUrl, {
    timeoutMs: Math.max(config.intakeTimeoutMs, 2000),
    applicationName: config.applicationName,
  });
  // Commands fail at once while Redis is down, and within `commandTimeout` while it stalls, so the
  // webhook answers 503 instead of hanging; a connection whose commands time out is dropped and made anew.
  const redisAt = redisTarget(config);
  const redis = await connectRedis(
    redisAt,
    {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 3000,
      commandTimeout: Math.min(2000, config.intakeTimeoutMs),
      keepAlive: 10_000,
      // No auto-pipelining: the intake sends a batch's gates in one call and its jobs in another, and
      // each auto-pipeline is a new ioredis Pipeline that copies every script defined on the connection
      // (BullMQ's forty-odd), more than the commands it would have saved.
      enableAutoPipelining: false,
    },
    log,
    'remediator',
  );
  try {
    await checkEviction(redis, config, log);
  } catch (err) {
    redis.disconnect();
    await pool.end().catch(() => {});
    throw err;
  }

  const db = createDb(pool);
  const metrics = createMetrics();
  const matrix = createMatrixSource(loaded, {
    path: config.matrixPath,
    catalogue,
    metrics,
    log,
    now,
    loaded: (m) => warnUnserved(m, config, log),
  });
  const runs = createRunStore(db, log);
  const counters = createCounters(redis, config.queuePrefix, () => matrix.current.globalLimit);
  const streak = createFailureStreak(redis, counters.key);
  const queue = createRunQueue(redis, { prefix: config.queuePrefix, attempts: config.jobAttempts, backoffMs: config.jobBackoffMs });
  const killSwitch = createKillSwitch({ store: createKillSwitchStore(db), queue, log });
  const built = await buildTargets(config);
  const alertCheck = config.alertmanagerUrls.length > 0 ? createAlertCheck({ urls: config.alertmanagerUrls }) : undefined;
  const silences = createRunSilences({
    client: alertCheck ? createSilenceClient({ urls: config.alertmanagerUrls, timeoutMs: config.checkTimeoutMs }) : undefined,
    runs,
    log,
    publicUrl: config.publicUrl,
  });
  warnUnserved(matrix.current, config, log);
  const prometheus = config.prometheusUrl ? createPrometheusClient({ url: config.prometheusUrl }) : undefined;
  const notifier = createNotifier({
    target: built.targets.notify,
    runs,
    log,
    metrics,
    interactive: config.slack !== undefined,
    publicUrl: config.publicUrl,
    ...(alertCheck
      ? { firingLine: async (run) => (run.phase === 'firing' ? firingLine(await currentFiring(alertCheck, run)) : undefined) }
      : {}),
  });
  // What every place that decides new runs (intake, chains moving on, reverts) decides them with.
  const deciding = { matrix, runs, counters, queue, metrics, notifier, log, dryRun: config.dryRun, configured: built.configured, now };
  const chains = createChains(deciding);
  const intake = createIntake({ ...deciding, timeoutMs: config.intakeTimeoutMs, chains, caps: config.alertCaps });
  const approvals = createApprovals({ runs, queue, metrics, notifier, chains, log });
  const auth = createAuth(config.webhookToken, config.apiTokens);
  const shutdown = new AbortController();
  const confirmFiring = createFiringGate({
    check: alertCheck,
    timeoutMs: config.checkTimeoutMs,
    addEvent: runs.addEvent,
    shutdown: shutdown.signal,
  });
  const checkCondition = createConditionGate({
    prometheus,
    timeoutMs: config.checkTimeoutMs,
    addEvent: runs.addEvent,
    shutdown: shutdown.signal,
    observe: (run, result) => metrics.checks.inc({ remediation: run.remediation, result }),
  });
  const executor = createExecutor({
    runs,
    chains,
    confirmFiring,
    checkCondition,
    silences,
    counters,
    streak,
    queue,
    catalogue,
    // notify.webhook posts share the notices' cap and windows (a flood of alerts is a handful of posts).
    targets: built.targets.notify ? { ...built.targets, notify: notifier.webhookTarget() } : built.targets,
    configured: built.configured,
    metrics,
    notifier,
    log,
    timeoutMs: config.remediationTimeoutMs,
    shutdown: shutdown.signal,
    now,
  });
  const reverts = createReverts({ ...deciding, catalogue });
  const verifier = createVerifier({ runs, prometheus, chains, streak, reverts, metrics, notifier, log, silences });
  const sweeper = createSweeper({
    runs,
    chains,
    verifier,
    reverts,
    approvals,
    killSwitch,
    queue,
    log,
    intervalMs: config.sweepIntervalMs,
    requeueAfterMs: config.requeueAfterMs,
    retentionMs: config.runRetentionMs,
  });

  let workerRedis: Redis | undefined;
  let worker: ReturnType<typeof createRunWorker> | undefined;
  if (config.role !== 'api') {
    workerRedis = await connectRedis(redisAt, { maxRetriesPerRequest: null }, log, 'remediator-worker');
    worker = createRunWorker(workerRedis, executor, log, {
      prefix: config.queuePrefix,
      concurrency: config.workerConcurrency,
      stalledIntervalMs: config.stalledIntervalMs,
    });
  }
  sweeper.start();

  metrics.bindSources({
    pendingApprovals: () => runs.countByStatus('pending_approval'),
    queueCounts: () => withTimeout(queue.counts(), 1000, 'queue counts'),
    paused: async () => (await killSwitch.state()).paused,
  });

  async function ready(): Promise<{ postgres: boolean; redis: boolean }> {
    const [postgres, redisOk] = await Promise.all([
      withTimeout(pool.query('SELECT 1'), 1000, 'postgres').then(
        () => true,
        () => false,
      ),
      withTimeout(redis.ping(), 1000, 'redis').then(
        () => true,
        () => false,
      ),
    ]);
    return { postgres, redis: redisOk };
  }

  /** Stops taking jobs, lets running ones finish within the worker's close, then releases connections. */
  async function close(): Promise<void> {
    await sweeper.stop();
    if (worker) {
      const timer = setTimeout(() => shutdown.abort('shutdown'), config.shutdownTimeoutMs);
      await worker.close().catch(() => {});
      clearTimeout(timer);
    }
    await notifier.drain();
    await queue.close().catch(() => {});
    redis.disconnect();
    workerRedis?.disconnect();
    await built.close();
    await pool.end().catch(() => {});
  }

  return {
    config,
    log,
    matrix,
    catalogue,
    pool,
    redis,
    metrics,
    runs,
    killSwitch,
    counters,
    streak,
    queue,
    notifier,
    alertCheck,
    prometheus,
    chains,
    verifier,
    reverts,
    intake,
    approvals,
    auth,
    executor,
    sweeper,
    worker,
    targets: built,
    ready,
    close,
  };
}

export type Services = Awaited<ReturnType<typeof createServices>>;
