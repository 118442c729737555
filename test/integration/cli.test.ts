/** The `remediator` command line, run as an operator runs it: `node bin/remediator.js ...`. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
      [
        'rules:\n  - name: x\n    matchers: [\'alertname="A"\']\n    actions:\n      - remediation: notify.webhook\n        params: { text: hi, bogus: 1 }\n',
        /:6:36: rules\[0\]\.actions\[0\]\.params\.bogus: notify\.webhook takes no param "bogus"/,
      ],
      [
        'rules:\n  - name: x\n    matchers: [\'alertname="A"\']\n    actions:\n      - id: a\n        remediation: notify.webhook\n        after: b\n        params: { text: hi }\n      - id: b\n        remediation: notify.webhook\n        after: a\n        params: { text: hi }\n',
        /:7:16: rules\[0\]\.actions\[0\]\.after: "b" comes later in the list: an action can only wait for one before it/,
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

  describe('check --rules: the matrix against the Prometheus alert rules', () => {
    const RULES = 'config/prometheus/alert-rules.yml';
    /** The warnings printed, one per line. */
    const warnings = (stderr: string) => stderr.split('\n').filter((l) => l.startsWith('warning: '));

    it('the shipped matrix and the shipped rules agree, also with --strict', async () => {
      const { code, stdout, stderr } = await remediator(['check', '--matrix', 'config/response-matrix.yaml', '--rules', RULES, '--strict']);
      assert.equal(code, 0, stderr);
      assert.deepEqual(warnings(stderr), []);
      assert.match(stdout, /^config\/response-matrix\.yaml: 6 rules, \d+ actions, valid$/m);
      assert.match(
        stdout.trim().split('\n').at(-1)!,
        /^config\/prometheus\/alert-rules\.yml: 6 alert rules, \d+ recording rules; every alertname the matrix matches is fired, every label it reads is produced$/,
      );
    });

    it('an alertname no alert rule fires is a warning at its matcher; exit 0, and 1 with --strict', async () => {
      const path = writeMatrix(
        [
          'rules:',
          '  - name: x',
          '    matchers: [\'alertname="NoSuchAlert"\']',
          '    actions:',
          '      - remediation: notify.webhook',
          '        params: { text: hi }',
          '  - name: y',
          '    matchers: [\'severity="high"\', \'alertname=~"HighErrorRate|NoSuchEither"\']',
          '    actions:',
          '      - remediation: notify.webhook',
          "        params: { text: '{{ labels.deployment }}' }",
          '',
        ].join('\n'),
      );
      const loose = await remediator(['check', '--matrix', path, '--rules', RULES]);
      assert.equal(loose.code, 0, loose.stderr);
      assert.deepEqual(warnings(loose.stderr), [
        `warning: ${path}:3:16: rules[0].matchers[0]: no alert rule in ${RULES} fires alertname "NoSuchAlert"`,
        `warning: ${path}:8:35: rules[1].matchers[1]: no alert rule in ${RULES} fires alertname "NoSuchEither"`,
      ]);
      assert.match(loose.stdout, /alert-rules\.yml: 6 alert rules, \d+ recording rules; 2 warnings\n$/);
      const strict = await remediator(['check', '--matrix', path, '--rules', RULES, '--strict']);
      assert.equal(strict.code, 1);
      assert.deepEqual(warnings(strict.stderr), warnings(loose.stderr));
      assert.match(strict.stderr, /^error: 2 warnings with --strict$/m);
    });

    it('a template reading a label the alert rules never produce is a warning at that param or query', async () => {
      const path = writeMatrix(
        [
          'rules:',
          '  - name: x',
          '    matchers: [\'alertname="HighErrorRate"\']',
          '    actions:',
          '      - remediation: kubernetes.rollout-restart',
          "        params: { namespace: '{{ labels.namespace }}', deployment: '{{ labels.cluster }}' }",
          '        check:',
          '          query: \'conduit:http_error_ratio{deployment="{{ labels.deployment }}", pod="{{ labels.pod }}"} > 0.05\'',
          '',
        ].join('\n'),
      );
      const loose = await remediator(['check', '--matrix', path, '--rules', RULES]);
      assert.equal(loose.code, 0, loose.stderr);
      const at = /^HighErrorRate \((config\/prometheus\/alert-rules\.yml:\d+:\d+)\)$/;
      const found = warnings(loose.stderr);
      assert.equal(found.length, 2, loose.stderr);
      const [cluster, pod] = found as [string, string];
      const m1 = new RegExp(
        `^warning: ${path}:6:68: rules\\[0\\]\\.actions\\[0\\]\\.params\\.deployment: reads labels\\.cluster, which alert rule (.*) does not produce$`,
      ).exec(cluster);
      assert.ok(m1, cluster);
      assert.match(m1[1]!, at);
      assert.match(
        pod,
        new RegExp(
          `^warning: ${path}:8:18: rules\\[0\\]\\.actions\\[0\\]\\.check\\.query: reads labels\\.pod, which alert rule HighErrorRate `,
        ),
      );
      const strict = await remediator(['check', '--matrix', path, '--rules', RULES, '--strict']);
      assert.equal(strict.code, 1);
      assert.match(strict.stderr, /^error: 2 warnings with --strict$/m);
    });

    it('labels: from the rule, from by (...), label_replace and recording rules; any name in an expr that reads raw series', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'remediator-rules-'));
      after(() => rmSync(dir, { recursive: true, force: true }));
      const rules = join(dir, 'rules.yml');
      writeFileSync(
        rules,
        [
          'groups:',
          '  - name: g',
          '    rules:',
          '      - record: job:errors:rate5m',
          '        expr: sum by (job) (rate(errors_total[5m]))',
          '      - alert: Summed',
          '        expr: sum(rate(errors_total{job="api"}[5m])) > 1',
          '        labels: { team: db }',
          '      - alert: Grouped',
          '        expr: label_replace(sum by (instance) (up), "host", "$1", "instance", "(.*)") == 0',
          '      - alert: Recorded',
          '        expr: job:errors:rate5m > 1',
          '      - alert: Raw',
          '        expr: up{job="api"} == 0',
          '',
        ].join('\n'),
      );
      const rule = (alert: string, labels: string[]) =>
        [
          `  - name: ${alert.toLowerCase()}`,
          `    matchers: ['alertname="${alert}"']`,
          '    actions:',
          '      - remediation: notify.webhook',
          `        params: { text: '${labels.map((l) => `{{ labels.${l} }}`).join(' ')}' }`,
        ].join('\n');
      const path = writeMatrix(
        [
          'rules:',
          rule('Summed', ['team', 'alertname', 'job']),
          rule('Grouped', ['instance', 'host', 'job']),
          rule('Recorded', ['job', 'instance']),
          rule('Raw', ['job', 'instance']),
          '',
        ].join('\n'),
      );
      const { code, stderr } = await remediator(['check', '--matrix', path, '--rules', rules, '--strict']);
      assert.equal(code, 1);
      const missing = warnings(stderr).map((w) => /reads labels\.(\w+), which alert rule (\w+) \(/.exec(w)?.slice(1).join(' in '));
      assert.deepEqual(missing, ['job in Summed', 'job in Grouped', 'instance in Recorded', 'instance in Raw']);
      assert.match(warnings(stderr)[0]!, new RegExp(`^warning: ${path}:6:`));
      assert.match(warnings(stderr)[0]!, new RegExp(`which alert rule Summed \\(${rules}:6:16\\) does not produce$`));
    });

    it('a rules file that is not one exits 1 naming file, line and column', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'remediator-rules-'));
      after(() => rmSync(dir, { recursive: true, force: true }));
      const cases: Array<[string, RegExp]> = [
        ['groups:\n  - name: g\n    rules:\n      - alert: A\n', /:4:9: groups\[0\]\.rules\[0\]: a rule needs `expr`/],
        ['groups:\n  - name: g\n    rules:\n      - expr: up\n', /:4:9: groups\[0\]\.rules\[0\]: a rule has either `alert` or `record`/],
        ['rules: []\n', /:1:1: groups: a rules file needs a list `groups`/],
        ['groups: [\n', /:\d+:\d+: /],
      ];
      for (const [text, message] of cases) {
        const rules = join(dir, 'rules.yml');
        writeFileSync(rules, text);
        const { code, stderr } = await remediator(['check', '--matrix', 'config/response-matrix.yaml', '--rules', rules]);
        assert.equal(code, 1, text);
        assert.ok(stderr.startsWith(`error: ${rules}:`), stderr);
        assert.match(stderr, message);
      }
      const { code, stderr } = await remediator(['check', '--rules', '/nonexistent/rules.yml']);
      assert.equal(code, 1);
      assert.match(stderr, /^error: --rules: cannot read \/nonexistent\/rules\.yml: ENOENT/);
    });
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
