import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { isolation, startService, TOKENS, type TestService } from '../support/harness.js';

const MATRIX = `
rules:
  - name: whoami
    matchers: ['suite="whoami"']
    actions:
      - remediation: test.count
        params: { key: 'k' }
`;

describe('GET /api/whoami names the caller and its role', () => {
  const iso = isolation('whoami');
  let svc: TestService;
  before(async () => {
    svc = await startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { DOCS: 'true' } });
  });
  after(async () => {
    await svc?.close();
    await iso.drop();
  });

  const whoami = (token?: string) => {
    const req = request(svc.url).get('/api/whoami');
    return token === undefined ? req : req.set('Authorization', `Bearer ${token}`);
  };

  it('answers the name and role of each API token, and what that role may do', async () => {
    const cases = [
      [TOKENS.viewer, { name: 'viewer', role: 'viewer', can: { decide: false, control: false } }],
      [TOKENS.approver, { name: 'bob', role: 'approver', can: { decide: true, control: false } }],
      [TOKENS.alice, { name: 'alice', role: 'approver', can: { decide: true, control: false } }],
      [TOKENS.admin, { name: 'root', role: 'admin', can: { decide: true, control: true } }],
    ] as const;
    for (const [token, expected] of cases) {
      const res = await whoami(token).expect(200);
      assert.deepEqual(res.body, expected);
      assert.equal(res.headers['cache-control'], 'no-store');
    }
  });

  it('refuses a missing, unknown or webhook token with 401 and the usual error body', async () => {
    for (const token of [undefined, 'not-a-token-0123456789', 'test-webhook-token-0123456789']) {
      const res = await whoami(token).expect(401);
      assert.equal(res.body.code, 'UNAUTHORIZED', JSON.stringify(res.body));
      assert.equal(res.body.statusCode, 401);
    }
  });

  it('is described in the OpenAPI document with its response shape, and so is /ui', async () => {
    const res = await request(svc.url).get('/docs/json').expect(200);
    const op = res.body.paths['/api/whoami']?.get;
    assert.ok(op, 'GET /api/whoami in OpenAPI');
    assert.deepEqual(op.security, [{ bearer: [] }]);
    const schema = op.responses['200'].content['application/json'].schema;
    assert.deepEqual(Object.keys(schema.properties).sort(), ['can', 'name', 'role']);
    assert.ok(op.responses['401'], '401 documented');
    assert.ok(res.body.paths['/ui']?.get, 'GET /ui in OpenAPI');
  });
});
