/** BullMQ loses jobs when Redis evicts keys: the service refuses such a Redis at start, unless told otherwise. */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { ConfigError } from '../../src/errors.js';
import { isolation, startService } from '../support/harness.js';
import { startRedisServer } from '../support/redis-server.js';

const MATRIX = `
rules:
  - name: x
    matchers: ['alertname="X"']
    actions:
      - remediation: test.count
        params: { key: k }
`;

describe('Redis maxmemory-policy', () => {
  const iso = isolation('eviction');
  after(() => iso.drop());

  it('refuses a Redis that may evict keys, naming the policy; REDIS_ALLOW_EVICTION=true starts anyway', async () => {
    const server = await startRedisServer();
    try {
      const admin = new Redis(server.url);
      await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
      admin.disconnect();
      await assert.rejects(
        startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { REDIS_URL: server.url } }),
        (err: Error) =>
          err instanceof ConfigError &&
          err.variable === 'REDIS_URL' &&
          /maxmemory-policy allkeys-lru/.test(err.message) &&
          /noeviction/.test(err.message),
      );
      const svc = await startService({
        databaseUrl: iso.databaseUrl,
        prefix: iso.prefix,
        matrix: MATRIX,
        env: { REDIS_URL: server.url, REDIS_ALLOW_EVICTION: 'true' },
      });
      assert.equal((await fetch(`${svc.url}/health/ready`)).status, 200);
      await svc.close();
    } finally {
      await server.stop();
    }
  });
});
