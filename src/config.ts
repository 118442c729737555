import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parseAlertmanagerUrls } from './alertmanager/check.js';
import { parsePrometheusUrl } from './prometheus/client.js';
import { ConfigError } from './errors.js';
import { parseSlackConfig, type SlackConfig } from './slack/config.js';
import { convertStrict } from './kernel/convert.js';
import { parseDuration } from './kernel/duration.js';
import { DEFAULT_ALERT_CAPS, type AlertCaps } from './intake/caps.js';

const Bool = Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')]);
const DurationText = Type.String({ minLength: 1 });

/** Every variable the service reads, with its default. Unknown variables are ignored. */
const EnvSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0' }),
  ROLE: Type.Union([Type.Literal('api'), Type.Literal('worker'), Type.Literal('all')], { default: 'all' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  REDIS_URL: Type.String({ pattern: '^rediss?://', default: 'redis://127.0.0.1:6379' }),
  REDIS_SENTINELS: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_SENTINEL_NAME: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  REDIS_SENTINEL_PASSWORD: Type.Optional(Type.String({ minLength: 1 })),
  REDIS_ALLOW_EVICTION: Type.Union([Bool], { default: 'false' }),
  DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://', default: 'postgres://postgres@127.0.0.1:5432/remediator' }),
  QUEUE_PREFIX: Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$', default: 'remediator' }),
  MATRIX_PATH: Type.String({ minLength: 1, default: 'config/response-matrix.yaml' }),
  WEBHOOK_TOKEN: Type.Optional(Type.String({ minLength: 1 })),
  API_TOKENS: Type.Optional(Type.String({ minLength: 1 })),
  TOKENS_FILE: Type.String({ minLength: 1, default: './remediator-tokens.env' }),
  ALLOW_WEAK_TOKENS: Type.Union([Bool], { default: 'false' }),
  DRY_RUN: Type.Union([Bool], { default: 'false' }),
  CONDUIT_ADMIN_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  CONDUIT_ADMIN_KEY: Type.Optional(Type.String({ minLength: 1 })),
  TARGET_DATABASE_URL: Type.Optional(Type.String({ pattern: '^postgres(ql)?://' })),
  TARGET_REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  KUBECONFIG: Type.Optional(Type.String({ minLength: 1 })),
  NOTIFY_WEBHOOK_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  ALERTMANAGER_URL: Type.Optional(Type.String({ minLength: 1 })),
  CHECK_TIMEOUT: Type.Union([DurationText], { default: '2m' }),
  PROMETHEUS_URL: Type.Optional(Type.String({ minLength: 1 })),
  PUBLIC_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  BODY_LIMIT: Type.Integer({ minimum: 1024, default: 5 * 1024 * 1024 }),
  MAX_ALERTS_PER_MESSAGE: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 5000 }),
  MAX_LABELS: Type.Integer({ minimum: 1, maximum: 10_000, default: DEFAULT_ALERT_CAPS.maxLabels }),
  MAX_LABEL_VALUE: Type.Integer({ minimum: 64, maximum: 16 * 1024 * 1024, default: DEFAULT_ALERT_CAPS.maxValueBytes }),
  MAX_ALERT_SIZE: Type.Integer({ minimum: 4096, maximum: 64 * 1024 * 1024, default: DEFAULT_ALERT_CAPS.maxAlertBytes }),
  RUN_RETENTION: Type.Union([DurationText], { default: '90d' }),
  REQUEST_TIMEOUT: Type.Union([DurationText], { default: '30s' }),
  CONNECTION_TIMEOUT: Type.Union([DurationText], { default: '60s' }),
  KEEP_ALIVE_TIMEOUT: Type.Union([DurationText], { default: '72s' }),
  MAX_CONNECTIONS: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 1024 }),
  DOCS: Type.Union([Bool], { default: 'true' }),
  WORKER_CONCURRENCY: Type.Integer({ minimum: 1, maximum: 256, default: 4 }),
  JOB_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 50, default: 3 }),
  JOB_BACKOFF: Type.Union([DurationText], { default: '2s' }),
  REMEDIATION_TIMEOUT: Type.Union([DurationText], { default: '60s' }),
  STALLED_INTERVAL: Type.Union([DurationText], { default: '30s' }),
  SWEEP_INTERVAL: Type.Union([DurationText], { default: '5s' }),
  REQUEUE_AFTER: Type.Union([DurationText], { default: '30s' }),
  SHUTDOWN_TIMEOUT: Type.Union([DurationText], { default: '20s' }),
  INTAKE_TIMEOUT: Type.Union([DurationText], { default: '5s' }),
  PG_APPLICATION_NAME: Type.String({ pattern: '^[ -~]{1,63}$', default: 'conduit-remediator' }),
  ARCHIVE_TABLES: Type.String({ pattern: '^[a-z_][a-z0-9_]*(,[a-z_][a-z0-9_]*)*$', default: 'request_logs' }),
});
type Env = Static<typeof EnvSchema>;

