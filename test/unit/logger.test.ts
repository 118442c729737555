/** The service's logger on real lines: no header secret, token, password or URL password gets through. */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/logger.js';

function capture() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { log: createLogger('debug', stream), lines };
}

describe('logger', () => {
  it('redacts authorization, x-api-key, tokens, passwords and the password of a URL, keeping the rest', () => {
    const { log, lines } = capture();
    log.info(
      {
        req: {
          method: 'POST',
          url: '/webhooks/alertmanager',
          headers: { authorization: 'Bearer tok-aaaaaaaaaaaa', 'x-api-key': 'key-bbbbbbbbb', cookie: 'sid=cccccc' },
        },
      },
      'request',
    );
    log.warn({ headers: { authorization: 'Bearer tok-dddddddddd', 'x-api-key': 'key-eeeeeeee' } }, 'outbound');
    log.error({ target: { token: 'tok-ffffffff', apiKey: 'key-gggggggg', password: 'pw-hhhhhhhh' } }, 'target');
    log.info({ databaseUrl: 'postgres://app:pw-iiiiiiii@db:5432/conduit', redisUrl: 'redis://:pw-jjjjjjjj@redis:6379' }, 'connecting');
    log.info(
      { target: { url: 'https://user:pw-kkkkkkkk@conduit.example/admin', databaseUrl: 'postgres://token-only-llllllll@db/x' } },
      'nested',
    );
    log.info({ url: 'http://127.0.0.1:9093' }, 'plain url');

    const text = lines.join('\n');
    for (const secret of ['tok-a', 'key-b', 'sid=c', 'tok-d', 'key-e', 'tok-f', 'key-g', 'pw-h', 'pw-i', 'pw-j', 'pw-k', 'token-only-l']) {
      assert.ok(!text.includes(secret), `${secret}... is not in any line:\n${text}`);
    }
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, any>);
    assert.equal(parsed[0]!.req.url, '/webhooks/alertmanager', 'a path without credentials is kept');
    assert.equal(parsed[0]!.req.headers.authorization, '[redacted]');
    assert.equal(parsed[3]!.databaseUrl, 'postgres://app:[redacted]@db:5432/conduit', 'where it went stays readable');
    assert.equal(parsed[3]!.redisUrl, 'redis://:[redacted]@redis:6379');
    assert.equal(parsed[4]!.target.url, 'https://user:[redacted]@conduit.example/admin');
    assert.equal(parsed[4]!.target.databaseUrl, 'postgres://[redacted]@db/x');
    assert.equal(parsed[5]!.url, 'http://127.0.0.1:9093');
  });
});
