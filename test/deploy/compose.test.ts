/**
 * docker-compose.yml as `docker-compose config` resolves it (Debian's docker-compose; skipped, saying
 * why, where it is missing): the roles, the matrix volume, Redis' persistence, the scrape jobs and the
 * Alertmanager receiver pointing at services of the stack, and the README's set-up of remediator.env,
 * whose token Alertmanager then reads.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { parseEnv } from 'node:util';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config.js';

const ROOT = join(import.meta.dirname, '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'remediator-compose-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** The README's commands that create remediator.env, from its Compose walk-through. */
function readmeEnvCommands(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Compose: the whole loop on a laptop'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const commands = block.split('\n').filter((line) => /^(cp|sed) .*remediator\.env/.test(line));
  assert.equal(commands.length, 2, `the walk-through copies and edits remediator.env:\n${block}`);
  return commands;
}

let env: Record<string, string | undefined> = {};
before(() => {
  copyFileSync(join(ROOT, 'remediator.env.example'), join(dir, 'remediator.env.example'));
  copyFileSync(join(ROOT, 'docker-compose.yml'), join(dir, 'docker-compose.yml'));
  for (const command of readmeEnvCommands()) {
    const run = spawnSync('sh', ['-c', command], { cwd: dir, encoding: 'utf8' });
    assert.equal(run.status, 0, `${command}\n${run.stderr}`);
  }
  env = parseEnv(readFileSync(join(dir, 'remediator.env'), 'utf8'));
});

test("the README's remediator.env holds strong tokens the service accepts, and acts (on the demo only)", () => {
  assert.match(env['WEBHOOK_TOKEN'] ?? '', /^[0-9a-f]{64}$/);
  assert.match(env['API_TOKENS'] ?? '', /^admin:admin:[0-9a-f]{64}$/);
  assert.equal(env['DRY_RUN'], 'false');
  const { config, generated } = loadConfig({ ...env, TOKENS_FILE: join(dir, 'tokens.env') });
  assert.deepEqual(generated.stored, {}, 'nothing generated: both tokens come from the file');
  assert.equal(config.dryRun, false);
});

test("alertmanager-token writes remediator.env's WEBHOOK_TOKEN for Alertmanager, and refuses to start without one", () => {
  const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { command: string[]; volumes: string[] }>;
  };
  const service = compose.services['alertmanager-token']!;
  const script = service.command[2]!;
  assert.deepEqual(service.command.slice(0, 2), ['node', '-e']);
  const local = script.replaceAll('/token/', `${dir}/`);
  const ok = spawnSync(process.execPath, ['-e', local], { env: { WEBHOOK_TOKEN: env['WEBHOOK_TOKEN'] }, encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(readFileSync(join(dir, 'remediator-token'), 'utf8'), env['WEBHOOK_TOKEN']);
  assert.equal(statSync(join(dir, 'remediator-token')).mode & 0o777, 0o644, 'Alertmanager runs as nobody and reads it');
  rmSync(join(dir, 'remediator-token'));
  const missing = spawnSync(process.execPath, ['-e', local], { env: {}, encoding: 'utf8' });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /WEBHOOK_TOKEN is not set in remediator\.env/);
});

const noCompose =
  spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0
    ? false
    : 'docker-compose is not installed (apt-get install docker-compose)';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  read_only?: boolean;
  depends_on?: Record<string, { condition: string }>;
}

test(
  'docker-compose config: two roles, the matrix mounted, Redis without eviction, and every scrape and webhook target a service of the stack',
  { skip: noCompose },
  () => {
    const run = spawnSync('docker-compose', ['-f', join(dir, 'docker-compose.yml'), 'config'], { cwd: dir, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const services = (parse(run.stdout) as { services: Record<string, Service> }).services;

    assert.equal(services['api']?.environment?.['ROLE'], 'api');
    assert.equal(services['worker']?.environment?.['ROLE'], 'worker');
    for (const role of ['api', 'worker']) {
      const s = services[role]!;
      assert.equal(s.read_only, true, role);
      assert.ok(
        s.volumes?.includes(`${join(dir, 'config')}:/app/config:ro`),
        `${role} mounts config/ (the matrix): ${s.volumes?.join(', ')}`,
      );
      assert.equal(s.environment?.['WEBHOOK_TOKEN'], env['WEBHOOK_TOKEN'], `${role} gets remediator.env`);
      assert.equal(s.environment?.['CONDUIT_ADMIN_URL'], 'http://demo-conduit:8080');
      assert.equal(s.environment?.['CONDUIT_ADMIN_KEY'], services['demo-conduit']?.environment?.['CONDUIT_ADMIN_KEY']);
      assert.equal(s.depends_on?.['redis']?.condition, 'service_healthy');
      assert.equal(s.depends_on?.['postgres']?.condition, 'service_healthy');
    }
    assert.ok(services['api']!.ports?.some((p) => p.startsWith('127.0.0.1:8080:8080')));
    assert.equal(services['worker']!.ports, undefined, 'the worker publishes nothing');

    const redis = services['redis']!.command!.join(' ');
    assert.match(redis, /--appendonly yes/);
    assert.match(redis, /--maxmemory-policy noeviction/);

    assert.deepEqual(services['demo-conduit']!.command, ['node', '/app/deploy/demo/conduit.mjs']);
    assert.ok(services['demo-conduit']!.volumes?.includes(`${join(dir, 'deploy/demo')}:/app/deploy/demo:ro`));
    assert.ok(services['prometheus']!.volumes?.includes(`${join(dir, 'config/prometheus')}:/etc/prometheus:ro`));
    assert.equal(services['alertmanager']!.depends_on?.['alertmanager-token']?.condition, 'service_completed_successfully');
    assert.ok(services['alertmanager']!.volumes?.includes('alertmanager-token:/etc/alertmanager/token:ro'));

    // What the stack's Prometheus scrapes and where its Alertmanager delivers: services of the stack, on their ports.
    const listens = (name: string): number => (name === 'prometheus' ? 9090 : name === 'alertmanager' ? 9093 : 8080);
    const prometheus = parse(readFileSync(join(ROOT, 'config/prometheus/prometheus.yml'), 'utf8')) as {
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
      alerting: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
    };
    const targets = [
      ...prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets)),
      ...prometheus.alerting.alertmanagers.flatMap((a) => a.static_configs.flatMap((s) => s.targets)),
    ];
    for (const target of targets) {
      const [host, port] = target.split(':');
      if (host === 'localhost') continue; // Prometheus itself
      assert.ok(services[host!], `${target} is a service of the stack`);
      assert.equal(Number(port), listens(host!), target);
    }
    const scraped = new Set(targets.map((t) => t.split(':')[0]));
    for (const name of ['api', 'worker', 'demo-conduit']) assert.ok(scraped.has(name), `Prometheus scrapes ${name}`);

    const alertmanager = parse(readFileSync(join(ROOT, 'config/alertmanager/alertmanager.yml'), 'utf8')) as {
      receivers: Array<{
        name: string;
        webhook_configs?: Array<{ url: string; http_config: { authorization: { credentials_file: string } } }>;
      }>;
    };
    const hook = alertmanager.receivers.find((r) => r.name === 'remediator')!.webhook_configs![0]!;
    assert.equal(hook.url, 'http://api:8080/webhooks/alertmanager');
    assert.equal(hook.http_config.authorization.credentials_file, '/etc/alertmanager/token/remediator-token');
  },
);
