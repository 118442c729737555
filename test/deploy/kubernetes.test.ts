/**
 * The Kubernetes manifests of deploy/kubernetes, as `kubectl kustomize` renders each of base,
 * overlays/dev and overlays/production: every object checked for what the deployment promises
 * (probes, pod security, resources, secrets only from the Secret, the matrix mount, replicas,
 * disruption budgets, spreading, network policy, monitoring), and the RBAC Role compared with the
 * requests the Kubernetes remediation tests actually make (recorded by the API stand-in).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { createCatalogue } from '../../remediations/catalogue.js';
import { loadConfig } from '../../src/config.js';
import { parseMatrix } from '../../src/matrix/load.js';
import type { RecordedAccess } from '../support/kube-api-server.js';
import { PROMETHEUS_RULE_FILE, ROOT, RULE_SOURCES, ruleGroups } from './prometheus-rule.js';

type Obj = Record<string, any>;

const hasKubectl = spawnSync('kubectl', ['version', '--client'], { timeout: 10_000 }).status === 0;
const SKIP = !hasKubectl && 'kubectl is not on PATH: the manifests cannot be rendered (kubectl kustomize), nothing is checked';

const APP_NAMESPACE = 'conduit-remediator';
const CONDUIT_NAMESPACE = 'conduit';
const SECRET = 'conduit-remediator';
const UID = 1000; // the image's `node` user (Dockerfile)
const PORT = 8080;

interface Overlay {
  dir: string;
  /** Remediator Deployments: name -> ROLE and replicas. */
  deployments: Record<string, { role: 'api' | 'worker' | 'all'; replicas: number }>;
  /** The Prometheus Operator objects (ServiceMonitor, PrometheusRule, AlertmanagerConfig) are included. */
  monitoring: boolean;
  /** How the egress to the service's own Redis and PostgreSQL is bounded. */
  datastores: 'ports-only' | 'in-cluster-pods' | 'ip-blocks';
}

const OVERLAYS: Overlay[] = [
  {
    dir: 'base',
    deployments: { 'conduit-remediator-api': { role: 'api', replicas: 2 }, 'conduit-remediator-worker': { role: 'worker', replicas: 2 } },
    monitoring: true,
    datastores: 'ports-only',
  },
  {
    dir: 'overlays/dev',
    deployments: { 'conduit-remediator': { role: 'all', replicas: 1 } },
    monitoring: false,
    datastores: 'in-cluster-pods',
  },
  {
    dir: 'overlays/production',
    deployments: { 'conduit-remediator-api': { role: 'api', replicas: 2 }, 'conduit-remediator-worker': { role: 'worker', replicas: 2 } },
    monitoring: true,
    datastores: 'ip-blocks',
  },
];

// --- rendering --------------------------------------------------------------------------------------

const rendered = new Map<string, Promise<Obj[]>>();

/** `kubectl kustomize deploy/kubernetes/<dir>`, parsed (every document must be valid YAML). */
function render(dir: string): Promise<Obj[]> {
  let objects = rendered.get(dir);
  if (!objects) {
    objects = promisify(execFile)('kubectl', ['kustomize', join(ROOT, 'deploy/kubernetes', dir)], {
      timeout: 60_000,
      maxBuffer: 32 * 1024 * 1024,
    }).then(({ stdout }) =>
      parseAllDocuments(stdout).map((doc, i) => {
        assert.equal(doc.errors.length, 0, `${dir}: document ${i + 1}: ${doc.errors.map((e) => e.message).join('; ')}`);
        return doc.toJS() as Obj;
      }),
    );
    rendered.set(dir, objects);
  }
  return objects;
}

const ofKind = (objects: Obj[], kind: string) => objects.filter((o) => o['kind'] === kind);
const named = (objects: Obj[], kind: string, name: string) => objects.find((o) => o['kind'] === kind && o['metadata']?.name === name);
const id = (o: Obj) => `${String(o['kind'])} ${String(o['metadata']?.namespace ?? '')}/${String(o['metadata']?.name)}`;

/** Does a label selector's `matchLabels` (the only form these manifests use) select these labels? */
function selects(selector: Obj | undefined, labels: Obj | undefined): boolean {
  assert.ok(selector, 'a selector is present');
  assert.equal(selector['matchExpressions'], undefined, 'selectors use matchLabels only');
  const match = (selector['matchLabels'] ?? {}) as Obj;
  assert.ok(Object.keys(match).length > 0, 'a selector selects something, not everything');
  return Object.entries(match).every(([k, v]) => labels?.[k] === v);
}

/** A Service's selector is a plain label map. */
const serviceSelector = (s: Obj) => ({ matchLabels: s['spec'].selector as Obj });
const podLabels = (d: Obj) => d['spec'].template.metadata.labels as Obj;
const podSpec = (d: Obj) => d['spec'].template.spec as Obj;
const containersOf = (d: Obj) => [...((podSpec(d)['initContainers'] ?? []) as Obj[]), ...(podSpec(d)['containers'] as Obj[])];
const mainContainer = (d: Obj) => (podSpec(d)['containers'] as Obj[]).find((c) => c['name'] === 'remediator');
/** Deployments running the remediator (a container named `remediator`), not the dev overlay's stores. */
const remediators = (objects: Obj[]) => ofKind(objects, 'Deployment').filter((d) => mainContainer(d) !== undefined);
const envValue = (c: Obj, name: string) => ((c['env'] ?? []) as Obj[]).find((e) => e['name'] === name)?.['value'] as string | undefined;

