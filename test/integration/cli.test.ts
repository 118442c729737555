/** The `remediator` command line, run as an operator runs it: `node bin/remediator.js ...`. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import { isolation, writeMatrix } from '../support/harness.js';

const run = promisify(execFile);

/** Runs the CLI; resolves with its exit code and output whatever the code. */
async function remediator(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/remediator.js', ...args], {
      env: { ...process.env, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('remediator', () => {
  it('check: the shipped matrix is valid, printed as a table of rules and actions', async () => {
    const { code, stdout } = await remediator(['check', '--matrix', 'config/response-matrix.yaml']);
    assert.equal(code, 0, stdout);
    const lines = stdout.trim().split('\n');
    assert.match(lines[0]!, /^RULE\s+PHASE\s+ACTION\s+REMEDIATION\s+APPROVAL\s+COOLDOWN\s+LIMIT\s+AFTER\s+LOOP$/);
    assert.ok(
      lines.some((l) => /^provider-down\s+firing\s+disable\s+conduit\.disable-provider\s+auto\s+30m\s+3\/1h\s+-\s+verify 7m$/.test(l)),
      stdout,
    );
    assert.ok(
      lines.some((l) => /^provider-down\s+resolved\s+resolved:1\s+conduit\.enable-provider\s+required\s+.*test succeeded/.test(l)),
      stdout,
    );
    assert.match(lines.at(-1)!, /^config\/response-matrix\.yaml: 6 rules, \d+ actions, valid$/);
  });

  it('check: a broken matrix exits 1 naming file, line and column', async () => {
    const cases: Array<[string, RegExp]> = [
      [
        'rules:\n  - name: x\n    matchers: [\'alertname="A"\']\n    actions:\n      - remediation: nope.nope\n',
        /:5:22: rules\[0\]\.actions\[0\]\.remediation: unknown remediation "nope\.nope"/,
      ],
      [
        'rules:\n  - name: x\n    matchers: [\'alertname=~"("\']\n    actions:\n      - remediation: notify.webhook\n        params: { text: hi }\n',
        /:3:16: rules\[0\]\.matchers\[0\]: /,
      ],
      [
        'rules:\n  - name: x\n    matchers: [\'alertname="A"\']\n    actions:\n      - remediation: notify.webhook\n        params: { text: hi }\n        cooldown: 5 minutes\n',
        /:7:19: rules\[0\]\.actions\[0\]\.cooldown/,
      ],
      [
        'rules:\n  - name: x\n    matchers: [\'alertname="A"\']\n    actions:\n      - id: a\n        remediation: notify.webhook\n        after: a\n        params: { text: hi }\n',
        /:7:16: .*cannot wait for itself/,
      ],
      ['rules: [\n', /:\d+:\d+: /],
    ];
    for (const [text, message] of cases) {
      const path = writeMatrix(text);
      const { code, stderr, stdout } = await remediator(['check', '--matrix', path]);
      assert.equal(code, 1, `${text}\n${stdout}`);
      assert.ok(stderr.startsWith(`error: ${path}:`), stderr);
      assert.match(stderr, message);
    }
    const { code, stderr } = await remediator(['check', '--matrix', '/nonexistent/matrix.yaml']);
    assert.equal(code, 1);
    assert.match(stderr, /MATRIX_PATH: cannot read \/nonexistent\/matrix\.yaml: ENOENT/);
  });

  describe('migrate', () => {
    const iso = isolation('cli');
    after(() => iso.drop());

    it('applies the migrations to a missing database, then says it is up to date', async () => {
      const first = await remediator(['migrate'], { DATABASE_URL: iso.databaseUrl });
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /^applied migrations 1, 2, 3, 4, 5/);
      const db = new pg.Client({ connectionString: iso.databaseUrl });
      await db.connect();
      const { rows } = await db.query('SELECT count(*)::int AS n FROM runs');
      await db.end();
      assert.equal(rows[0].n, 0);
      const again = await remediator(['migrate'], { DATABASE_URL: iso.databaseUrl });
      assert.equal(again.stdout, 'database is up to date\n');
    });

    it('refuses a bad DATABASE_URL with the variable named', async () => {
      const bad = await remediator(['migrate'], { DATABASE_URL: 'mysql://x' });
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^error: DATABASE_URL: /);
    });
  });
});
