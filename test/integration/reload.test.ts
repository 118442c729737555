/**
 * Matrix reload without restart: `POST /-/reload` on a running service, and SIGHUP to a real server
 * process. A valid change applies to the next delivery; an invalid one is refused, the old matrix
 * stays and `remediator_config_last_reload_successful` goes to 0.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import request from 'supertest';
import { deliver } from '../support/api.js';
import { alertMessage, eventually, isolation, startService, TOKENS, writeMatrix } from '../support/harness.js';
import { serviceEnv, startServerProcess } from '../support/server-process.js';

const matrixFor = (alertname: string, cooldown = '0s') => `
defaults: { cooldown: ${cooldown} }
rules:
  - name: reloadable
    matchers: ['alertname="${alertname}"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
`;

/** The same for a server process, which has only the shipped remediations. */
const shippedMatrixFor = (alertname: string, silence = false) =>
  matrixFor(alertname)
    .replace('test.count', 'notify.webhook')
    .replace('{ key:', '{ text:')
    .replace('        params:', silence ? '        silence: 30m\n        params:' : '        params:');

/** The value of one unlabelled sample in a Prometheus exposition. */
function sample(metrics: string, name: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${name} is exported`);
  return Number(line.split(' ')[1]);
}

const metricsOf = async (url: string) => (await fetch(`${url}/metrics`)).text();

describe('POST /-/reload', (s) => {
  const iso = isolation('reload');
  after(() => iso.drop());
  const svc = startService(s, { databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: matrixFor('ReloadOld') });

  it('a valid change decides the next delivery; existing runs keep their settings', async () => {
    const before = await metricsOf(svc.url);
    assert.equal(sample(before, 'remediator_config_last_reload_successful'), 1);
    const startedAt = sample(before, 'remediator_config_last_reload_success_timestamp_seconds');
    assert.ok(Math.abs(startedAt - Date.now() / 1000) < 120, `load time ${startedAt} is now`);

    const old = await deliver(svc, alertMessage([{ labels: { alertname: 'ReloadOld', key: 'a' } }]));
    assert.equal(old.length, 1, 'the old matrix matches ReloadOld');
    assert.equal((await deliver(svc, alertMessage([{ labels: { alertname: 'ReloadNew', key: 'b' } }]))).length, 0);

    writeFileSync(svc.services.config.matrixPath, matrixFor('ReloadNew', '15m'));
    const res = await request(svc.url).post('/-/reload').set('Authorization', `Bearer ${TOKENS.admin}`).expect(200);
    assert.equal(res.body.rules, 1);
    assert.equal(res.body.actions, 1);
    assert.equal(res.body.path, svc.services.config.matrixPath);

    const created = await deliver(svc, alertMessage([{ labels: { alertname: 'ReloadNew', key: 'c' } }]));
    assert.equal(created.length, 1, 'the reloaded matrix matches ReloadNew at once');
    const run = await request(svc.url).get(`/api/runs/${created[0]!.id}`).set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
    assert.equal(run.body.gates.cooldownMs, 15 * 60_000, 'the new run has the new cooldown');
    const earlier = await request(svc.url).get(`/api/runs/${old[0]!.id}`).set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
    assert.equal(earlier.body.gates.cooldownMs, 0, 'the run created before keeps the settings it was created with');
    assert.equal((await deliver(svc, alertMessage([{ labels: { alertname: 'ReloadOld', key: 'd' } }]))).length, 0);

    const after_ = await metricsOf(svc.url);
    assert.equal(sample(after_, 'remediator_config_last_reload_successful'), 1);
    assert.ok(sample(after_, 'remediator_config_last_reload_success_timestamp_seconds') >= startedAt);
  });

  it('an invalid change is refused with file:line:col, the old matrix stays and the metric goes to 0', async () => {
    const goodAt = sample(await metricsOf(svc.url), 'remediator_config_last_reload_success_timestamp_seconds');
    const path = svc.services.config.matrixPath;
    writeFileSync(path, matrixFor('ReloadNew').replace('test.count', 'test.nope'));
    const res = await request(svc.url).post('/-/reload').set('Authorization', `Bearer ${TOKENS.admin}`).expect(422);
    assert.equal(res.body.code, 'INVALID_MATRIX');
    assert.ok(res.body.message.startsWith(`${path}:7:`), res.body.message);
    assert.match(res.body.message, /unknown remediation "test\.nope"/);

    const metrics = await metricsOf(svc.url);
    assert.equal(sample(metrics, 'remediator_config_last_reload_successful'), 0);
    assert.equal(sample(metrics, 'remediator_config_last_reload_success_timestamp_seconds'), goodAt, 'the last good time stays');
    const still = await deliver(svc, alertMessage([{ labels: { alertname: 'ReloadNew', key: 'e' } }]));
    assert.equal(still.length, 1, 'the last valid matrix still decides');

    writeFileSync(path, 'rules: [\n');
    await request(svc.url).post('/-/reload').set('Authorization', `Bearer ${TOKENS.admin}`).expect(422);
    writeFileSync(path, matrixFor('ReloadNew'));
    await request(svc.url).post('/-/reload').set('Authorization', `Bearer ${TOKENS.admin}`).expect(200);
    assert.equal(sample(await metricsOf(svc.url), 'remediator_config_last_reload_successful'), 1, 'a good reload clears the failure');
  });

  it('needs an admin token', async () => {
    await request(svc.url).post('/-/reload').expect(401);
    const res = await request(svc.url).post('/-/reload').set('Authorization', `Bearer ${TOKENS.approver}`).expect(403);
    assert.equal(res.body.code, 'FORBIDDEN');
  });
});

describe('SIGHUP', () => {
  const iso = isolation('sighup');
  after(() => iso.drop());

  it('re-reads the matrix of a running server process, which keeps running; an invalid file is refused', async () => {
    const path = writeMatrix(shippedMatrixFor('HupOld'));
    const server = await startServerProcess(serviceEnv(iso, path, { LOG_LEVEL: 'info' }));
    const { child, url } = server;
    const out = () => server.output();
    try {
      await server.ready();
      const svc = { url };
      assert.equal((await deliver(svc, alertMessage([{ labels: { alertname: 'HupNew', key: 'a' } }]))).length, 0);

      const unserved = 'ALERTMANAGER_URL is not set: actions with `silence`';
      assert.ok(!out().includes(unserved));
      writeFileSync(path, shippedMatrixFor('HupNew', true));
      child.kill('SIGHUP');
      await eventually(async () => out().includes('"msg":"matrix reloaded"'), 10_000, 'reload logged');
      assert.match(out(), /"trigger":"SIGHUP"/);
      assert.ok(out().includes(unserved), 'a reloaded matrix that needs Alertmanager says so, as at start');
      assert.equal((await deliver(svc, alertMessage([{ labels: { alertname: 'HupNew', key: 'b' } }]))).length, 1);

      writeFileSync(path, 'rules:\n  - name: broken\n    matchers: []\n');
      child.kill('SIGHUP');
      await eventually(async () => out().includes('matrix reload refused'), 10_000, 'refusal logged');
      assert.equal(sample(await metricsOf(url), 'remediator_config_last_reload_successful'), 0);
      assert.equal((await deliver(svc, alertMessage([{ labels: { alertname: 'HupNew', key: 'c' } }]))).length, 1);
      assert.equal(child.exitCode, null, 'SIGHUP does not stop the service');
    } finally {
      await server.stop();
    }
  });
});
