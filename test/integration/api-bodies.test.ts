import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { alertMessage, isolation, REDIS_URL, startService, TOKENS, WEBHOOK_TOKEN, type TestService } from '../support/harness.js';

const MATRIX = `
rules:
  - name: approve
    matchers: ['alertname="NeedsApproval"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
`;

describe('decisions and the kill switch as curl sends them', () => {
  const iso = isolation('bodies');
  let svc: TestService;
  before(async () => {
    svc = await startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { TARGET_REDIS_URL: REDIS_URL } });
  });
  after(async () => {
    await svc.close();
    await iso.drop();
  });

  const pending = async (key: string) =>
    (
      await request(svc.url)
        .post('/webhooks/alertmanager')
        .set('Authorization', `Bearer ${WEBHOOK_TOKEN}`)
        .send(alertMessage([{ labels: { alertname: 'NeedsApproval', key } }]))
        .expect(200)
    ).body.runs[0].id as string;

  it('approves and rejects with no body at all, and with an empty JSON body', async () => {
    const a = await pending('no-body');
    const approved = await request(svc.url).post(`/api/runs/${a}/approve`).set('Authorization', `Bearer ${TOKENS.approver}`);
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.approval.comment, null);
    const r = await pending('empty-json');
    const rejected = await request(svc.url)
      .post(`/api/runs/${r}/reject`)
      .set('Authorization', `Bearer ${TOKENS.approver}`)
      .set('Content-Type', 'application/json')
      .send('{}');
    assert.equal(rejected.status, 200, JSON.stringify(rejected.body));
    assert.equal(rejected.body.status, 'rejected');
  });

  it('pauses and resumes with no body', async () => {
    const paused = await request(svc.url).post('/api/control/pause').set('Authorization', `Bearer ${TOKENS.admin}`);
    assert.equal(paused.status, 200, JSON.stringify(paused.body));
    assert.equal(paused.body.paused, true);
    const resumed = await request(svc.url).post('/api/control/resume').set('Authorization', `Bearer ${TOKENS.admin}`);
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    assert.equal(resumed.body.paused, false);
  });

  it('resume and reload take no body: a body with fields is refused 400 and changes nothing', async () => {
    const admin = `Bearer ${TOKENS.admin}`;
    await request(svc.url).post('/api/control/pause').set('Authorization', admin).send({ reason: 'body check' }).expect(200);
    const refused = await request(svc.url).post('/api/control/resume').set('Authorization', admin).send({ reason: 7 });
    assert.deepEqual([refused.status, refused.body.code], [400, 'VALIDATION']);
    const control = await request(svc.url).get('/api/control').set('Authorization', admin).expect(200);
    assert.equal(control.body.paused, true, 'the refused resume left the kill switch on');
    await request(svc.url).post('/api/control/resume').set('Authorization', admin).send({}).expect(200);
    const reload = await request(svc.url).post('/-/reload').set('Authorization', admin).send({ path: '/etc/passwd' });
    assert.deepEqual([reload.status, reload.body.code], [400, 'VALIDATION']);
    await request(svc.url).post('/-/reload').set('Authorization', admin).expect(200);
  });

  it('refuses a malformed decision body with 400, and answers 404 for an id that names no run', async () => {
    const id = await pending('bad-body');
    const bad = await request(svc.url)
      .post(`/api/runs/${id}/approve`)
      .set('Authorization', `Bearer ${TOKENS.approver}`)
      .send({ comment: 5 });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /comment/);
    await request(svc.url).post('/api/runs/not-a-uuid/approve').set('Authorization', `Bearer ${TOKENS.approver}`).send({}).expect(404);
    await request(svc.url).post('/api/runs/not-a-uuid/reject').set('Authorization', `Bearer ${TOKENS.approver}`).expect(404);
    await request(svc.url).get('/api/runs/not-a-uuid').set('Authorization', `Bearer ${TOKENS.viewer}`).expect(404);
    const still = await request(svc.url).get(`/api/runs/${id}`).set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
    assert.equal(still.body.status, 'pending_approval');
  });

  it("answers Fastify's own errors with the project's codes", async () => {
    const auth = `Bearer ${WEBHOOK_TOKEN}`;
    const broken = await request(svc.url)
      .post('/webhooks/alertmanager')
      .set('Authorization', auth)
      .set('Content-Type', 'application/json')
      .send('{"version": ');
    assert.deepEqual([broken.status, broken.body.code], [400, 'BAD_REQUEST']);
    const empty = await request(svc.url)
      .post('/webhooks/alertmanager')
      .set('Authorization', auth)
      .set('Content-Type', 'application/json')
      .send('');
    assert.deepEqual([empty.status, empty.body.code], [400, 'BAD_REQUEST']);
    const text = await request(svc.url)
      .post('/webhooks/alertmanager')
      .set('Authorization', auth)
      .set('Content-Type', 'application/xml')
      .send('<alerts/>');
    assert.deepEqual([text.status, text.body.code], [415, 'UNSUPPORTED_MEDIA_TYPE']);
    const invalid = await request(svc.url).post('/webhooks/alertmanager').set('Authorization', auth).send({ version: '4' });
    assert.deepEqual([invalid.status, invalid.body.code], [400, 'VALIDATION']);
    const missing = await request(svc.url).get('/api/nothing-here').set('Authorization', `Bearer ${TOKENS.viewer}`);
    assert.deepEqual([missing.status, missing.body.code], [404, 'NOT_FOUND']);
    // Refused by the router before any route: a broken escape in the path, a path parameter over its length.
    const badUrl = await request(svc.url).get('/api/runs/%E0%A4%A').set('Authorization', `Bearer ${TOKENS.viewer}`);
    assert.deepEqual([badUrl.status, badUrl.body.code], [400, 'BAD_REQUEST']);
    const longId = await request(svc.url)
      .get(`/api/runs/${'a'.repeat(150)}`)
      .set('Authorization', `Bearer ${TOKENS.viewer}`);
    assert.deepEqual([longId.status, longId.body.code], [400, 'BAD_REQUEST']);
    assert.equal(badUrl.headers['x-content-type-options'], 'nosniff', 'the security headers are on these answers too');
    for (const res of [broken, empty, text, invalid, missing, badUrl, longId]) {
      assert.deepEqual(Object.keys(res.body).sort(), ['code', 'error', 'message', 'statusCode']);
      assert.doesNotMatch(res.body.code, /^FST_/);
    }
  });

  it('serves the OpenAPI document', async () => {
    const doc = await request(svc.url).get('/docs/json').expect(200);
    assert.equal(doc.body.openapi.startsWith('3.'), true);
    for (const path of [
      '/webhooks/alertmanager',
      '/api/runs',
      '/api/runs/{id}',
      '/api/runs/{id}/approve',
      '/api/simulate',
      '/api/control/pause',
    ]) {
      assert.ok(doc.body.paths[path], `${path} documented`);
    }
    await request(svc.url)
      .get('/docs')
      .expect((res) => assert.ok([200, 302].includes(res.status)));
  });
});
