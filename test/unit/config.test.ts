import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

const TOKEN = 'webhook-token-0123456789abcdef';
/** A TOKENS_FILE that does not exist: nothing stored, whatever the working directory holds. */
const NO_FILE = join(tmpdir(), `remediator-no-tokens-${process.pid}.env`);
const API = 'alice:admin:alice-token-0123456789';

/** Expects loadConfig to refuse `env` naming `variable`; returns the error. */
function refused(env: NodeJS.ProcessEnv, variable: string): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.variable, variable, err.message);
    assert.ok(err.message.startsWith(`${variable}: `), err.message);
    return err;
  }
  return assert.fail(`expected ${JSON.stringify(env)} to be refused`);
}

function assertNoSecret(err: Error, secret: string): void {
  assert.ok(!err.message.includes(secret), `the secret leaked into: ${err.message}`);
  assert.ok(!String(err.stack).includes(secret), 'the secret leaked into the stack');
}

test('defaults as the spec names them', () => {
  const { config } = loadConfig({});
  assert.equal(config.port, 8080);
  assert.equal(config.host, '0.0.0.0');
  assert.equal(config.role, 'all');
  assert.equal(config.redisUrl, 'redis://127.0.0.1:6379');
  assert.equal(config.databaseUrl, 'postgres://postgres@127.0.0.1:5432/remediator');
  assert.equal(config.queuePrefix, 'remediator');
  assert.equal(config.matrixPath, 'config/response-matrix.yaml');
  assert.equal(config.dryRun, false);
  assert.equal(config.conduit, undefined);
  assert.equal(config.targetDatabaseUrl, undefined);
  assert.equal(config.targetRedisUrl, undefined);
  assert.equal(config.kubeconfig, undefined);
  assert.equal(config.notifyWebhookUrl, undefined);
  assert.equal(config.publicUrl, 'http://localhost:8080');
  assert.equal(config.jobBackoffMs, 2000);
  assert.equal(config.remediationTimeoutMs, 60_000);
});

test('an empty variable counts as unset', () => {
  const { config } = loadConfig({ PORT: '', ROLE: '', DRY_RUN: '' });
  assert.equal(config.port, 8080);
  assert.equal(config.role, 'all');
  assert.equal(config.dryRun, false);
});

test('variables override the defaults', () => {
  const { config } = loadConfig({
    PORT: '9090',
    HOST: '127.0.0.1',
    ROLE: 'worker',
    REDIS_URL: 'rediss://cache.internal:6380/2',
    DATABASE_URL: 'postgresql://svc:pw@db.internal/rem',
    QUEUE_PREFIX: 'rem-test',
    MATRIX_PATH: '/etc/remediator/matrix.yaml',
    DRY_RUN: 'true',
    CONDUIT_ADMIN_URL: 'http://conduit-admin:5002/',
    CONDUIT_ADMIN_KEY: 'admin-key',
    TARGET_DATABASE_URL: 'postgres://conduit@pg/conduit',
    TARGET_REDIS_URL: 'redis://redis:6379',
    KUBECONFIG: '/home/me/.kube/config',
    NOTIFY_WEBHOOK_URL: 'https://hooks.example/T000/B000/XXX',
    JOB_BACKOFF: '1m30s',
    ARCHIVE_TABLES: 'request_logs,audit_events',
  });
  assert.equal(config.port, 9090);
  assert.equal(config.host, '127.0.0.1');
  assert.equal(config.role, 'worker');
  assert.equal(config.redisUrl, 'rediss://cache.internal:6380/2');
  assert.equal(config.databaseUrl, 'postgresql://svc:pw@db.internal/rem');
  assert.equal(config.queuePrefix, 'rem-test');
  assert.equal(config.matrixPath, '/etc/remediator/matrix.yaml');
  assert.equal(config.dryRun, true);
  assert.deepEqual(config.conduit, { baseUrl: 'http://conduit-admin:5002', apiKey: 'admin-key' });
  assert.equal(config.targetDatabaseUrl, 'postgres://conduit@pg/conduit');
  assert.equal(config.targetRedisUrl, 'redis://redis:6379');
  assert.equal(config.kubeconfig, '/home/me/.kube/config');
  assert.equal(config.notifyWebhookUrl, 'https://hooks.example/T000/B000/XXX');
  assert.equal(config.publicUrl, 'http://localhost:9090');
  assert.equal(config.jobBackoffMs, 90_000);
  assert.deepEqual(config.archiveTables, ['request_logs', 'audit_events']);
});

