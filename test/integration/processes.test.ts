import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import { API_TOKENS, isolation, REDIS_URL, TOKENS, WEBHOOK_TOKEN, writeMatrix } from '../support/harness.js';
import { startServerProcess } from '../support/server-process.js';

/** The exit code of a process that exits by itself (or was signalled by the test). */
async function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

describe('service processes', () => {
  const iso = isolation('procs');
  after(() => iso.drop());

  it('starts two replicas together on a missing database without a migration race, and stops gracefully on SIGTERM', async () => {
    const matrix = writeMatrix(readFileSync('config/response-matrix.yaml', 'utf8'));
    // Trust authentication ignores the password: it is there to prove no line carries it.
    const databaseUrl = iso.databaseUrl.replace('://postgres@', '://postgres:pw-in-the-url-0123@');
    const env = { DATABASE_URL: databaseUrl, REDIS_URL, QUEUE_PREFIX: iso.prefix, MATRIX_PATH: matrix, WEBHOOK_TOKEN, API_TOKENS };
    const [one, two] = await Promise.all([startServerProcess(env), startServerProcess(env)]);
    try {
      await Promise.all([one.ready(), two.ready()]);
      const db = new pg.Client({ connectionString: iso.databaseUrl });
      await db.connect();
      const { rows } = await db.query('SELECT version, count(*) OVER () AS total FROM schema_migrations ORDER BY version');
      await db.end();
      assert.ok(rows.length >= 1);
      assert.deepEqual(
        rows.map((r) => r.version),
        [...new Set(rows.map((r) => r.version))],
        'each migration applied once',
      );

      const fixture = readFileSync(new URL('../fixtures/alertmanager/firing-provider-down.json', import.meta.url), 'utf8');
      const res = await fetch(`http://127.0.0.1:${one.port}/webhooks/alertmanager`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${WEBHOOK_TOKEN}` },
        body: fixture,
      });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { runs: Array<{ status: string }> };
      // No CONDUIT_ADMIN_URL here: the disable fails at once, named; the notices wait for its outcome.
      assert.equal(body.runs[0]?.status, 'failed');
      assert.ok(
        body.runs.slice(1).every((r) => r.status === 'waiting'),
        JSON.stringify(body.runs),
      );

      one.child.kill('SIGTERM');
      two.child.kill('SIGTERM');
      assert.equal(await exitOf(one.child), 0);
      assert.equal(await exitOf(two.child), 0);
      assert.match(one.output(), /targets not configured/);
      // "Did my alert arrive?": one line per delivery, one per status change, as JSON.
      const lines = one
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const delivery = lines.find((l) => l['msg'] === 'delivery stored');
      const sent = JSON.parse(fixture) as { receiver: string; groupKey: string; alerts: unknown[] };
      assert.ok(delivery, one.output());
      assert.deepEqual(
        [delivery['receiver'], delivery['groupKey'], delivery['alerts'], delivery['runsCreated'], delivery['duplicates']],
        [sent.receiver, sent.groupKey, sent.alerts.length, body.runs.length, 0],
      );
      const changes = lines.filter((l) => l['msg'] === 'run status changed');
      assert.ok(
        changes.some((l) => l['from'] === 'waiting' && l['to'] === 'skipped' && l['reason'] === 'predecessor_failed' && l['runId']),
        JSON.stringify(changes),
      );
      // A run that ended as it was created has its line too.
      assert.ok(
        changes.some(
          (l) =>
            l['from'] === null &&
            l['to'] === 'failed' &&
            l['reason'] === 'target_not_configured' &&
            l['remediation'] === 'conduit.disable-provider' &&
            l['rule'] === 'provider-down',
        ),
        JSON.stringify(changes),
      );
      assert.ok(!one.output().includes(WEBHOOK_TOKEN), 'the webhook token is never printed when it was given');
      for (const token of Object.values(TOKENS)) assert.ok(!one.output().includes(token), 'no API token in any line');
      assert.ok(!one.output().includes('pw-in-the-url-0123'), 'no password of a URL in any line');
    } finally {
      one.child.kill('SIGKILL');
      two.child.kill('SIGKILL');
    }
  });

  it('writes generated tokens to TOKENS_FILE (mode 0600), never to the terminal or a log line, and reuses them on restart', async () => {
    const matrix = writeMatrix(readFileSync('config/response-matrix.yaml', 'utf8'));
    const dir = mkdtempSync(join(tmpdir(), 'remediator-tokens-'));
    const file = join(dir, 'tokens.env');
    const env = {
      DATABASE_URL: iso.databaseUrl,
      REDIS_URL,
      QUEUE_PREFIX: iso.prefix,
      MATRIX_PATH: matrix,
      WEBHOOK_TOKEN: '',
      API_TOKENS: '',
      TOKENS_FILE: file,
    };
    try {
      const first = await startServerProcess(env);
      let token: string;
      try {
        await first.ready();
        assert.equal(statSync(file).mode & 0o777, 0o600, 'only the owner reads the file');
        const stored = readFileSync(file, 'utf8');
        token = /^API_TOKENS=admin:admin:(\S+)$/m.exec(stored)![1]!;
        const hook = /^WEBHOOK_TOKEN=(\S+)$/m.exec(stored)![1]!;
        assert.ok(token.length >= 16 && hook.length >= 16 && token !== hook);
        assert.match(first.output(), new RegExp(`written to ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(mode 0600\\)`));
        assert.ok(!first.output().includes(token) && !first.output().includes(hook), 'no token in the output');
        const control = await fetch(`http://127.0.0.1:${first.port}/api/control`, { headers: { Authorization: `Bearer ${token}` } });
        assert.equal(control.status, 200);
      } finally {
        first.child.kill('SIGTERM');
        await exitOf(first.child);
      }
      const before = readFileSync(file, 'utf8');
      const second = await startServerProcess(env);
      try {
        await second.ready();
        assert.equal(readFileSync(file, 'utf8'), before, 'a restart generates nothing');
        assert.doesNotMatch(second.output(), /generated/);
        const control = await fetch(`http://127.0.0.1:${second.port}/api/control`, { headers: { Authorization: `Bearer ${token}` } });
        assert.equal(control.status, 200, 'the same admin token works after the restart');
      } finally {
        second.child.kill('SIGTERM');
        await exitOf(second.child);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start on bad configuration with one message naming the variable or the matrix line', async () => {
    const role = await startServerProcess({ ROLE: 'bogus', DATABASE_URL: iso.databaseUrl });
    assert.equal(await exitOf(role.child), 2);
    assert.match(role.output(), /ROLE: must be one of api, worker, all/);

    const broken = writeMatrix(
      'rules:\n  - name: x\n    matchers: [\'alertname="A"\']\n    actions:\n      - remediation: no.such-thing\n',
    );
    const matrix = await startServerProcess({ MATRIX_PATH: broken, DATABASE_URL: iso.databaseUrl, REDIS_URL, QUEUE_PREFIX: iso.prefix });
    assert.equal(await exitOf(matrix.child), 2);
    assert.match(
      matrix.output(),
      new RegExp(
        `${broken.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:5:\\d+: rules\\[0\\]\\.actions\\[0\\]\\.remediation: unknown remediation "no.such-thing"`,
      ),
    );
  });
});
