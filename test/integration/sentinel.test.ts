/**
 * Redis through Sentinel: a real master, a replica and three sentinels on loopback ports. Alerts
 * stream in while the master is killed; every alert the webhook acknowledged becomes exactly one run,
 * executed exactly once after the promotion, the workers resume without a restart, and
 * /health/ready answers 503 during the gap and 200 after.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { assertEachAcknowledgedRanOnce, streamAlerts } from '../support/alert-stream.js';
import { eventually, isolation, REDIS_URL, startService } from '../support/harness.js';
import { freePort } from '../support/redis-server.js';

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: failover
    matchers: ['suite="sentinel"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
`;

interface Proc {
  child: ChildProcess;
  port: number;
  stop(): Promise<void>;
}

function spawnRedis(args: string[], port: number): Proc {
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  return {
    child,
    port,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

async function ping(port: number): Promise<boolean> {
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
}

describe('Redis Sentinel failover', () => {
  const iso = isolation('sentinel');
  const dir = mkdtempSync(join(tmpdir(), 'remediator-sentinel-'));
  const procs: Proc[] = [];
  after(async () => {
    for (const p of procs) await p.stop();
    rmSync(dir, { recursive: true, force: true });
    await iso.drop();
  });

  it('loses no acknowledged alert and executes each run once across a master failover', async () => {
    const [masterPort, replicaPort, ...sentinelPorts] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    // The replica's full sync writes an RDB file: into the test's directory, not the working one.
    const base = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
    const master = spawnRedis(['--port', String(masterPort), ...base], masterPort!);
    const replica = spawnRedis(['--port', String(replicaPort), ...base, '--replicaof', '127.0.0.1', String(masterPort)], replicaPort!);
    procs.push(master, replica);
    for (const port of sentinelPorts) {
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `sentinel monitor remediator 127.0.0.1 ${masterPort} 2`,
          'sentinel down-after-milliseconds remediator 1000',
          'sentinel failover-timeout remediator 5000',
          'sentinel parallel-syncs remediator 1',
          '',
        ].join('\n'),
      );
      procs.push(spawnRedis([conf, '--sentinel'], port));
    }
    await eventually(async () => (await ping(masterPort!)) && (await ping(replicaPort!)), 10_000, 'master and replica up');
    const sentinel = new Redis({ port: sentinelPorts[0], host: '127.0.0.1' });
    try {
      await eventually(
        async () => {
          const replicas = (await sentinel.call('SENTINEL', 'replicas', 'remediator')) as unknown[];
          const sentinels = (await sentinel.call('SENTINEL', 'sentinels', 'remediator')) as unknown[];
          return replicas.length === 1 && sentinels.length === 2;
        },
        20_000,
        'the sentinels know the replica and each other',
      );

      const svc = await startService({
        databaseUrl: iso.databaseUrl,
        prefix: iso.prefix,
        matrix: MATRIX,
        env: {
          REDIS_URL: 'redis://127.0.0.1:6379/0',
          REDIS_SENTINELS: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
          REDIS_SENTINEL_NAME: 'remediator',
          TARGET_REDIS_URL: REDIS_URL,
          REQUEUE_AFTER: '1s',
          INTAKE_TIMEOUT: '2s',
        },
      });
      try {
        assert.equal((await fetch(`${svc.url}/health/ready`)).status, 200);
        const stream = streamAlerts(svc, { suite: 'sentinel' }, 200);
        const { acknowledged, readiness } = stream;

        await eventually(async () => acknowledged.size >= 10, 15_000, 'alerts flowing before the failover');
        await master.stop();
        await eventually(
          async () => {
            const addr = (await sentinel.call('SENTINEL', 'get-master-addr-by-name', 'remediator')) as string[];
            return Number(addr[1]) === replicaPort;
          },
          30_000,
          'the replica promoted',
        );
        const afterPromotion = acknowledged.size;
        await eventually(async () => acknowledged.size >= afterPromotion + 10, 30_000, 'alerts acknowledged after the promotion');
        await stream.stop();

        assert.ok(readiness.includes(503), `ready answered 503 during the gap (${[...new Set(readiness)].join(', ')})`);
        assert.equal(readiness.at(-1), 200, 'ready again after the promotion');

        await assertEachAcknowledgedRanOnce(iso.databaseUrl, iso.prefix, acknowledged, 'the failover');
        console.log(
          `# ${acknowledged.size} alerts acknowledged, ${stream.sent()} sent; ready: ${readiness.filter((s) => s !== 200).length} probes not 200`,
        );
      } finally {
        await svc.close();
      }
    } finally {
      sentinel.disconnect();
    }
  });
});