test('DRY_RUN accepts true/false/1/0', () => {
  assert.equal(loadConfig({ DRY_RUN: 'true' }).config.dryRun, true);
  assert.equal(loadConfig({ DRY_RUN: '1' }).config.dryRun, true);
  assert.equal(loadConfig({ DRY_RUN: 'false' }).config.dryRun, false);
  assert.equal(loadConfig({ DRY_RUN: '0' }).config.dryRun, false);
  const err = refused({ DRY_RUN: 'yes' }, 'DRY_RUN');
  assert.match(err.message, /true, false, 1, 0/);
});

test('PUBLIC_URL loses its trailing slash', () => {
  assert.equal(loadConfig({ PUBLIC_URL: 'https://remediator.example/' }).config.publicUrl, 'https://remediator.example');
});

test('unset tokens are generated and reported once in `generated`', () => {
  const { config, generated } = loadConfig({ TOKENS_FILE: NO_FILE });
  assert.equal(generated.file, NO_FILE);
  assert.ok(generated.webhookToken, 'a webhook token is generated');
  assert.ok(generated.apiToken, 'an admin API token is generated');
  assert.equal(config.webhookToken, generated.webhookToken);
  assert.ok(config.webhookToken.length >= 16);
  assert.deepEqual(config.apiTokens, [{ name: 'admin', role: 'admin', token: generated.apiToken }]);
  assert.ok(generated.apiToken.length >= 16);
  assert.notEqual(generated.apiToken, generated.webhookToken);

  const again = loadConfig({ TOKENS_FILE: NO_FILE });
  assert.notEqual(again.generated.webhookToken, generated.webhookToken, 'generated tokens are random');
  assert.notEqual(again.generated.apiToken, generated.apiToken, 'generated tokens are random');
});

test('set tokens are used and nothing is generated', () => {
  const { config, generated } = loadConfig({
    WEBHOOK_TOKEN: TOKEN,
    API_TOKENS: ` ${API}, bob:approver:bob-token-0123456789ab ,carol:viewer:carol-token-012345678`,
  });
  assert.equal(generated.webhookToken, undefined);
  assert.equal(generated.apiToken, undefined);
  assert.equal(config.webhookToken, TOKEN);
  assert.deepEqual(config.apiTokens, [
    { name: 'alice', role: 'admin', token: 'alice-token-0123456789' },
    { name: 'bob', role: 'approver', token: 'bob-token-0123456789ab' },
    { name: 'carol', role: 'viewer', token: 'carol-token-012345678' },
  ]);
});

test('only the unset token is generated', () => {
  const a = loadConfig({ WEBHOOK_TOKEN: TOKEN, TOKENS_FILE: NO_FILE });
  assert.equal(a.generated.webhookToken, undefined);
  assert.ok(a.generated.apiToken);
  assert.equal(a.config.webhookToken, TOKEN);
  const b = loadConfig({ API_TOKENS: API, TOKENS_FILE: NO_FILE });
  assert.equal(b.generated.apiToken, undefined);
  assert.ok(b.generated.webhookToken);
  assert.deepEqual(
    b.config.apiTokens.map((t) => t.name),
    ['alice'],
  );
});

test('ROLE must be api, worker or all', () => {
  const err = refused({ ROLE: 'bogus' }, 'ROLE');
  assert.match(err.message, /api, worker, all/);
  assert.match(err.message, /bogus/);
  for (const role of ['api', 'worker', 'all'] as const) assert.equal(loadConfig({ ROLE: role }).config.role, role);
});

