/**
 * `remediator simulate FILE.json`: offline, what the matrix does with an Alertmanager message
 * (no database, no Redis); with `--url`, what a running service answers on POST /api/simulate.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { deliver, settled } from '../support/api.js';
import { alertMessage, isolation, REDIS_URL, startService, TOKENS, writeMatrix, type TestService } from '../support/harness.js';

const run = promisify(execFile);

/** Neither is reachable: an offline simulation must not need them. */
const OFFLINE_ENV = {
  DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
  REDIS_URL: 'redis://127.0.0.1:1',
  REMEDIATOR_URL: 'http://127.0.0.1:1',
};

async function remediator(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/remediator.js', ...args], {
      env: { ...process.env, ...OFFLINE_ENV, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

const dir = mkdtempSync(join(tmpdir(), 'remediator-simulate-'));
process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
let files = 0;
/** Writes a message to a file of its own and returns the path. */
function messageFile(message: unknown): string {
  const path = join(dir, `message-${++files}.json`);
  writeFileSync(path, typeof message === 'string' ? message : JSON.stringify(message));
  return path;
}

const SHIPPED = 'config/response-matrix.yaml';
const FIXTURE_DIRS = ['test/fixtures/alertmanager', '/work/shared/fixtures/alertmanager'].filter((d) => existsSync(d));
const lines = (stdout: string) => stdout.split('\n');

/** What the JSON output says of one action. */
interface JsonAction {
  rule: string;
  action: string;
  id?: string | null;
  remediation: string;
  status: string;
  reason: string | null;
  params: Record<string, unknown>;
  target: string | null;
  plan: string | null;
  error: string | null;
  approvalRequired: boolean;
  approval?: string;
  cooldown?: string | null;
  limit?: string | null;
  after: { ref: string; when: string } | null;
  outcome?: string;
  existingRun?: { id: string; status: string } | null;
}
interface JsonSimulation {
  offline?: boolean;
  paused?: boolean;
  alerts: Array<{ fingerprint: string; status: string; matched: boolean; actions: JsonAction[] }>;
}

describe('remediator simulate, offline', () => {
  for (const fixtures of FIXTURE_DIRS) {
    it(`${fixtures}/firing-provider-down.json: disable the provider, the notices wait for it`, async () => {
      const { code, stdout, stderr } = await remediator(['simulate', `${fixtures}/firing-provider-down.json`, '--matrix', SHIPPED]);
      assert.equal(code, 0, stderr);
      const out = lines(stdout);
      assert.match(out[0]!, /^offline: cooldowns, limits, the global budget, the kill switch and existing runs are not consulted/);
      assert.ok(
        out.includes('alert 54e69878f8d451e8 firing alertname="ConduitProviderDown" provider="openai" severity="critical"'),
        stdout,
      );
      assert.ok(
        out.some((l) => /^RULE\s+ACTION\s+REMEDIATION\s+STATUS\s+APPROVAL\s+COOLDOWN\s+LIMIT\s+AFTER$/.test(l)),
        stdout,
      );
      assert.ok(
        out.some((l) => /^provider-down\s+disable\s+conduit\.disable-provider\s+queued\s+auto\s+30m\s+3\/1h\s+-$/.test(l)),
        stdout,
      );
      assert.ok(
        out.some((l) => /^provider-down\s+firing:1\s+notify\.webhook\s+waiting\s+auto\s+10m\s+-\s+disable succeeded$/.test(l)),
        stdout,
      );
      assert.ok(
        out.some((l) => /^provider-down\s+firing:2\s+notify\.webhook\s+waiting\s+auto\s+10m\s+-\s+disable failed$/.test(l)),
        stdout,
      );
      assert.ok(
        out.some((l) => /^ {2}provider-down\/disable\s+params\s+\{"provider":"openai"\}$/.test(l)),
        stdout,
      );
      assert.ok(
        out.some((l) => /^ {2}provider-down\/disable\s+target\s+conduit\/provider\/openai$/.test(l)),
        stdout,
      );
      assert.ok(
        out.some((l) => /^ {2}provider-down\/disable\s+plan\s+Set isEnabled=false on Conduit provider "openai"/.test(l)),
        stdout,
      );
      assert.ok(
        out.some((l) => /^ {2}provider-down\/disable\s+verify\s+conduit:gateway_error_ratio < 0\.05 within 7m every 30s$/.test(l)),
        stdout,
      );
      assert.ok(
        out.some((l) =>
          /^ {2}provider-down\/firing:2\s+params\s+\{"text":"Provider openai down: could not disable provider openai in Conduit: \. /.test(
            l,
          ),
        ),
        stdout,
      );
      assert.ok(
        out.some((l) => /^ {2}provider-down\/firing:1\s+waits\s+for disable \(succeeded\); its params are rendered again then$/.test(l)),
      );
      assert.ok(!out.some((l) => /\serror\s/.test(l)), stdout);
    });
  }

  it('resolved-provider-down.json: test the provider, then re-enabling it waits for approval', async () => {
    const { code, stdout, stderr } = await remediator(['simulate', `${FIXTURE_DIRS[0]}/resolved-provider-down.json`, '--matrix', SHIPPED]);
    assert.equal(code, 0, stderr);
    const out = lines(stdout);
    assert.ok(
      out.includes('alert 54e69878f8d451e8 resolved alertname="ConduitProviderDown" provider="openai" severity="critical"'),
      stdout,
    );
    assert.ok(
      out.some((l) => /^provider-down\s+test\s+conduit\.test-provider\s+waiting\s+auto\s+10m\s+-\s+firing\.disable succeeded$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^provider-down\s+resolved:1\s+conduit\.enable-provider\s+waiting\s+required\s+10m\s+-\s+test succeeded$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^ {2}provider-down\/resolved:1\s+params\s+\{"provider":"openai"\}$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^ {2}provider-down\/test\s+plan\s+POST \/api\/ProviderCredentials\/test\/\{id\}/.test(l)),
      stdout,
    );
    assert.ok(!out.some((l) => /conduit\.disable-provider/.test(l)), 'a resolution runs onResolved only');
  });

  it('a label that does not fit the schema: the run would fail invalid_params, with the validation error', async () => {
    const fixture = JSON.parse(readFileSync(`${FIXTURE_DIRS[0]}/firing-provider-down.json`, 'utf8')) as {
      alerts: Array<{ labels: Record<string, string> }>;
    };
    fixture.alerts[0]!.labels['provider'] = 'x; DROP TABLE';
    const file = messageFile(fixture);
    const text = await remediator(['simulate', file, '--matrix', SHIPPED]);
    assert.equal(text.code, 0, text.stderr);
    const out = lines(text.stdout);
    assert.ok(
      out.some((l) => /^provider-down\s+disable\s+conduit\.disable-provider\s+failed invalid_params\s+auto\s+30m\s+3\/1h\s+-$/.test(l)),
      text.stdout,
    );
    assert.ok(
      out.some((l) => /^ {2}provider-down\/disable\s+params\s+\{"provider":"x; DROP TABLE"\}$/.test(l)),
      text.stdout,
    );
    assert.ok(
      out.some((l) => /^ {2}provider-down\/disable\s+error\s+provider: Expected string to match /.test(l)),
      text.stdout,
    );
    assert.ok(!out.some((l) => /^ {2}provider-down\/disable\s+(target|plan)\s/.test(l)), text.stdout);

    const json = await remediator(['simulate', file, '--matrix', SHIPPED, '-o', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const sim = JSON.parse(json.stdout) as JsonSimulation;
    assert.equal(sim.offline, true);
    const [disable, ok, failed] = sim.alerts[0]!.actions as [JsonAction, JsonAction, JsonAction];
    assert.deepEqual(
      { status: disable.status, reason: disable.reason, target: disable.target, plan: disable.plan, params: disable.params },
      { status: 'failed', reason: 'invalid_params', target: null, plan: null, params: { provider: 'x; DROP TABLE' } },
    );
    assert.match(disable.error!, /^provider: Expected string to match/);
    assert.deepEqual([ok.status, ok.after], ['waiting', { ref: 'disable', when: 'succeeded' }]);
    assert.deepEqual([failed.status, failed.after], ['waiting', { ref: 'disable', when: 'failed' }]);
  });

  it('-o json: every action with its rule, remediation, params, target, plan and gate settings', async () => {
    const { code, stdout, stderr } = await remediator([
      'simulate',
      `${FIXTURE_DIRS[0]}/firing-provider-down.json`,
      '--matrix',
      SHIPPED,
      '-o',
      'json',
    ]);
    assert.equal(code, 0, stderr);
    const sim = JSON.parse(stdout) as JsonSimulation;
    assert.equal(sim.alerts.length, 1);
    const alert = sim.alerts[0]!;
    assert.deepEqual([alert.fingerprint, alert.status, alert.matched], ['54e69878f8d451e8', 'firing', true]);
    const disable = alert.actions[0]!;
    assert.deepEqual(
      {
        rule: disable.rule,
        action: disable.action,
        id: disable.id,
        remediation: disable.remediation,
        status: disable.status,
        params: disable.params,
        target: disable.target,
        approval: disable.approval,
        approvalRequired: disable.approvalRequired,
        cooldown: disable.cooldown,
        limit: disable.limit,
        after: disable.after,
        error: disable.error,
      },
      {
        rule: 'provider-down',
        action: 'firing:0',
        id: 'disable',
        remediation: 'conduit.disable-provider',
        status: 'queued',
        params: { provider: 'openai' },
        target: 'conduit/provider/openai',
        approval: 'auto',
        approvalRequired: false,
        cooldown: '30m',
        limit: '3/1h',
        after: null,
        error: null,
      },
    );
    assert.match(disable.plan!, /^Set isEnabled=false on Conduit provider "openai"/);
    assert.deepEqual(
      alert.actions.map((a) => [a.action, a.remediation, a.status]),
      [
        ['firing:0', 'conduit.disable-provider', 'queued'],
        ['firing:1', 'notify.webhook', 'waiting'],
        ['firing:2', 'notify.webhook', 'waiting'],
      ],
    );
  });

  it('a matrix of its own: approval required, dry run, an alert no rule matches, a resolution with nothing to do', async () => {
    const matrix = writeMatrix(`
rules:
  - name: sim-approval
    matchers: ['suite="sim"']
    actions:
      - remediation: notify.webhook
        params: { text: '{{ labels.key }}' }
        approval: required
        limit: { max: 2, per: 30m }
      - remediation: notify.webhook
        params: { text: 'dry {{ labels.key }}' }
        dryRun: true
        cooldown: 0s
`);
    const file = messageFile(
      alertMessage([
        { labels: { suite: 'sim', key: 'k1', alertname: 'Sim' } },
        { labels: { suite: 'other', alertname: 'Other' }, fingerprint: 'aaaabbbbccccdddd' },
        { labels: { suite: 'sim', key: 'k2', alertname: 'Sim' }, status: 'resolved', fingerprint: '1111222233334444' },
      ]),
    );
    const { code, stdout, stderr } = await remediator(['simulate', file, '--matrix', matrix]);
    assert.equal(code, 0, stderr);
    const out = lines(stdout);
    assert.ok(
      out.some((l) => /^sim-approval\s+firing:0\s+notify\.webhook\s+pending_approval\s+required\s+10m\s+2\/30m\s+-$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^sim-approval\s+firing:1\s+notify\.webhook\s+queued\s+auto\s+-\s+-\s+-$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^ {2}sim-approval\/firing:0\s+params\s+\{"text":"k1"\}$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^ {2}sim-approval\/firing:1\s+params\s+\{"text":"dry k1"\}$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^ {2}sim-approval\/firing:1\s+dry run\s+planned, not executed$/.test(l)),
      stdout,
    );
    const other = out.indexOf('alert aaaabbbbccccdddd firing alertname="Other" suite="other"');
    assert.ok(other > 0, stdout);
    assert.equal(out[other + 1], '  matches no rule');
    const resolved = out.indexOf('alert 1111222233334444 resolved alertname="Sim" key="k2" suite="sim"');
    assert.ok(resolved > 0, stdout);
    assert.equal(out[resolved + 1], '  matched, but its rules have nothing to do when an alert is resolved');
  });

  it('a file that is not an Alertmanager message exits 1 saying why', async () => {
    const notJson = await remediator(['simulate', messageFile('{"version":'), '--matrix', SHIPPED]);
    assert.equal(notJson.code, 1);
    assert.match(notJson.stderr, /^error: \S+message-\d+\.json: not JSON: /);
    const noAlerts = alertMessage([]) as Record<string, unknown>;
    delete noAlerts['alerts'];
    const notV4 = await remediator(['simulate', messageFile(noAlerts), '--matrix', SHIPPED]);
    assert.equal(notV4.code, 1);
    assert.match(notV4.stderr, /^error: \S+\.json: not an Alertmanager v4 message: \/alerts: Expected required property\n$/);
    const missing = await remediator(['simulate', '/nonexistent/message.json']);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'error: cannot read /nonexistent/message.json: ENOENT\n');
    const badMatrix = await remediator(['simulate', `${FIXTURE_DIRS[0]}/firing-provider-down.json`, '--matrix', writeMatrix('rules: [\n')]);
    assert.equal(badMatrix.code, 1);
    assert.match(badMatrix.stderr, /^error: \S+matrix\.yaml:\d+:\d+: /);
  });

  it('reads the message from stdin with -', async () => {
    const child = spawn(process.execPath, ['bin/remediator.js', 'simulate', '-', '--matrix', SHIPPED, '-o', 'json'], {
      env: { ...process.env, ...OFFLINE_ENV },
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stdin.end(readFileSync(`${FIXTURE_DIRS[0]}/firing-provider-down.json`));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0);
    assert.equal((JSON.parse(stdout) as JsonSimulation).alerts[0]!.actions[0]!.remediation, 'conduit.disable-provider');
  });
});

describe('remediator simulate --url: the service answers, with its gates and existing runs', () => {
  const iso = isolation('cli_simulate');
  let svc: TestService;
  const MATRIX = `
rules:
  - name: sim-online
    matchers: ['suite="sim-online"']
    actions:
      - id: count
        remediation: test.count
        params: { key: '{{ labels.key }}' }
        cooldown: 1h
      - remediation: test.count
        after: count
        params: { key: '{{ labels.key }}-after' }
        cooldown: 0s
`;
  const labels = { suite: 'sim-online', alertname: 'SimOnline', key: 'online' };
  const first = alertMessage([{ labels, startsAt: '2026-11-27T13:31:39Z' }]);
  const later = alertMessage([{ labels, startsAt: '2026-11-27T15:00:00Z' }]);

  before(async () => {
    svc = await startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { TARGET_REDIS_URL: REDIS_URL } });
  });
  after(async () => {
    await svc?.close();
    await iso.drop();
  });

  it('before any run: what the webhook would create', async () => {
    const { code, stdout, stderr } = await remediator(['simulate', messageFile(first), '--url', svc.url, '--token', TOKENS.viewer]);
    assert.equal(code, 0, stderr);
    const out = lines(stdout);
    assert.equal(out[0], 'service: not paused');
    assert.ok(
      out.some((l) => /^RULE\s+ACTION\s+REMEDIATION\s+STATUS\s+APPROVAL\s+AFTER$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^sim-online\s+firing:0\s+test\.count\s+queued\s+auto\s+-$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^sim-online\s+firing:1\s+test\.count\s+waiting\s+auto\s+count succeeded$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^ {2}sim-online\/firing:0\s+params\s+\{"key":"online"\}$/.test(l)),
      stdout,
    );
    assert.ok(
      out.some((l) => /^ {2}sim-online\/firing:0\s+target\s+test\/online$/.test(l)),
      stdout,
    );
  });

  it('after the webhook: the same alert is a duplicate, and the same alert firing again is held by the cooldown', async () => {
    const [counted] = await deliver(svc, first);
    await settled(svc, counted!.id, 'succeeded');
    const again = await remediator(['simulate', messageFile(first), '--url', svc.url], { REMEDIATOR_TOKEN: TOKENS.viewer });
    assert.equal(again.code, 0, again.stderr);
    assert.ok(
      lines(again.stdout).some((l) => /^sim-online\s+firing:0\s+test\.count\s+duplicate \(succeeded\)\s+auto\s+-$/.test(l)),
      again.stdout,
    );
    const existing = new RegExp(`^ {2}sim-online/firing:0\\s+existing\\s+run ${counted!.id} \\(succeeded\\)$`);
    assert.ok(
      lines(again.stdout).some((l) => existing.test(l)),
      again.stdout,
    );

    const file = messageFile(later);
    const json = await remediator(['simulate', file, '--url', svc.url, '--token', TOKENS.viewer, '-o', 'json']);
    assert.equal(json.code, 0, json.stderr);
    const sim = JSON.parse(json.stdout) as JsonSimulation;
    assert.equal(sim.paused, false);
    const [count] = sim.alerts[0]!.actions;
    assert.deepEqual([count!.outcome, count!.status, count!.reason], ['would_suppress', 'suppressed', 'cooldown']);
  });

  it('a wrong token exits 1 with the 401 message', async () => {
    const { code, stdout, stderr } = await remediator([
      'simulate',
      messageFile(first),
      '--url',
      svc.url,
      '--token',
      'wrong-token-0123456789abcdef',
    ]);
    assert.equal(code, 1);
    assert.equal(stdout, '');
    assert.equal(stderr, 'error: missing or unknown bearer token (HTTP 401 UNAUTHORIZED)\n');
  });
});