export type Role = 'viewer' | 'approver' | 'admin';
export interface ApiToken {
  name: string;
  role: Role;
  token: string;
}

export interface Config {
  port: number;
  host: string;
  role: 'api' | 'worker' | 'all';
  logLevel: string;
  redisUrl: string;
  /** Redis through Sentinel: the master named `name`, found by asking `sentinels`; REDIS_URL then gives only credentials and database. */
  redisSentinel?: { sentinels: Array<{ host: string; port: number }>; name: string; password?: string };
  /** Start even when Redis may evict keys (maxmemory-policy other than noeviction), which loses queued jobs. */
  redisAllowEviction: boolean;
  databaseUrl: string;
  queuePrefix: string;
  matrixPath: string;
  webhookToken: string;
  apiTokens: ApiToken[];
  dryRun: boolean;
  conduit?: { baseUrl: string; apiKey: string };
  targetDatabaseUrl?: string;
  targetRedisUrl?: string;
  kubeconfig?: string;
  notifyWebhookUrl?: string;
  /** Alertmanager base URLs (an HA pair) asked whether an alert still fires before its run executes. */
  alertmanagerUrls: string[];
  /** How long a run retries a check (Alertmanager, Prometheus) while it gets no answer. */
  checkTimeoutMs: number;
  /** Prometheus' HTTP API, for `check.query` and `verify`. */
  prometheusUrl?: string;
  publicUrl: string;
  /** Body limit of the webhook and of /api/simulate (which takes the same messages); every other route takes at most API_BODY_LIMIT. */
  bodyLimit: number;
  /** A message with more alerts is answered 413 (Alertmanager does not retry a 4xx). */
  maxAlertsPerMessage: number;
  /** How much of an alert a run stores (MAX_LABELS, MAX_LABEL_VALUE, MAX_ALERT_SIZE). */
  alertCaps: AlertCaps;
  /** RUN_RETENTION: finished runs and resolved episodes older than this are deleted (0: kept forever). */
  runRetentionMs: number;
  /** A request must arrive whole within this (a trickled body cannot hold a socket). */
  requestTimeoutMs: number;
  /** A socket that sends nothing for this long is closed. */
  connectionTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
  /** Whether /docs (OpenAPI and its UI) is served. */
  docs: boolean;
  workerConcurrency: number;
  jobAttempts: number;
  jobBackoffMs: number;
  remediationTimeoutMs: number;
  stalledIntervalMs: number;
  sweepIntervalMs: number;
  requeueAfterMs: number;
  shutdownTimeoutMs: number;
  /** A delivery is answered within this: stored, or 503 naming the dependency that held it up. */
  intakeTimeoutMs: number;
  archiveTables: string[];
  /** `application_name` of every PostgreSQL session the service opens (its own database and the target). */
  applicationName: string;
  /** SLACK_SIGNING_SECRET and SLACK_APPROVERS: approval notices with buttons, decided at POST /integrations/slack/interactions. */
  slack?: SlackConfig;
}

/**
 * Secrets made up at start because their variable was unset and TOKENS_FILE did not hold them: the
 * service writes them to `file` (mode 0600) so a restart reuses them; they are never printed or logged.
 */
