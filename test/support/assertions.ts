/** Assertions on the service's stable error codes: `RemediationError` and `ApiError` codes, and HTTP error bodies. */
import assert from 'node:assert/strict';
import { STATUS_CODES } from 'node:http';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';

/**
 * Asserts that `promise` (or the promise `fn` returns) rejects with an error whose `code` is `code`,
 * and returns that error for further assertions.
 */
export async function rejectsWithCode<E extends Error & { code: unknown } = Error & { code: string }>(
  promise: Promise<unknown> | (() => Promise<unknown>),
  code: string,
): Promise<E> {
  let outcome: { resolved: unknown } | { error: unknown };
  try {
    outcome = { resolved: await (typeof promise === 'function' ? promise() : promise) };
  } catch (error) {
    outcome = { error };
  }
  if ('resolved' in outcome) {
    throw new assert.AssertionError({
      message: `expected a rejection with code ${code}, but it resolved`,
      actual: outcome.resolved,
      expected: code,
      operator: 'rejectsWithCode',
    });
  }
  const err = outcome.error as { code?: unknown; name?: unknown; message?: unknown } | null;
  const actual = typeof err === 'object' && err !== null ? err.code : undefined;
  if (actual !== code) {
    const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new assert.AssertionError({
      message: `expected a rejection with code ${code}, got code ${String(actual)} (${what})`,
      actual,
      expected: code,
      operator: 'rejectsWithCode',
    });
  }
  return outcome.error as E;
}

/** A response as supertest gives it. */
interface HttpAnswer {
  status: number;
  body: unknown;
}

/**
 * Asserts an HTTP error answer: status `status` and exactly the body `{ statusCode, code, error,
 * message }`, with `statusCode` the status, `code` the code (which src/errors.ts gives that status),
 * `error` the status's reason phrase and a message. Returns the message for further assertions.
 */
export function answersWithCode(res: HttpAnswer, status: number, code: ErrorCode): string {
  assert.equal(res.status, status, `HTTP status (body: ${JSON.stringify(res.body)})`);
  assert.equal(ERROR_CODES[code].statusCode, status, `${code} is answered with ${ERROR_CODES[code].statusCode}, not ${status}`);
  const body = res.body as Record<string, unknown>;
  assert.deepEqual(Object.keys(body ?? {}).sort(), ['code', 'error', 'message', 'statusCode'], `error body: ${JSON.stringify(body)}`);
  assert.equal(body['statusCode'], status);
  assert.equal(body['code'], code);
  assert.equal(body['error'], STATUS_CODES[status]);
  assert.equal(typeof body['message'], 'string');
  assert.ok((body['message'] as string).length > 0, 'the message is not empty');
  return body['message'] as string;
}