/** The env ConfigMap a container reads through envFrom, merged with its literal env (which wins). */
function environment(objects: Obj[], c: Obj): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of (c['envFrom'] ?? []) as Obj[]) {
    if (!from['configMapRef']) continue;
    const cm = named(objects, 'ConfigMap', from['configMapRef'].name);
    assert.ok(cm, `ConfigMap ${String(from['configMapRef'].name)} of container ${String(c['name'])} is in the output`);
    Object.assign(env, cm['data']);
  }
  for (const e of (c['env'] ?? []) as Obj[]) if (typeof e['value'] === 'string') env[e['name']] = e['value'];
  return env;
}

/** Kubernetes quantities: CPU in cores, memory in bytes. */
function quantity(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|k|M|G)?$/.exec(String(q));
  assert.ok(m, `quantity ${String(q)}`);
  const factor: Record<string, number> = { m: 1e-3, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9 };
  return Number(m[1]) * (m[2] ? factor[m[2]]! : 1);
}

const MiB = 2 ** 20;

/** Peak RSS of the ROLE=api process from the benchmark (bench/RESULTS.md, scenario 6). */
function benchmarkPeakMiB(): number {
  const results = readFileSync(join(ROOT, 'bench/RESULTS.md'), 'utf8');
  const m = /^\| 6 \| memory:.*?\| (\d+) MiB \(VmHWM\)/m.exec(results);
  assert.ok(m, 'bench/RESULTS.md states the peak RSS of scenario 6');
  return Number(m[1]);
}

/** Every variable the service reads (src/config.ts, src/slack/config.ts) and the contract's Sentinel names. */
function knownVariables(): Set<string> {
  const source = readFileSync(join(ROOT, 'src/config.ts'), 'utf8');
  const schema = source.slice(source.indexOf('const EnvSchema'), source.indexOf('\n});', source.indexOf('const EnvSchema')));
  const names = [...schema.matchAll(/^ {2}([A-Z][A-Z0-9_]*): /gm)].map((m) => m[1]!);
  assert.ok(names.includes('MATRIX_PATH') && names.includes('DATABASE_URL'), 'the variable names were read from src/config.ts');
  return new Set([
    ...names,
    'SLACK_SIGNING_SECRET',
    'SLACK_APPROVERS',
    'REDIS_SENTINELS',
    'REDIS_SENTINEL_NAME',
    'REDIS_SENTINEL_PASSWORD',
  ]);
}

/** Names whose values are secrets: tokens, keys, passwords, and URLs that carry credentials. */
const SECRET_NAME = /(^|_)(TOKEN|TOKENS|SECRET|PASSWORD|KEY)$|(^|_)(DATABASE_URL|REDIS_URL)$|^NOTIFY_WEBHOOK_URL$/;

// --- the recorded Kubernetes requests -----------------------------------------------------------------

const triple = (apiGroup: string, resource: string, verb: string) => `${apiGroup === '' ? 'core' : apiGroup} ${resource} ${verb}`;

let recording: Promise<{ used: string[]; requests: number }> | undefined;

/**
 * Runs test/remediations/kubernetes.test.ts (every kubernetes.* and cert-manager.* remediation
 * against the API stand-in) with KUBE_STANDIN_RECORD set and returns the (apiGroup, resource, verb)
 * triples of the requests it answered. Left out: kubectl's own requests (that test runs kubectl as
 * the reference the remediations are compared with), and requests the stand-in refused as no
 * operation at all (405 method not allowed, 415 unsupported patch type), which the test makes on
 * purpose and no Role rule could make succeed.
 */