export interface GeneratedSecrets {
  webhookToken?: string;
  apiToken?: string;
  /** TOKENS_FILE, and what it already held (kept when the file is written again). */
  file: string;
  stored: Record<string, string>;
}

/** Body limit of every route but the webhook. */
export const API_BODY_LIMIT = 64 * 1024;

const ROLES: readonly Role[] = ['viewer', 'approver', 'admin'];

function parseTokens(text: string): ApiToken[] {
  const tokens = text.split(',').map((entry, i) => {
    // The token is everything after the second colon: it may contain colons itself.
    const m = /^([^:]*):([^:]*):(.*)$/.exec(entry.trim());
    if (!m) throw new ConfigError('API_TOKENS', `entry ${i + 1} is not name:role:token`);
    const [, name, role, token] = m as unknown as [string, string, string, string];
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name)) throw new ConfigError('API_TOKENS', `entry ${i + 1}: invalid name`);
    if (!ROLES.includes(role as Role)) throw new ConfigError('API_TOKENS', `entry ${i + 1}: role must be one of ${ROLES.join(', ')}`);
    if (token.length === 0) throw new ConfigError('API_TOKENS', `entry ${i + 1}: empty token`);
    return { name, role: role as Role, token };
  });
  const names = new Set(tokens.map((t) => t.name));
  if (names.size !== tokens.length) throw new ConfigError('API_TOKENS', 'token names must be unique');
  if (new Set(tokens.map((t) => t.token)).size !== tokens.length) throw new ConfigError('API_TOKENS', 'each token must be different');
  return tokens;
}

function positive(env: Env, key: keyof Env): number {
  const ms = duration(env, key);
  if (ms <= 0) throw new ConfigError(key, 'must be more than 0');
  return ms;
}

function duration(env: Env, key: keyof Env): number {
  const ms = parseDuration(String(env[key]));
  if (ms === undefined) throw new ConfigError(key, `"${String(env[key])}" is not a duration (e.g. 30s, 5m, 1h)`);
  return ms;
}

function alertmanagerUrls(text: string | undefined): string[] {
  if (text === undefined) return [];
  try {
    return parseAlertmanagerUrls(text);
  } catch (err) {
    throw new ConfigError('ALERTMANAGER_URL', (err as Error).message.replace(/^ALERTMANAGER_URL: /, ''));
  }
}

function prometheusUrl(text: string): string {
  try {
    return parsePrometheusUrl(text);
  } catch (err) {
    throw new ConfigError('PROMETHEUS_URL', (err as Error).message.replace(/^PROMETHEUS_URL: /, ''));
  }
}

const secret = () => randomBytes(24).toString('base64url');

/** REDIS_SENTINELS (`host:port,host:port`) with REDIS_SENTINEL_NAME, or nothing when unset. */
function sentinelConfig(env: Env): Pick<Config, 'redisSentinel'> {
  if (!env.REDIS_SENTINELS) {
    if (env.REDIS_SENTINEL_NAME) throw new ConfigError('REDIS_SENTINELS', 'required when REDIS_SENTINEL_NAME is set');
    return {};
  }
  if (!env.REDIS_SENTINEL_NAME)
    throw new ConfigError('REDIS_SENTINEL_NAME', 'required when REDIS_SENTINELS is set (the master name the sentinels monitor)');
  const sentinels = env.REDIS_SENTINELS.split(',').map((entry, i) => {
    const m = /^\s*(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})\s*$/.exec(entry);
    const port = Number(m?.[2]);
    if (!m || port < 1 || port > 65535) throw new ConfigError('REDIS_SENTINELS', `entry ${i + 1} ("${entry.trim()}") is not host:port`);
    return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
  });
  return {
    redisSentinel: {
      sentinels,
      name: env.REDIS_SENTINEL_NAME,
      ...(env.REDIS_SENTINEL_PASSWORD ? { password: env.REDIS_SENTINEL_PASSWORD } : {}),
    },
  };
}

/** Tokens shorter than this, or with whitespace, are refused unless ALLOW_WEAK_TOKENS=true. */
const SHORT_TOKEN = 16;

