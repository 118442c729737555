/**
 * PostgreSQL restarted under load: a cluster of the test's own (pg_createcluster, on a free port) is
 * stopped (immediate mode, as a crash) while alerts stream in, then started again. During the outage
 * the webhook answers 503 (Alertmanager retries) and /health/ready 503; afterwards the service has
 * reconnected by itself, and every alert it acknowledged is exactly one run, executed exactly once.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { assertEachAcknowledgedRanOnce, streamAlerts } from '../support/alert-stream.js';
import { eventually, REDIS_URL, startService, type TestService } from '../support/harness.js';
import { freePort } from '../support/redis-server.js';

const run = promisify(execFile);

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: restart
    matchers: ['suite="pg-restart"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
`;

const VERSION = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql')[0] : undefined;
const skip =
  !existsSync('/usr/bin/pg_createcluster') || VERSION === undefined
    ? "Debian's pg_createcluster is not here (postgresql-common)"
    : process.getuid?.() !== 0
      ? 'pg_createcluster needs root'
      : false;

const cluster = `rt_${randomBytes(3).toString('hex')}`;
const ctl = (...args: string[]) => run('pg_ctlcluster', ['--skip-systemctl-redirect', VERSION!, cluster, ...args], { timeout: 60_000 });

describe('PostgreSQL restart while alerts stream', { skip }, () => {
  let created = false;
  after(async () => {
    if (created) await run('pg_dropcluster', [VERSION!, cluster, '--stop'], { timeout: 60_000 }).catch(() => undefined);
  });

  it('reconnects by itself; 503 during the outage; every acknowledged alert one run executed once', async () => {
    const port = await freePort();
    await run('pg_createcluster', [VERSION!, cluster, '-p', String(port), '--', '--auth=trust'], { timeout: 60_000 });
    created = true;
    await ctl('start');
    const databaseUrl = `postgres://postgres@127.0.0.1:${port}/remediator_restart`;
    const prefix = `rt_pgrestart_${randomBytes(3).toString('hex')}`;
    let svc: TestService | undefined;
    const counter = new Redis(REDIS_URL);
    try {
      svc = await startService({
        databaseUrl,
        prefix,
        matrix: MATRIX,
        env: { TARGET_REDIS_URL: REDIS_URL, REQUEUE_AFTER: '1s', INTAKE_TIMEOUT: '2s' },
      });
      const stream = streamAlerts(svc, { suite: 'pg-restart' });
      const { acknowledged, answers, readiness } = stream;

      await eventually(async () => acknowledged.size >= 10, 15_000, 'alerts flowing before the restart');
      await ctl('stop', '-m', 'immediate');
      await eventually(async () => answers.has(503) && readiness.includes(503), 15_000, 'the outage answered 503');
      await sleep(1000);
      await ctl('start');
      const restarted = acknowledged.size;
      await eventually(async () => acknowledged.size >= restarted + 10, 30_000, 'alerts acknowledged after the restart');
      await stream.stop();
      assert.equal(readiness.at(-1), 200, 'ready again after the restart');

      await assertEachAcknowledgedRanOnce(databaseUrl, prefix, acknowledged, 'the restart');
      console.log(
        `# ${acknowledged.size} alerts acknowledged, ${stream.sent()} sent; ${readiness.filter((s) => s !== 200).length} readiness probes not 200`,
      );
    } finally {
      await svc?.close();
      const left = await counter.keys(`${prefix}:*`);
      if (left.length > 0) await counter.del(...left);
      counter.disconnect();
    }
  });
});
