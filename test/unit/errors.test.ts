import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ApiError, DependencyError, ERROR_CODES, toApiError, type ErrorCode } from '../../src/errors.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The rows of the README's error table: `| `CODE` | status | meaning |`. */
function documented(): Map<string, number> {
  const section = README.slice(README.indexOf('### Errors'));
  const rows = new Map<string, number>();
  for (const m of section.matchAll(/^\| `([A-Z_]+)` \| (\d{3}) \|/gm)) rows.set(m[1]!, Number(m[2]));
  return rows;
}

test('every error code is in the README error table with its status, and the table names no other', () => {
  const rows = documented();
  for (const [code, { statusCode }] of Object.entries(ERROR_CODES)) {
    assert.equal(rows.get(code), statusCode, `README documents ${code} as ${statusCode}`);
  }
  assert.deepEqual([...rows.keys()].sort(), Object.keys(ERROR_CODES).sort());
});

test("maps Fastify's own errors onto the project's codes", () => {
  const fastify = (code: string, statusCode: number) => Object.assign(new Error(code), { code, statusCode });
  const cases: Array<[unknown, ErrorCode]> = [
    [fastify('FST_ERR_CTP_BODY_TOO_LARGE', 413), 'PAYLOAD_TOO_LARGE'],
    [fastify('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415), 'UNSUPPORTED_MEDIA_TYPE'],
    [fastify('FST_ERR_CTP_INVALID_JSON_BODY', 400), 'BAD_REQUEST'],
    [fastify('FST_ERR_CTP_EMPTY_JSON_BODY', 400), 'BAD_REQUEST'],
    [
      Object.assign(new Error('body/comment must be string'), { validation: [{}], statusCode: 400, code: 'FST_ERR_VALIDATION' }),
      'VALIDATION',
    ],
    [fastify('FST_ERR_SOMETHING_NEW', 418), 'BAD_REQUEST'],
    [new DependencyError('PostgreSQL', 'query', new Error('connect ECONNREFUSED')), 'UNAVAILABLE'],
    [new TypeError('x is undefined'), 'INTERNAL'],
  ];
  for (const [err, code] of cases) {
    const answer = toApiError(err);
    assert.equal(answer.code, code, String((err as Error).message));
    assert.equal(answer.statusCode, ERROR_CODES[code].statusCode);
  }
});

test('hides the internals of an unexpected error and names the dependency of a failed call', () => {
  assert.equal(toApiError(new Error('password=hunter2 at line 3')).message, 'internal error; see the service log');
  const redis = toApiError(new DependencyError('Redis', 'enqueue', new Error('Connection is closed.')));
  assert.match(redis.message, /^Redis /);
  const own = new ApiError('CONFLICT', 'run x is succeeded');
  assert.equal(toApiError(own), own);
});