/** `KEY=value` lines of TOKENS_FILE (written by the service itself); a missing file holds nothing. */
function readTokensFile(path: string): Record<string, string> {
  if (!existsSync(path)) return {};
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('TOKENS_FILE', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const values: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*(WEBHOOK_TOKEN|API_TOKENS)=(.*?)\s*$/.exec(line);
    if (m && m[2]) values[m[1]!] = m[2];
  }
  return values;
}

/** What is weak about the tokens, or nothing. */
function weaknesses(webhookToken: string, apiTokens: readonly ApiToken[]): string[] {
  const found: string[] = [];
  const weak = (t: string) => t.length < SHORT_TOKEN || /\s/.test(t);
  if (weak(webhookToken)) found.push(`WEBHOOK_TOKEN: shorter than ${SHORT_TOKEN} characters or contains whitespace`);
  const names = apiTokens.filter((t) => weak(t.token)).map((t) => t.name);
  if (names.length > 0)
    found.push(`API_TOKENS: the tokens of ${names.join(', ')} are shorter than ${SHORT_TOKEN} characters or contain whitespace`);
  const shared = apiTokens.filter((t) => t.token === webhookToken).map((t) => t.name);
  if (shared.length > 0) found.push(`API_TOKENS: the token of ${shared.join(', ')} equals WEBHOOK_TOKEN (one secret would work for both)`);
  return found;
}

/** Reads and validates the environment. Throws `ConfigError` naming the first bad variable. */