test('PORT must be an integer port number', () => {
  assert.match(refused({ PORT: 'abc' }, 'PORT').message, /abc/);
  refused({ PORT: '70000' }, 'PORT');
  refused({ PORT: '-1' }, 'PORT');
  refused({ PORT: '8080abc' }, 'PORT');
});

test('malformed URLs are refused naming their variable, without their value', () => {
  const secret = 's3cr3t-pa55word';
  for (const variable of [
    'REDIS_URL',
    'DATABASE_URL',
    'TARGET_DATABASE_URL',
    'TARGET_REDIS_URL',
    'NOTIFY_WEBHOOK_URL',
    'CONDUIT_ADMIN_URL',
  ]) {
    const err = refused({ [variable]: `mysql://user:${secret}@db.example/x`, CONDUIT_ADMIN_KEY: 'k' }, variable);
    assertNoSecret(err, secret);
  }
});

test('API_TOKENS entries that are not name:role:token are refused', () => {
  for (const value of ['alice', 'alice:admin', `${API},,bob:viewer:bob-token-0123456789ab`]) {
    const err = refused({ API_TOKENS: value }, 'API_TOKENS');
    assert.match(err.message, /name:role:token/);
  }
});

test('API_TOKENS: an unknown role is refused and the roles listed, without the token', () => {
  const secret = 'root-token-0123456789abcdef';
  const err = refused({ API_TOKENS: `${API},mallory:root:${secret}` }, 'API_TOKENS');
  assert.match(err.message, /entry 2/);
  assert.match(err.message, /viewer, approver, admin/);
  assertNoSecret(err, secret);
});