function recordedAccess(): Promise<{ used: string[]; requests: number }> {
  recording ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kube-standin-record-'));
    try {
      const file = join(dir, 'requests.jsonl');
      const env: NodeJS.ProcessEnv = { ...process.env, KUBE_STANDIN_RECORD: file };
      // Set by the parent `node --test`: a nested run would report to it instead of to us.
      delete env['NODE_TEST_CONTEXT'];
      const child = spawnSync(process.execPath, ['--import', 'tsx', '--test', 'test/remediations/kubernetes.test.ts'], {
        cwd: ROOT,
        env,
        encoding: 'utf8',
        timeout: 120_000,
      });
      assert.equal(child.status, 0, `the Kubernetes remediation tests pass:\n${String(child.stdout).slice(-3000)}${String(child.stderr)}`);
      assert.match(child.stdout, /^# fail 0$/m);
      const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
      const accesses = lines.map((l) => JSON.parse(l) as RecordedAccess);
      const used = accesses
        .filter((a) => !a.userAgent?.startsWith('kubectl/') && a.status !== 405 && a.status !== 415)
        .map((a) => triple(a.apiGroup, a.resource, a.verb));
      return { used: [...new Set(used)].sort(), requests: accesses.length };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return recording;
}

function granted(role: Obj): string[] {
  const out = new Set<string>();
  for (const rule of role['rules'] as Obj[]) {
    for (const g of rule['apiGroups'] as string[])
      for (const r of rule['resources'] as string[]) for (const v of rule['verbs'] as string[]) out.add(triple(g, r, v));
  }
  return [...out].sort();
}

// --- the tests ------------------------------------------------------------------------------------------

test('the Kubernetes API stand-in records the method of each request as the verb the API server authorizes', async () => {
  const { accessOf } = await import('../support/kube-api-server.js');
  const q = (s = '') => new URLSearchParams(s);
  const base = '/apis/apps/v1/namespaces/conduit/deployments';
  assert.deepEqual(accessOf('GET', `${base}/api`, q()), {
    apiGroup: 'apps',
    resource: 'deployments',
    verb: 'get',
    namespace: 'conduit',
    name: 'api',
  });
  assert.equal(accessOf('GET', base, q())?.verb, 'list');
  assert.equal(accessOf('GET', base, q('watch=true'))?.verb, 'watch');
  assert.equal(accessOf('POST', base, q())?.verb, 'create');
  assert.equal(accessOf('PUT', `${base}/api`, q())?.verb, 'update');
  assert.equal(accessOf('PATCH', `${base}/api/scale`, q())?.resource, 'deployments/scale');
  assert.equal(accessOf('DELETE', `${base}/api`, q())?.verb, 'delete');
  assert.equal(accessOf('DELETE', base, q())?.verb, 'deletecollection');
  assert.equal(accessOf('GET', '/api/v1/namespaces/conduit/pods/p', q())?.apiGroup, '');
  assert.equal(accessOf('GET', '/apis/apps/v1', q()), undefined, 'discovery is no resource access');
});

test('the Role grants exactly what the Kubernetes and cert-manager remediations use', { skip: SKIP, timeout: 180_000 }, async () => {
  const { used, requests } = await recordedAccess();
  assert.ok(requests > 50, `the remediation tests made requests (${requests} recorded)`);
  // What docs/remediations/kubernetes.md names; a new remediation changes both this and the Role.
  assert.ok(used.includes('apps deployments/scale patch') && used.includes('cert-manager.io certificates/status update'), used.join(', '));
  for (const overlay of OVERLAYS) {
    const roles = ofKind(await render(overlay.dir), 'Role');
    assert.equal(roles.length, 1, `${overlay.dir}: one Role`);
    const grants = granted(roles[0]!);
    const unused = grants.filter((g) => !used.includes(g));
    const missing = used.filter((u) => !grants.includes(u));
    assert.deepEqual(
      { grantedButNeverUsed: unused, usedButNotGranted: missing },
      { grantedButNeverUsed: [], usedButNotGranted: [] },
      `${overlay.dir}: the Role's (apiGroup resource verb) set is what the remediations send`,
    );
  }
});

test('the PrometheusRule manifest holds the groups of both rule files, unchanged', () => {
  const docs = parseAllDocuments(readFileSync(join(ROOT, PROMETHEUS_RULE_FILE), 'utf8')).map((d) => d.toJS() as Obj);
  const fix = 'run `node --import tsx test/deploy/prometheus-rule.ts` after changing config/prometheus/*.yml';
  for (const source of RULE_SOURCES) {
    const rule = docs.find((d) => d['metadata']?.name === source.name);
    assert.ok(rule, `${PROMETHEUS_RULE_FILE} has PrometheusRule ${source.name}`);
    assert.deepEqual(rule['spec'].groups, ruleGroups(source.file), `${source.name} equals ${source.file}: ${fix}`);
  }
});

for (const overlay of OVERLAYS) {
  const t = (name: string, fn: (objects: Obj[]) => void | Promise<void>) =>
    test(`${overlay.dir}: ${name}`, { skip: SKIP, timeout: 60_000 }, async () => fn(await render(overlay.dir)));

  t('every object has apiVersion, kind, a name and its namespace; nothing cluster-wide but the namespace', (objects) => {
    assert.ok(objects.length > 10, `${objects.length} objects`);
    const seen = new Set<string>();
    for (const o of objects) {
      assert.match(String(o['apiVersion']), /^[a-z0-9.-]+(\/v\d+(alpha\d+|beta\d+)?)?$|^v1$/, `${id(o)}: apiVersion`);
      assert.match(String(o['kind']), /^[A-Z][A-Za-z]+$/, `${id(o)}: kind`);
      assert.match(String(o['metadata']?.name), /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, `${id(o)}: metadata.name`);
      assert.ok(!seen.has(id(o)), `${id(o)} appears once`);
      seen.add(id(o));
      if (o['kind'] === 'Namespace') {
        assert.equal(o['metadata'].name, APP_NAMESPACE);
        assert.equal(o['metadata'].labels['pod-security.kubernetes.io/enforce'], 'restricted');
        continue;
      }
      assert.ok(!['ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition'].includes(o['kind']), `${id(o)} is not cluster-wide`);
      const expected = ['Role', 'RoleBinding'].includes(o['kind']) ? CONDUIT_NAMESPACE : APP_NAMESPACE;
      assert.equal(o['metadata'].namespace, expected, `${id(o)}: namespace`);
    }
  });

  t('the remediator Deployments, their ROLE and replicas', (objects) => {
    const found = Object.fromEntries(
      remediators(objects).map((d) => [
        d['metadata'].name,
        { role: envValue(mainContainer(d)!, 'ROLE'), replicas: d['spec'].replicas, component: podLabels(d)['app.kubernetes.io/component'] },
      ]),
    );
    const expected = Object.fromEntries(Object.entries(overlay.deployments).map(([name, d]) => [name, { ...d, component: d.role }]));
    assert.deepEqual(found, expected);
    for (const d of ofKind(objects, 'Deployment')) {
      assert.ok(selects(d['spec'].selector, podLabels(d)), `${id(d)}: its selector selects its own pods`);
      const rollout = d['spec'].strategy;
      if (d['spec'].replicas > 1) assert.equal(rollout?.rollingUpdate?.maxUnavailable, 0, `${id(d)}: rolls out without losing capacity`);
    }
  });

  t('pod security: non-root uid 1000, read-only root, no privilege escalation, no capabilities, seccomp RuntimeDefault', (objects) => {
    const deployments = ofKind(objects, 'Deployment');
    assert.ok(deployments.length >= Object.keys(overlay.deployments).length);
    for (const d of deployments) {
      const pod = podSpec(d);
      const remediator = mainContainer(d) !== undefined;
      assert.equal(pod['hostNetwork'] ?? false, false, `${id(d)}: hostNetwork`);
      assert.equal(pod['hostPID'] ?? false, false, `${id(d)}: hostPID`);
      assert.equal(pod['hostIPC'] ?? false, false, `${id(d)}: hostIPC`);
      for (const v of (pod['volumes'] ?? []) as Obj[]) assert.equal(v['hostPath'], undefined, `${id(d)}: volume ${String(v['name'])}`);
      assert.equal(pod['securityContext']?.runAsNonRoot, true, `${id(d)}: pod runAsNonRoot`);
      assert.equal(pod['securityContext']?.seccompProfile?.type, 'RuntimeDefault', `${id(d)}: pod seccomp`);
      assert.ok(containersOf(d).length >= (remediator ? 2 : 1));
      for (const c of containersOf(d)) {
        const where = `${id(d)} container ${String(c['name'])}`;
        const sc = (c['securityContext'] ?? {}) as Obj;
        assert.equal(sc['runAsNonRoot'], true, `${where}: runAsNonRoot`);
        if (remediator) assert.equal(sc['runAsUser'], UID, `${where}: runAsUser`);
        else assert.ok(Number.isInteger(sc['runAsUser']) && sc['runAsUser'] > 0, `${where}: runAsUser is a non-root uid`);
        assert.equal(sc['readOnlyRootFilesystem'], true, `${where}: readOnlyRootFilesystem`);
        assert.equal(sc['allowPrivilegeEscalation'], false, `${where}: allowPrivilegeEscalation`);
        assert.equal(sc['privileged'] ?? false, false, `${where}: privileged`);
        assert.deepEqual(sc['capabilities'], { drop: ['ALL'] }, `${where}: capabilities`);
        assert.equal(sc['seccompProfile']?.type, 'RuntimeDefault', `${where}: seccompProfile`);
      }
    }
  });

  t('resources: requests and limits everywhere; the remediator sized from the benchmark; pinned images', (objects) => {
    const peak = benchmarkPeakMiB();
    for (const d of ofKind(objects, 'Deployment')) {
      for (const c of containersOf(d)) {
        const where = `${id(d)} container ${String(c['name'])}`;
        const r = (c['resources'] ?? {}) as Obj;
        for (const res of ['cpu', 'memory']) {
          assert.ok(r['requests']?.[res] !== undefined && r['limits']?.[res] !== undefined, `${where}: ${res} request and limit`);
          assert.ok(quantity(r['requests'][res]) <= quantity(r['limits'][res]), `${where}: ${res} request within its limit`);
        }
        if (d['metadata'].name.startsWith('conduit-remediator')) {
          // The request covers the peak of the intake benchmarks (about 150 MiB); the limit is above bench/RESULTS.md's measured peak.
          assert.ok(quantity(r['requests'].memory) >= 150 * MiB, `${where}: memory request covers the process at rest`);
          assert.ok(quantity(r['limits'].memory) > peak * MiB, `${where}: memory limit above the measured peak of ${peak} MiB`);
        }
        const image = String(c['image'] ?? '');
        const m = /^(?<repo>[^@]+?)(?::(?<tag>[\w][\w.-]{0,127}))?(?:@(?<digest>sha256:[0-9a-f]{64}))?$/.exec(image);
        assert.ok(m?.groups, `${where}: image ${image}`);
        assert.ok(m.groups['tag'] !== undefined || m.groups['digest'] !== undefined, `${where}: image ${image} has a tag or digest`);
        assert.notEqual(m.groups['tag'], 'latest', `${where}: image ${image} is not :latest`);
      }
    }
  });

  t('probes: liveness /health/live, readiness /health/ready on the service port; grace above SHUTDOWN_TIMEOUT', (objects) => {
    for (const d of remediators(objects)) {
      const c = mainContainer(d)!;
      const env = environment(objects, c);
      const port = ((c['ports'] ?? []) as Obj[]).find((p) => p['name'] === 'http');
      assert.equal(port?.containerPort, Number(env['PORT'] ?? PORT), `${id(d)}: port http is the service's PORT`);
      const probe = (kind: string, path: string) => {
        const get = c[kind]?.httpGet as Obj | undefined;
        assert.ok(get, `${id(d)}: ${kind} is an HTTP GET`);
        assert.equal(get['path'], path, `${id(d)}: ${kind} path`);
        assert.ok(get['port'] === 'http' || get['port'] === port.containerPort, `${id(d)}: ${kind} port`);
      };
      probe('livenessProbe', '/health/live');
      probe('readinessProbe', '/health/ready');
      if (c['startupProbe']) probe('startupProbe', '/health/live');
      const shutdown = /^(\d+)s$/.exec(env['SHUTDOWN_TIMEOUT'] ?? '20s');
      assert.ok(shutdown, `${id(d)}: SHUTDOWN_TIMEOUT is in seconds`);
      const grace = podSpec(d)['terminationGracePeriodSeconds'];
      assert.ok(
        grace > 20 && grace >= Number(shutdown[1]) + 5,
        `${id(d)}: terminationGracePeriodSeconds ${grace} > SHUTDOWN_TIMEOUT + 5 s`,
      );
    }
    for (const d of ofKind(objects, 'Deployment').filter((d) => !mainContainer(d))) {
      for (const c of podSpec(d)['containers'] as Obj[]) {
        assert.ok(c['livenessProbe'] && c['readinessProbe'], `${id(d)} container ${String(c['name'])}: probes`);
      }
    }
  });

  t('an init container runs `remediator migrate` with the service image and environment', (objects) => {
    for (const d of remediators(objects)) {
      const init = (podSpec(d)['initContainers'] ?? []) as Obj[];
      const main = mainContainer(d)!;
      const migrate = init.filter((c) => [...(c['command'] ?? []), ...(c['args'] ?? [])].join(' ') === 'remediator migrate');
      assert.equal(migrate.length, 1, `${id(d)}: one init container runs remediator migrate`);
      assert.equal(migrate[0]!['image'], main['image'], `${id(d)}: same image`);
      assert.deepEqual(migrate[0]!['envFrom'], main['envFrom'], `${id(d)}: same DATABASE_URL and settings`);
    }
  });

  t('secrets only from the Secret; settings only with names the service reads, and accepted by its config', (objects) => {
    const known = knownVariables();
    assert.equal(ofKind(objects, 'Secret').length, 0, 'no Secret is rendered: it is created apart (deploy/kubernetes/README.md)');
    for (const cm of ofKind(objects, 'ConfigMap')) {
      for (const key of Object.keys(cm['data'] ?? {})) assert.doesNotMatch(key, SECRET_NAME, `${id(cm)}: ${key} is a secret`);
    }
    for (const d of ofKind(objects, 'Deployment')) {
      for (const c of containersOf(d)) {
        for (const e of (c['env'] ?? []) as Obj[]) {
          if (SECRET_NAME.test(e['name'])) {
            assert.equal(e['value'], undefined, `${id(d)} ${String(c['name'])}: ${String(e['name'])} has no literal value`);
            assert.ok(e['valueFrom']?.secretKeyRef, `${id(d)} ${String(c['name'])}: ${String(e['name'])} comes from a Secret`);
          }
        }
      }
    }
    for (const d of remediators(objects)) {
      for (const c of containersOf(d)) {
        const where = `${id(d)} container ${String(c['name'])}`;
        const fromSecret = ((c['envFrom'] ?? []) as Obj[]).filter((f) => f['secretRef']);
        assert.deepEqual(
          fromSecret.map((f) => [f['secretRef'].name, f['secretRef'].optional ?? false]),
          [[SECRET, false]],
          `${where}: the Secret ${SECRET} is required`,
        );
        const env = environment(objects, c);
        for (const name of Object.keys(env)) assert.ok(known.has(name), `${where}: ${name} is a variable the service reads`);
      }
      // The settings with stand-ins for what the Secret holds start the service's own config.
      const env = environment(objects, mainContainer(d)!);
      const secrets = {
        WEBHOOK_TOKEN: 'w'.repeat(32),
        API_TOKENS: `ops:admin:${'a'.repeat(32)}`,
        DATABASE_URL: 'postgres://remediator:pw@postgres:5432/remediator',
        REDIS_URL: 'redis://redis:6379',
        ...(env['CONDUIT_ADMIN_URL'] ? { CONDUIT_ADMIN_KEY: 'k'.repeat(32) } : {}),
      };
      const { config } = loadConfig({ ...env, ...secrets });
      assert.equal(config.role, overlay.deployments[d['metadata'].name]?.role);
      assert.equal(config.matrixPath, env['MATRIX_PATH']);
      assert.ok(config.shutdownTimeoutMs < podSpec(d)['terminationGracePeriodSeconds'] * 1000);
    }
  });

  t('the matrix ConfigMap is mounted as a directory (no subPath) and MATRIX_PATH is the file in it', (objects) => {
    const shipped = parseMatrix(
      readFileSync(join(ROOT, 'config/response-matrix.yaml'), 'utf8'),
      'config/response-matrix.yaml',
      createCatalogue(),
    );
    for (const d of remediators(objects)) {
      const c = mainContainer(d)!;
      const matrixPath = environment(objects, c)['MATRIX_PATH'] ?? '';
      assert.ok(matrixPath.startsWith('/'), `${id(d)}: MATRIX_PATH is absolute`);
      const mount = ((c['volumeMounts'] ?? []) as Obj[]).find(
        (m) => m['mountPath'] === matrixPath || matrixPath.startsWith(`${String(m['mountPath'])}/`),
      );
      assert.ok(mount, `${id(d)}: MATRIX_PATH ${matrixPath} is inside a mount`);
      assert.equal(mount['subPath'], undefined, `${id(d)}: the matrix is not mounted with subPath (its file would never update)`);
      assert.notEqual(mount['mountPath'], matrixPath, `${id(d)}: MATRIX_PATH is a file inside the mounted directory`);
      assert.equal(mount['subPathExpr'], undefined);
      assert.equal(mount['readOnly'], true);
      const volume = ((podSpec(d)['volumes'] ?? []) as Obj[]).find((v) => v['name'] === mount['name']);
      assert.ok(volume?.configMap, `${id(d)}: the mount is a ConfigMap volume`);
      assert.equal(volume.configMap.items, undefined, 'every key of the ConfigMap is a file');
      const cm = named(objects, 'ConfigMap', volume.configMap.name);
      assert.ok(cm, `ConfigMap ${String(volume.configMap.name)} is rendered`);
      assert.match(
        cm['metadata'].name,
        /^conduit-remediator-matrix-[a-z0-9]{10}$/,
        'the name carries the content hash: a change rolls the pods',
      );
      const file = matrixPath.slice(String(mount['mountPath']).length + 1);
      const text = cm['data']?.[file];
      assert.equal(typeof text, 'string', `${id(d)}: the ConfigMap has the key ${file}`);
      const matrix = parseMatrix(text, file, createCatalogue());
      assert.deepEqual(
        matrix.rules.map((r) => r.name),
        shipped.rules.map((r) => r.name),
        'the deployed matrix has the rules of config/response-matrix.yaml (copy it to deploy/kubernetes/base/response-matrix.yaml)',
      );
    }
  });

  t('PodDisruptionBudgets select each role and allow a drain; pods are spread over nodes and zones', (objects) => {
    const pdbs = ofKind(objects, 'PodDisruptionBudget');
    assert.equal(pdbs.length, Object.keys(overlay.deployments).length);
    for (const d of remediators(objects)) {
      const covering = pdbs.filter((p) => selects(p['spec'].selector, podLabels(d)));
      assert.equal(covering.length, 1, `${id(d)}: one PodDisruptionBudget selects its pods`);
      const pdb = covering[0]!['spec'];
      if (pdb['maxUnavailable'] !== undefined) assert.ok(pdb['maxUnavailable'] >= 1, `${id(d)}: a drain can evict a pod`);
      else assert.ok(pdb['minAvailable'] < d['spec'].replicas, `${id(d)}: a drain can evict a pod`);
      const others = remediators(objects).filter((o) => o !== d);
      for (const o of others) assert.ok(!selects(pdb['selector'], podLabels(o)), `${id(covering[0]!)} selects only ${id(d)}`);
      const spread = (podSpec(d)['topologySpreadConstraints'] ?? []) as Obj[];
      assert.deepEqual(spread.map((s) => s['topologyKey']).sort(), ['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
      for (const s of spread) assert.ok(selects(s['labelSelector'], podLabels(d)), `${id(d)}: spread over its own pods`);
    }
  });

  t('RBAC: one namespaced Role without `*`, bound in Conduit’s namespace to the service account of the executing pods', (objects) => {
    const roles = ofKind(objects, 'Role');
    const bindings = ofKind(objects, 'RoleBinding');
    assert.equal(roles.length, 1);
    assert.equal(bindings.length, 1);
    const role = roles[0]!;
    for (const rule of role['rules'] as Obj[]) {
      for (const field of ['apiGroups', 'resources', 'verbs', 'resourceNames', 'nonResourceURLs']) {
        for (const v of (rule[field] ?? []) as string[]) assert.ok(!v.includes('*'), `Role rule ${field}: ${v}`);
      }
      assert.equal(rule['nonResourceURLs'], undefined);
    }
    const binding = bindings[0]!;
    assert.deepEqual(binding['roleRef'], { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role['metadata'].name });
    assert.equal(binding['metadata'].namespace, role['metadata'].namespace);
    assert.deepEqual(binding['subjects'], [{ kind: 'ServiceAccount', name: 'conduit-remediator', namespace: APP_NAMESPACE }]);
    const accounts = ofKind(objects, 'ServiceAccount');
    assert.ok(named(accounts, 'ServiceAccount', 'conduit-remediator'), 'the bound service account is rendered');
    for (const sa of accounts) assert.equal(sa['automountServiceAccountToken'], false, `${id(sa)}: no token unless a pod asks`);
    for (const d of ofKind(objects, 'Deployment')) {
      const pod = podSpec(d);
      const role = mainContainer(d) ? envValue(mainContainer(d)!, 'ROLE') : undefined;
      if (role === 'worker' || role === 'all') {
        assert.equal(pod['serviceAccountName'], 'conduit-remediator', `${id(d)}: executes runs as the bound account`);
        assert.equal(pod['automountServiceAccountToken'], true, `${id(d)}: with its token`);
      } else {
        assert.notEqual(pod['serviceAccountName'], 'conduit-remediator', `${id(d)}: not the bound account`);
        assert.equal(pod['automountServiceAccountToken'], false, `${id(d)}: holds no token`);
      }
    }
  });

  t(
    'NetworkPolicy: ingress from Alertmanager and Prometheus, egress to DNS, the API server, Conduit, monitoring, the stores',
    (objects) => {
      const policies = ofKind(objects, 'NetworkPolicy');
      const pods = remediators(objects).map(podLabels);
      const ours = policies.filter((p) => pods.every((l) => selects(p['spec'].podSelector, l)));
      const main = ours.find((p) => p['spec'].ingress !== undefined);
      assert.ok(main, 'a NetworkPolicy with ingress rules selects every remediator pod');
      assert.deepEqual([...main['spec'].policyTypes].sort(), ['Egress', 'Ingress']);
      for (const p of ours) assert.ok(p['spec'].policyTypes.includes('Egress'));
      const ingress = main['spec'].ingress as Obj[];
      for (const rule of ingress) {
        assert.deepEqual(rule['ports'], [{ port: PORT, protocol: 'TCP' }], 'ingress to the service port only');
        for (const peer of rule['from'] as Obj[]) {
          assert.deepEqual(peer['namespaceSelector'], { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } }, 'from monitoring');
          assert.deepEqual(peer['podSelector']?.matchExpressions?.[0]?.values, ['alertmanager', 'prometheus']);
        }
      }
      const egress = ours.flatMap((p) => p['spec'].egress as Obj[]);
      const ports = (r: Obj) => ((r['ports'] ?? []) as Obj[]).map((p) => `${String(p['protocol'])}/${String(p['port'])}`);
      for (const rule of egress) assert.ok(ports(rule).length > 0, 'every egress rule names its ports');
      const to = (r: Obj) => (r['to'] ?? []) as Obj[];
      const dns = egress.find((r) => ports(r).includes('UDP/53') && ports(r).includes('TCP/53'));
      assert.deepEqual(dns && to(dns)[0]?.podSelector, { matchLabels: { 'k8s-app': 'kube-dns' } }, 'DNS to kube-dns');
      assert.ok(
        egress.some((r) => ports(r).includes('TCP/443')),
        'the API server (HTTPS)',
      );
      const conduit = egress.find((r) =>
        to(r).some((p) => p['namespaceSelector']?.matchLabels?.['kubernetes.io/metadata.name'] === CONDUIT_NAMESPACE),
      );
      assert.ok(conduit && ports(conduit).includes('TCP/8080'), "Conduit's Admin API");
      for (const port of ['TCP/9093', 'TCP/9090'])
        assert.ok(
          egress.some((r) => ports(r).includes(port)),
          `monitoring ${port}`,
        );
      const stores = egress.filter((r) => ports(r).some((p) => ['TCP/6379', 'TCP/5432'].includes(p)) && r !== conduit);
      assert.ok(stores.length > 0, "egress to the service's own Redis and PostgreSQL");
      if (overlay.datastores === 'ip-blocks') {
        for (const r of stores) assert.ok(to(r).length > 0 && to(r).every((p) => p['ipBlock']?.cidr), 'the external stores by address');
        assert.ok(
          stores.some((r) => ports(r).includes('TCP/26379')),
          'Redis Sentinel',
        );
      } else if (overlay.datastores === 'in-cluster-pods') {
        for (const r of stores) {
          assert.ok(to(r).length > 0, 'to named pods only');
          for (const peer of to(r)) {
            const target = ofKind(objects, 'Deployment').find((d) => selects(peer['podSelector'], podLabels(d)));
            assert.ok(target && !mainContainer(target), `the in-cluster store ${JSON.stringify(peer['podSelector'])} is rendered`);
            const guard = policies.find((p) => selects(p['spec'].podSelector, podLabels(target)));
            assert.ok(guard, `${id(target)} has its own NetworkPolicy`);
            assert.deepEqual([...guard['spec'].policyTypes].sort(), ['Egress', 'Ingress']);
            for (const rule of guard['spec'].ingress as Obj[])
              for (const from of rule['from'] as Obj[])
                for (const l of pods) assert.ok(selects(from['podSelector'], l), 'from the remediator only');
          }
        }
      }
    },
  );

  t('Services: the API to the pods that serve it, metrics from every pod; the ServiceMonitor selects the metrics Service', (objects) => {
    const deployments = remediators(objects);
    const api = named(objects, 'Service', 'conduit-remediator');
    assert.ok(api);
    for (const d of deployments) {
      const serves = ['api', 'all'].includes(overlay.deployments[d['metadata'].name]!.role);
      assert.equal(selects(serviceSelector(api), podLabels(d)), serves, `${id(api)} ${serves ? 'selects' : 'leaves out'} ${id(d)}`);
    }
    assert.deepEqual(
      api['spec'].ports.map((p: Obj) => [p['port'], p['targetPort']]),
      [[PORT, 'http']],
    );
    const metrics = ofKind(objects, 'Service').filter(
      (s) => s !== api && deployments.every((d) => selects(serviceSelector(s), podLabels(d))),
    );
    assert.equal(metrics.length, 1, 'one Service besides the API one selects every remediator pod');
    assert.equal(metrics[0]!['spec'].clusterIP, 'None', 'headless: each pod is scraped, nothing balanced');
    const monitors = ofKind(objects, 'ServiceMonitor');
    const promRules = ofKind(objects, 'PrometheusRule');
    const amConfigs = ofKind(objects, 'AlertmanagerConfig');
    if (!overlay.monitoring) {
      assert.deepEqual(
        objects.filter((o) => String(o['apiVersion']).startsWith('monitoring.coreos.com/')).map(id),
        [],
        'no Prometheus Operator objects: applies to a bare cluster',
      );
      return;
    }
    assert.equal(monitors.length, 1);
    const sm = monitors[0]!['spec'];
    assert.ok(selects(sm['selector'], metrics[0]!['metadata'].labels), 'the ServiceMonitor selects the metrics Service');
    assert.ok(!selects(sm['selector'], api['metadata'].labels), 'and not the API Service (each pod scraped once)');
    assert.deepEqual(sm['namespaceSelector'], { matchNames: [APP_NAMESPACE] });
    assert.deepEqual(
      sm['endpoints'].map((e: Obj) => [e['port'], e['path']]),
      [['http', '/metrics']],
    );
    assert.ok(metrics[0]!['spec'].ports.some((p: Obj) => p['name'] === 'http'));
    assert.match(String(metrics[0]!['metadata'].labels[sm['jobLabel']]), /remediator/, 'the job label matches job=~".*remediator.*"');
    assert.equal(promRules.length, RULE_SOURCES.length);
    assert.equal(amConfigs.length, 1);
  });

  if (overlay.monitoring) {
    t('the PrometheusRules carry every alert of both rule files; the AlertmanagerConfig routes them with the Secret’s token', (objects) => {
      const alerts = (groups: Obj[]) =>
        groups
          .flatMap((g) => g['rules'] as Obj[])
          .map((r) => r['alert'])
          .filter(Boolean)
          .sort();
      const fromFiles = alerts(RULE_SOURCES.flatMap((s) => ruleGroups(s.file) as Obj[]));
      assert.ok(fromFiles.includes('ConduitProviderDown') && fromFiles.includes('RemediatorDown'));
      assert.deepEqual(alerts(ofKind(objects, 'PrometheusRule').flatMap((r) => r['spec'].groups as Obj[])), fromFiles);
      const shipped = parse(readFileSync(join(ROOT, 'config/alertmanager/alertmanager.yml'), 'utf8')) as Obj;
      const route = (shipped['route'].routes as Obj[]).find((r) => r['receiver'] === 'remediator')!;
      const am = ofKind(objects, 'AlertmanagerConfig')[0]!['spec'];
      const [, value] = /^alertname=~"(.*)"$/.exec(route['matchers'][0])!;
      assert.deepEqual(
        am['route'].matchers,
        [{ name: 'alertname', matchType: '=~', value }],
        'the alerts of config/alertmanager/alertmanager.yml',
      );
      assert.deepEqual(am['route'].groupBy, shipped['route'].group_by);
      assert.equal(am['route'].continue, true);
      const receiver = (am['receivers'] as Obj[]).find((r) => r['name'] === am['route'].receiver);
      const hook = receiver?.webhookConfigs?.[0] as Obj;
      assert.equal(hook['url'], `http://conduit-remediator.${APP_NAMESPACE}.svc:${PORT}/webhooks/alertmanager`);
      assert.equal(hook['sendResolved'], true);
      assert.equal(hook['maxAlerts'], 0);
      assert.deepEqual(hook['httpConfig'], { authorization: { type: 'Bearer', credentials: { name: SECRET, key: 'WEBHOOK_TOKEN' } } });
    });
  }
}