export function loadConfig(source: NodeJS.ProcessEnv): { config: Config; generated: GeneratedSecrets; warnings: string[] } {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(EnvSchema.properties)) {
    const value = source[key];
    if (value !== undefined && value !== '')
      raw[key] = ['DRY_RUN', 'ALLOW_WEAK_TOKENS', 'DOCS', 'REDIS_ALLOW_EVICTION'].includes(key) ? value.toLowerCase() : value;
  }
  const env = convertStrict(EnvSchema, Value.Default(EnvSchema, raw)) as Env;
  const first = Value.Errors(EnvSchema, env).First();
  if (first) {
    const variable = first.path.split('/')[1] ?? 'environment';
    const shown = /TOKEN|KEY|URL|PASSWORD|SECRET|SENTINELS/.test(variable) ? '' : ` (got "${String(raw[variable])}")`;
    const choices = (EnvSchema.properties as Record<string, { anyOf?: Array<{ const?: unknown }> }>)[variable]?.anyOf;
    const message = choices ? `must be one of ${choices.map((c) => String(c.const)).join(', ')}` : first.message;
    throw new ConfigError(variable, `${message}${shown}`);
  }
  if (env.CONDUIT_ADMIN_URL && !env.CONDUIT_ADMIN_KEY) throw new ConfigError('CONDUIT_ADMIN_KEY', 'required when CONDUIT_ADMIN_URL is set');
  if (env.CONDUIT_ADMIN_KEY && !env.CONDUIT_ADMIN_URL) throw new ConfigError('CONDUIT_ADMIN_URL', 'required when CONDUIT_ADMIN_KEY is set');

  const stored = env.WEBHOOK_TOKEN && env.API_TOKENS ? {} : readTokensFile(env.TOKENS_FILE);
  const generated: GeneratedSecrets = { file: env.TOKENS_FILE, stored };
  const webhookToken = env.WEBHOOK_TOKEN ?? stored['WEBHOOK_TOKEN'] ?? (generated.webhookToken = secret());
  let apiTokens: ApiToken[];
  const tokensText = env.API_TOKENS ?? stored['API_TOKENS'];
  if (tokensText) apiTokens = parseTokens(tokensText);
  else apiTokens = [{ name: 'admin', role: 'admin', token: (generated.apiToken = secret()) }];
  const allowWeak = env.ALLOW_WEAK_TOKENS === 'true' || env.ALLOW_WEAK_TOKENS === '1';
  const weak = weaknesses(webhookToken, apiTokens);
  if (weak.length > 0 && !allowWeak) {
    throw new ConfigError(
      weak[0]!.split(':')[0]!,
      `${weak[0]!.replace(/^[A-Z_]+: /, '')}; use a longer random token (set ALLOW_WEAK_TOKENS=true to start anyway)`,
    );
  }

  const slack = parseSlackConfig(source);
  const config: Config = {
    port: env.PORT,
    host: env.HOST,
    role: env.ROLE,
    logLevel: env.LOG_LEVEL,
    redisUrl: env.REDIS_URL,
    ...sentinelConfig(env),
    redisAllowEviction: env.REDIS_ALLOW_EVICTION === 'true' || env.REDIS_ALLOW_EVICTION === '1',
    databaseUrl: env.DATABASE_URL,
    queuePrefix: env.QUEUE_PREFIX,
    matrixPath: env.MATRIX_PATH,
    webhookToken,
    apiTokens,
    dryRun: env.DRY_RUN === 'true' || env.DRY_RUN === '1',
    ...(env.CONDUIT_ADMIN_URL && env.CONDUIT_ADMIN_KEY
      ? { conduit: { baseUrl: env.CONDUIT_ADMIN_URL.replace(/\/+$/, ''), apiKey: env.CONDUIT_ADMIN_KEY } }
      : {}),
    ...(env.TARGET_DATABASE_URL ? { targetDatabaseUrl: env.TARGET_DATABASE_URL } : {}),
    ...(env.TARGET_REDIS_URL ? { targetRedisUrl: env.TARGET_REDIS_URL } : {}),
    ...(env.KUBECONFIG ? { kubeconfig: env.KUBECONFIG } : {}),
    ...(env.NOTIFY_WEBHOOK_URL ? { notifyWebhookUrl: env.NOTIFY_WEBHOOK_URL } : {}),
    alertmanagerUrls: alertmanagerUrls(env.ALERTMANAGER_URL),
    checkTimeoutMs: duration(env, 'CHECK_TIMEOUT'),
    ...(env.PROMETHEUS_URL ? { prometheusUrl: prometheusUrl(env.PROMETHEUS_URL) } : {}),
    publicUrl: (env.PUBLIC_URL ?? `http://localhost:${env.PORT}`).replace(/\/+$/, ''),
    bodyLimit: env.BODY_LIMIT,
    maxAlertsPerMessage: env.MAX_ALERTS_PER_MESSAGE,
    alertCaps: { maxLabels: env.MAX_LABELS, maxValueBytes: env.MAX_LABEL_VALUE, maxAlertBytes: env.MAX_ALERT_SIZE },
    runRetentionMs: duration(env, 'RUN_RETENTION'),
    requestTimeoutMs: positive(env, 'REQUEST_TIMEOUT'),
    connectionTimeoutMs: positive(env, 'CONNECTION_TIMEOUT'),
    keepAliveTimeoutMs: positive(env, 'KEEP_ALIVE_TIMEOUT'),
    maxConnections: env.MAX_CONNECTIONS,
    docs: env.DOCS === 'true' || env.DOCS === '1',
    workerConcurrency: env.WORKER_CONCURRENCY,
    jobAttempts: env.JOB_ATTEMPTS,
    jobBackoffMs: duration(env, 'JOB_BACKOFF'),
    remediationTimeoutMs: duration(env, 'REMEDIATION_TIMEOUT'),
    stalledIntervalMs: duration(env, 'STALLED_INTERVAL'),
    sweepIntervalMs: duration(env, 'SWEEP_INTERVAL'),
    requeueAfterMs: duration(env, 'REQUEUE_AFTER'),
    shutdownTimeoutMs: duration(env, 'SHUTDOWN_TIMEOUT'),
    intakeTimeoutMs: positive(env, 'INTAKE_TIMEOUT'),
    archiveTables: env.ARCHIVE_TABLES.split(','),
    applicationName: env.PG_APPLICATION_NAME,
    ...(slack ? { slack } : {}),
  };
  const warnings = weak.map((w) => `${w} (allowed by ALLOW_WEAK_TOKENS)`);
  if (slack && !env.NOTIFY_WEBHOOK_URL)
    warnings.push('SLACK_SIGNING_SECRET is set but NOTIFY_WEBHOOK_URL is not: no notice carries buttons');
  return { config, generated, warnings };
}