test('tokens kept in TOKENS_FILE are reused; what the environment sets wins', () => {
  const dir = mkdtempSync(join(tmpdir(), 'remediator-tokens-'));
  try {
    const file = join(dir, 'tokens.env');
    writeFileSync(file, `# generated\nWEBHOOK_TOKEN=${TOKEN}\nAPI_TOKENS=${API}\n`);
    const stored = loadConfig({ TOKENS_FILE: file });
    assert.equal(stored.config.webhookToken, TOKEN);
    assert.deepEqual(stored.config.apiTokens, [{ name: 'alice', role: 'admin', token: 'alice-token-0123456789' }]);
    assert.equal(stored.generated.webhookToken, undefined, 'nothing generated when the file holds both');
    assert.equal(stored.generated.apiToken, undefined);
    const env = loadConfig({ TOKENS_FILE: file, WEBHOOK_TOKEN: 'from-the-environment-0123' });
    assert.equal(env.config.webhookToken, 'from-the-environment-0123');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('API_TOKENS: a short token is refused naming its owner, never the token, unless ALLOW_WEAK_TOKENS=true', () => {
  const secret = 'tiny-secret';
  const err = refused({ WEBHOOK_TOKEN: TOKEN, API_TOKENS: `bob:viewer:${secret}` }, 'API_TOKENS');
  assert.match(err.message, /bob/);
  assert.match(err.message, /ALLOW_WEAK_TOKENS/);
  assertNoSecret(err, secret);
  const { config, warnings } = loadConfig({ WEBHOOK_TOKEN: TOKEN, API_TOKENS: `bob:viewer:${secret}`, ALLOW_WEAK_TOKENS: 'true' });
  assert.equal(config.apiTokens[0]!.token, secret);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /bob/);
  assert.ok(!warnings[0]!.includes(secret));
  refused({ API_TOKENS: 'bob:viewer:' }, 'API_TOKENS');
  refused({ WEBHOOK_TOKEN: TOKEN, API_TOKENS: 'bob:viewer:has white space 0123456789' }, 'API_TOKENS');
});

test('a webhook token equal to an API token is refused: one secret would open both doors', () => {
  const err = refused({ WEBHOOK_TOKEN: 'alice-token-0123456789', API_TOKENS: API }, 'API_TOKENS');
  assert.match(err.message, /alice/);
  assert.match(err.message, /equals WEBHOOK_TOKEN/);
  assertNoSecret(err, 'alice-token-0123456789');
});

test('API_TOKENS: names must be unique and valid', () => {
  const secret = 'other-token-0123456789abc';
  const dup = refused({ API_TOKENS: `${API},alice:viewer:${secret}` }, 'API_TOKENS');
  assert.match(dup.message, /unique/);
  assertNoSecret(dup, secret);
  assertNoSecret(dup, 'alice-token-0123456789');
  const bad = refused({ API_TOKENS: `al ice:admin:${secret}` }, 'API_TOKENS');
  assert.match(bad.message, /name/);
  assertNoSecret(bad, secret);
});

test('a short WEBHOOK_TOKEN is refused without showing it, unless ALLOW_WEAK_TOKENS=true', () => {
  const secret = 'short-secret';
  const err = refused({ WEBHOOK_TOKEN: secret, API_TOKENS: API }, 'WEBHOOK_TOKEN');
  assertNoSecret(err, secret);
  const { config, warnings } = loadConfig({ WEBHOOK_TOKEN: secret, API_TOKENS: API, ALLOW_WEAK_TOKENS: '1' });
  assert.equal(config.webhookToken, secret);
  assert.deepEqual(warnings, ['WEBHOOK_TOKEN: shorter than 16 characters or contains whitespace (allowed by ALLOW_WEAK_TOKENS)']);
  assert.deepEqual(loadConfig({ WEBHOOK_TOKEN: 'a-long-enough-token-0123', API_TOKENS: API }).warnings, []);
});

test('durations are checked: JOB_BACKOFF=5x is refused', () => {
  const err = refused({ JOB_BACKOFF: '5x' }, 'JOB_BACKOFF');
  assert.match(err.message, /5x/);
  assert.match(err.message, /not a duration/);
  refused({ REMEDIATION_TIMEOUT: '1m1h' }, 'REMEDIATION_TIMEOUT');
  refused({ SHUTDOWN_TIMEOUT: '-1s' }, 'SHUTDOWN_TIMEOUT');
});

test('CONDUIT_ADMIN_URL without CONDUIT_ADMIN_KEY is refused without showing the URL', () => {
  const url = 'https://admin:hunter2-secret@conduit.example/';
  const err = refused({ CONDUIT_ADMIN_URL: url }, 'CONDUIT_ADMIN_KEY');
  assert.match(err.message, /CONDUIT_ADMIN_URL/);
  assertNoSecret(err, 'hunter2-secret');
});

test('CONDUIT_ADMIN_URL with CONDUIT_ADMIN_KEY configures the Conduit target', () => {
  const { config } = loadConfig({ CONDUIT_ADMIN_URL: 'http://conduit:5002', CONDUIT_ADMIN_KEY: 'key-value-123' });
  assert.deepEqual(config.conduit, { baseUrl: 'http://conduit:5002', apiKey: 'key-value-123' });
});

test('other bad values are named', () => {
  refused({ QUEUE_PREFIX: 'bad prefix!' }, 'QUEUE_PREFIX');
  refused({ LOG_LEVEL: 'loud' }, 'LOG_LEVEL');
  refused({ WORKER_CONCURRENCY: '0' }, 'WORKER_CONCURRENCY');
  refused({ ARCHIVE_TABLES: 'request_logs;drop' }, 'ARCHIVE_TABLES');
});

test('numbers in the environment are read strictly, and paired variables must come together', () => {
  for (const [variable, value] of [
    ['PORT', '80.5'],
    ['PORT', '1e3'],
    ['WORKER_CONCURRENCY', '1e2'],
    ['JOB_ATTEMPTS', 'true'],
  ] as const) {
    assert.throws(
      () => loadConfig({ [variable]: value }),
      (err: unknown) => err instanceof ConfigError && err.variable === variable,
      `${variable}=${value}`,
    );
  }
  assert.throws(
    () => loadConfig({ CONDUIT_ADMIN_KEY: 'k' }),
    (err: unknown) => err instanceof ConfigError && err.variable === 'CONDUIT_ADMIN_URL',
  );
  const token = 'same-token-0123456789';
  assert.throws(
    () => loadConfig({ API_TOKENS: `a:admin:${token},b:viewer:${token}` }),
    (err: unknown) => err instanceof ConfigError && err.variable === 'API_TOKENS' && !err.message.includes(token),
  );
});

test('a token may contain colons, and DRY_RUN is read case-insensitively', () => {
  const { config } = loadConfig({ API_TOKENS: 'carol:admin:abc:def:0123456789', DRY_RUN: 'TRUE' });
  assert.deepEqual(config.apiTokens, [{ name: 'carol', role: 'admin', token: 'abc:def:0123456789' }]);
  assert.equal(config.dryRun, true);
  assert.equal(loadConfig({ DRY_RUN: 'False' }).config.dryRun, false);
});

test('alert caps and RUN_RETENTION: defaults, overrides, and bad values named', () => {
  const { config } = loadConfig({ TOKENS_FILE: NO_FILE });
  assert.deepEqual(config.alertCaps, { maxLabels: 64, maxValueBytes: 4096, maxAlertBytes: 65536 });
  assert.equal(config.runRetentionMs, 90 * 24 * 3600_000);
  const set = loadConfig({ TOKENS_FILE: NO_FILE, MAX_LABELS: '10', MAX_LABEL_VALUE: '1024', MAX_ALERT_SIZE: '8192', RUN_RETENTION: '0' });
  assert.deepEqual(set.config.alertCaps, { maxLabels: 10, maxValueBytes: 1024, maxAlertBytes: 8192 });
  assert.equal(set.config.runRetentionMs, 0, 'RUN_RETENTION=0 keeps runs forever');
  assert.equal(loadConfig({ TOKENS_FILE: NO_FILE, RUN_RETENTION: '1w2d' }).config.runRetentionMs, 9 * 24 * 3600_000);
  refused({ TOKENS_FILE: NO_FILE, RUN_RETENTION: '90 days' }, 'RUN_RETENTION');
  refused({ TOKENS_FILE: NO_FILE, MAX_LABELS: '0' }, 'MAX_LABELS');
  refused({ TOKENS_FILE: NO_FILE, MAX_LABEL_VALUE: '10' }, 'MAX_LABEL_VALUE');
  refused({ TOKENS_FILE: NO_FILE, MAX_ALERT_SIZE: '1000' }, 'MAX_ALERT_SIZE');
  refused({ TOKENS_FILE: NO_FILE, MAX_ALERT_SIZE: '64k' }, 'MAX_ALERT_SIZE');
});

test('REDIS_SENTINELS with REDIS_SENTINEL_NAME: the master through Sentinel; each needs the other, entries are host:port', () => {
  const { config } = loadConfig({
    REDIS_SENTINELS: 'sentinel-0:26379, 10.0.0.7:26380,[::1]:26381',
    REDIS_SENTINEL_NAME: 'remediator',
    REDIS_SENTINEL_PASSWORD: 'sentinel-secret-0123456789',
    TOKENS_FILE: NO_FILE,
  });
  assert.deepEqual(config.redisSentinel, {
    sentinels: [
      { host: 'sentinel-0', port: 26379 },
      { host: '10.0.0.7', port: 26380 },
      { host: '::1', port: 26381 },
    ],
    name: 'remediator',
    password: 'sentinel-secret-0123456789',
  });
  assert.equal(loadConfig({ TOKENS_FILE: NO_FILE }).config.redisSentinel, undefined);
  refused({ REDIS_SENTINELS: 'sentinel-0:26379', TOKENS_FILE: NO_FILE }, 'REDIS_SENTINEL_NAME');
  refused({ REDIS_SENTINEL_NAME: 'remediator', TOKENS_FILE: NO_FILE }, 'REDIS_SENTINELS');
  const bad = refused({ REDIS_SENTINELS: 'sentinel-0', REDIS_SENTINEL_NAME: 'm', TOKENS_FILE: NO_FILE }, 'REDIS_SENTINELS');
  assert.match(bad.message, /entry 1 .* is not host:port/);
  refused({ REDIS_SENTINELS: 'a:99999', REDIS_SENTINEL_NAME: 'm', TOKENS_FILE: NO_FILE }, 'REDIS_SENTINELS');
});
