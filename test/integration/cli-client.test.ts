/**
 * The on-call commands of the `remediator` CLI against a running service: `runs`, `show`,
 * `approve`, `reject`, `pause`, `resume`, run as an operator runs them (`node bin/remediator.js`),
 * with REMEDIATOR_URL / REMEDIATOR_TOKEN or `--url` / `--token`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deliver, settled } from '../support/api.js';
import { alertMessage, isolation, REDIS_URL, startService, TOKENS, type TestService } from '../support/harness.js';

const run = promisify(execFile);

/** Runs the CLI with only the environment given (no REMEDIATOR_* of the caller's); resolves whatever the exit code. */
async function remediator(args: string[], env: Record<string, string> = {}) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('REMEDIATOR_'))) as Record<string, string>;
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/remediator.js', ...args], { env: { ...base, ...env }, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: cli-approval
    matchers: ['suite="cli"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
  - name: cli-auto
    matchers: ['suite="cli-auto"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
`;

/** The run ids in the ID column of a `runs` table. */
const listedIds = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .slice(1)
    .filter((l) => /^[0-9a-f-]{36}\s/.test(l))
    .map((l) => l.split(/\s+/)[0]!);

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('remediator runs, show, approve, reject, pause, resume against a running service', () => {
  const iso = isolation('cli_client');
  let svc: TestService;
  const ids: Record<'approve' | 'reject' | 'auto', string> = { approve: '', reject: '', auto: '' };
  /** The approver's environment, as an operator's shell would have it. */
  let approver: Record<string, string>;
  let viewer: Record<string, string>;
  let admin: Record<string, string>;

  before(async () => {
    svc = await startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { TARGET_REDIS_URL: REDIS_URL } });
    approver = { REMEDIATOR_URL: svc.url, REMEDIATOR_TOKEN: TOKENS.approver };
    viewer = { REMEDIATOR_URL: svc.url, REMEDIATOR_TOKEN: TOKENS.viewer };
    admin = { REMEDIATOR_URL: svc.url, REMEDIATOR_TOKEN: TOKENS.admin };
    const runs = await deliver(
      svc,
      alertMessage([
        { labels: { suite: 'cli', alertname: 'CliApprove', key: 'approve' } },
        { labels: { suite: 'cli', alertname: 'CliReject', key: 'reject' } },
        { labels: { suite: 'cli-auto', alertname: 'CliAuto', key: 'auto' } },
      ]),
    );
    assert.deepEqual(
      runs.map((r) => [r.rule, r.status]),
      [
        ['cli-approval', 'pending_approval'],
        ['cli-approval', 'pending_approval'],
        ['cli-auto', 'queued'],
      ],
    );
    [ids.approve, ids.reject, ids.auto] = runs.map((r) => r.id) as [string, string, string];
    await settled(svc, ids.auto, 'succeeded');
  });
  after(async () => {
    await svc?.close();
    await iso.drop();
  });

  it('runs: a table of the runs, newest first, and its filters', async () => {
    const all = await remediator(['runs'], viewer);
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trim().split('\n');
    assert.match(lines[0]!, /^ID\s+CREATED\s+STATUS\s+REASON\s+RULE\s+ACTION\s+REMEDIATION\s+TARGET\s+ALERT$/);
    assert.deepEqual(new Set(listedIds(all.stdout)), new Set(Object.values(ids)));
    const row = lines.find((l) => l.startsWith(ids.approve))!;
    assert.match(
      row,
      /^\S+\s+\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\s+pending_approval\s+-\s+cli-approval\s+firing:0\s+test\.count\s+test\/approve\s+CliApprove$/,
    );
    assert.match(
      lines.find((l) => l.startsWith(ids.auto))!,
      /\s+succeeded\s+-\s+cli-auto\s+firing:0\s+test\.count\s+test\/auto\s+CliAuto$/,
    );

    const filtered = await Promise.all([
      remediator(['runs', '--status', 'pending_approval'], viewer),
      remediator(['runs', '--rule', 'cli-auto'], viewer),
      remediator(['runs', '--alertname', 'CliReject'], viewer),
      remediator(['runs', '--since', '1h'], viewer),
      remediator(['runs', '--since', '2000-01-01T00:00:00Z', '--status', 'succeeded'], viewer),
      remediator(['runs', '--since', '2999-01-01T00:00:00Z'], viewer),
    ]);
    for (const f of filtered) assert.equal(f.code, 0, f.stderr);
    const [pending, rule, alertname, hour, succeeded, future] = filtered.map((f) => f.stdout);
    assert.deepEqual(new Set(listedIds(pending!)), new Set([ids.approve, ids.reject]));
    assert.deepEqual(listedIds(rule!), [ids.auto]);
    assert.deepEqual(listedIds(alertname!), [ids.reject]);
    assert.deepEqual(new Set(listedIds(hour!)), new Set(Object.values(ids)));
    assert.deepEqual(listedIds(succeeded!), [ids.auto]);
    assert.equal(future, 'no runs\n');

    const page = await remediator(['runs', '--limit', '2'], viewer);
    assert.equal(listedIds(page.stdout).length, 2);
    const cursor = /^more runs: add --cursor (\d+)$/m.exec(page.stdout)?.[1];
    assert.ok(cursor, page.stdout);
    const rest = await remediator(['runs', '--limit', '2', '--cursor', cursor], viewer);
    assert.deepEqual(new Set([...listedIds(page.stdout), ...listedIds(rest.stdout)]), new Set(Object.values(ids)));
    assert.doesNotMatch(rest.stdout, /more runs/);
  });

  it('runs: -o json is the API answer; bad --since and --limit are refused before any request', async () => {
    const json = await remediator(['runs', '--status', 'pending_approval', '-o', 'json'], viewer);
    assert.equal(json.code, 0, json.stderr);
    const body = JSON.parse(json.stdout) as { runs: Array<{ id: string; status: string; params: unknown }>; nextCursor: string | null };
    assert.deepEqual(new Set(body.runs.map((r) => r.id)), new Set([ids.approve, ids.reject]));
    assert.ok(body.runs.every((r) => r.status === 'pending_approval'));
    assert.equal(body.nextCursor, null);

    const since = await remediator(['runs', '--since', 'yesterday'], { ...viewer, REMEDIATOR_URL: 'http://127.0.0.1:1' });
    assert.equal(since.code, 1);
    assert.equal(
      since.stderr,
      'error: --since "yesterday" is neither a duration (30m, 1h, 2d) nor an RFC 3339 time (2026-01-02T15:04:05Z)\n',
    );
    const limit = await remediator(['runs', '--limit', '0'], viewer);
    assert.equal(limit.code, 1);
    assert.match(limit.stderr, /^error: --limit "0" must be a whole number from 1 to 200\n$/);
    const status = await remediator(['runs', '--status', 'nope'], viewer);
    assert.equal(status.code, 1);
    assert.match(status.stderr, /^error: querystring\/status must be one of: .*pending_approval.* \(HTTP 400 VALIDATION\)\n$/);
  });

  it('show: the run and its timeline', async () => {
    const shown = await remediator(['show', ids.approve], viewer);
    assert.equal(shown.code, 0, shown.stderr);
    const out = shown.stdout;
    assert.match(out, new RegExp(`^run:\\s+${ids.approve}$`, 'm'));
    assert.match(out, /^rule:\s+cli-approval \(action firing:0, phase firing\)$/m);
    assert.match(out, /^status:\s+pending_approval$/m);
    assert.match(out, /^params:\s+\{"key":"approve"\}$/m);
    assert.match(out, /^approval:\s+required, expires \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/m);
    assert.match(out, /^alert:\s+firing [0-9a-f]{16} since 2026-11-27T13:31:39Z alertname="CliApprove" key="approve" suite="cli"$/m);
    assert.match(out, /^TIME\s+EVENT\s+DETAIL$/m);
    assert.match(out, /^\S+Z\s+created\s+\{"rule":"cli-approval","action":"firing:0","alertStatus":"firing"\}$/m);
    assert.match(out, /^\S+Z\s+pending_approval\s+\{"reason":null,"expiresAt":"\S+"\}$/m);

    const json = await remediator(['show', ids.auto, '-o', 'json'], viewer);
    const body = JSON.parse(json.stdout) as { id: string; status: string; events: Array<{ type: string }> };
    assert.equal(body.id, ids.auto);
    assert.equal(body.status, 'succeeded');
    assert.deepEqual(
      body.events.map((e) => e.type),
      ['created', 'queued', 'started', 'succeeded'],
    );

    const missing = await remediator(['show', 'no-such-run'], viewer);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'error: run no-such-run not found (HTTP 404 NOT_FOUND)\n');
  });

  it('approve -m: the run is queued and executes; a second approval exits 1 with the API 409 message', async () => {
    const approved = await remediator(['approve', ids.approve, '-m', 'ok'], approver);
    assert.equal(approved.code, 0, approved.stderr);
    assert.equal(approved.stdout, `approved run ${ids.approve} by bob: cli-approval test.count, now queued\n`);
    const done = await settled(svc, ids.approve, 'succeeded');
    assert.equal(done.approval.decidedBy, 'bob');
    assert.equal(done.approval.comment, 'ok');

    const again = await remediator(['approve', ids.approve], approver);
    assert.equal(again.code, 1);
    assert.equal(again.stdout, '');
    // The message is the API's own, as it answers the same request.
    const res = await fetch(`${svc.url}/api/runs/${ids.approve}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.approver}`, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(res.status, 409);
    const { message } = (await res.json()) as { message: string };
    assert.equal(again.stderr, `error: ${message} (HTTP 409 CONFLICT)\n`);

    const shown = await remediator(['show', ids.approve], viewer);
    assert.match(shown.stdout, /^\S+Z\s+approved\s+\{"by":"bob","comment":"ok"\}$/m);
    assert.match(shown.stdout, /^approval:\s+required, decided by bob at \S+Z, "ok"$/m);
  });

  it('reject -m: the run is rejected with the reason; -o json prints the run', async () => {
    const rejected = await remediator(['reject', ids.reject, '-m', 'not now', '-o', 'json'], approver);
    assert.equal(rejected.code, 0, rejected.stderr);
    const body = JSON.parse(rejected.stdout) as { id: string; status: string; approval: { decidedBy: string; comment: string } };
    assert.equal(body.id, ids.reject);
    assert.equal(body.status, 'rejected');
    assert.equal(body.approval.decidedBy, 'bob');
    const listed = await remediator(['runs', '--status', 'rejected'], viewer);
    assert.deepEqual(listedIds(listed.stdout), [ids.reject]);
    const again = await remediator(['reject', ids.reject], approver);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error: .* \(HTTP 409 CONFLICT\)\n$/);
    const viewerTries = await remediator(['approve', ids.reject], viewer);
    assert.equal(viewerTries.code, 1);
    assert.equal(viewerTries.stderr, 'error: token "viewer" has role viewer; this needs approver (HTTP 403 FORBIDDEN)\n');
  });

  it('pause -m: new runs are suppressed (paused) until resume', async () => {
    const paused = await remediator(['pause', '-m', 'maintenance'], admin);
    assert.equal(paused.code, 0, paused.stderr);
    assert.match(paused.stdout, /^paused: new runs are suppressed, queued runs wait \(by root at \S+Z: maintenance\)\n$/);
    const [suppressed] = await deliver(svc, alertMessage([{ labels: { suite: 'cli-auto', alertname: 'CliPaused', key: 'paused' } }]));
    assert.equal(suppressed!.status, 'suppressed');
    const listed = await remediator(['runs', '--alertname', 'CliPaused'], viewer);
    assert.match(listed.stdout, new RegExp(`^${suppressed!.id}\\s+\\S+\\s+suppressed\\s+paused\\s+cli-auto\\s`, 'm'));

    const resumed = await remediator(['resume', '-o', 'json'], admin);
    assert.equal(resumed.code, 0, resumed.stderr);
    const state = JSON.parse(resumed.stdout) as { paused: boolean; dryRun: boolean; changedBy: string };
    assert.deepEqual([state.paused, state.dryRun, state.changedBy], [false, false, 'root']);
    const [after] = await deliver(svc, alertMessage([{ labels: { suite: 'cli-auto', alertname: 'CliResumed', key: 'resumed' } }]));
    assert.equal(after!.status, 'queued');
    const text = await remediator(['resume'], admin);
    assert.match(text.stdout, /^running: remediation is not paused \(by root at \S+Z\)\n$/);
    const byApprover = await remediator(['pause'], approver);
    assert.equal(byApprover.code, 1);
    assert.match(byApprover.stderr, /this needs admin \(HTTP 403 FORBIDDEN\)\n$/);
  });

  it('a wrong or missing token exits 1 with the 401 message, and no token is ever printed', async () => {
    const wrong = await remediator(['runs'], { REMEDIATOR_URL: svc.url, REMEDIATOR_TOKEN: 'wrong-token-0123456789abcdef' });
    assert.equal(wrong.code, 1);
    assert.equal(wrong.stdout, '');
    assert.equal(wrong.stderr, 'error: missing or unknown bearer token (HTTP 401 UNAUTHORIZED)\n');
    const none = await remediator(['show', ids.auto], { REMEDIATOR_URL: svc.url });
    assert.equal(none.code, 1);
    assert.equal(
      none.stderr,
      'error: missing or unknown bearer token (no token: set REMEDIATOR_TOKEN or --token) (HTTP 401 UNAUTHORIZED)\n',
    );
    // Flags win over the environment.
    const flags = await remediator(['runs', '--url', svc.url, '--token', TOKENS.viewer, '--rule', 'cli-auto'], {
      REMEDIATOR_URL: 'http://127.0.0.1:1',
      REMEDIATOR_TOKEN: 'wrong-token-0123456789abcdef',
    });
    assert.equal(flags.code, 0, flags.stderr);
    assert.ok(listedIds(flags.stdout).includes(ids.auto));
    for (const r of [wrong, none, flags]) {
      for (const token of [...Object.values(TOKENS), 'wrong-token-0123456789abcdef']) {
        assert.ok(!r.stdout.includes(token) && !r.stderr.includes(token), `token printed: ${r.stdout}${r.stderr}`);
      }
    }
  });

  it('a service that cannot be reached is named by its URL; a redirect or an answer that is not JSON is refused', async () => {
    const port = await closedPort();
    const url = `http://127.0.0.1:${port}`;
    const refused = await remediator(['runs'], { REMEDIATOR_URL: url, REMEDIATOR_TOKEN: TOKENS.viewer });
    assert.equal(refused.code, 1);
    assert.equal(refused.stderr, `error: cannot reach the remediator at ${url}: ECONNREFUSED (set REMEDIATOR_URL or --url)\n`);
    assert.ok(!refused.stderr.includes(TOKENS.viewer));
    // Something else answers there: a redirect is not followed, a body that is not JSON is not taken for an answer.
    const other = createHttpServer((req, res) => {
      if (req.url?.startsWith('/api/runs')) res.writeHead(302, { location: 'http://example.com/' }).end();
      else res.writeHead(200, { 'content-type': 'text/html' }).end('<html></html>');
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const otherUrl = `http://127.0.0.1:${(other.address() as { port: number }).port}`;
    try {
      const redirected = await remediator(['runs', '--url', otherUrl]);
      assert.equal(redirected.code, 1);
      assert.equal(
        redirected.stderr,
        `error: ${otherUrl}/api/runs answered with a redirect, which is not followed: point REMEDIATOR_URL or --url at the service itself\n`,
      );
      const html = await remediator(['pause', '--url', otherUrl]);
      assert.equal(html.code, 1);
      assert.equal(
        html.stderr,
        `error: ${otherUrl}/api/control/pause answered HTTP 200 with a body that is not JSON: is it the remediator?\n`,
      );
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
    const bad = await remediator(['approve', ids.approve, '--url', 'ftp://example.com']);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'error: --url ("ftp://example.com") is not an http(s):// URL\n');
  });
});
