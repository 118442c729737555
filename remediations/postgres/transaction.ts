import type pg from 'pg';
import { RemediationError } from '../types.js';

/** A PostgreSQL failure as a RemediationError with a stable code. */
export function pgFailure(err: unknown): RemediationError {
  if (err instanceof RemediationError) return err;
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === '42501') return new RemediationError('unauthorized', `permission denied: ${message}`, { cause: err });
  if (code === '57014') return new RemediationError('timeout', `statement timed out: ${message}`, { retryable: true, cause: err });
  if (code === '40001' || code === '40P01') return new RemediationError('conflict', message, { retryable: true, cause: err });
  return new RemediationError('target_error', `PostgreSQL: ${message}`, { retryable: true, cause: err });
}

/**
 * Runs `work` in one transaction with a server-side statement timeout, so a timed-out statement
 * is cancelled and rolled back by PostgreSQL and not merely abandoned by the client.
 */
export async function inTransaction<T>(pool: pg.Pool, timeoutMs: number, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect().catch((err: unknown) => {
    throw pgFailure(err);
  });
  let broken: Error | undefined;
  // The pool detaches its own listener while a client is checked out: a backend killed between
  // two statements would otherwise be an uncaught 'error' that takes the process down.
  const onError = (err: Error): void => {
    broken = err;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    await client.query("SELECT set_config('statement_timeout', $1, true)", [String(timeoutMs)]);
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    if (!(err instanceof RemediationError)) broken = err instanceof Error ? err : new Error(String(err));
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    // A connection that failed mid-transaction may be dead or in an unknown state: do not reuse it.
    client.removeListener('error', onError);
    client.release(broken);
  }
}
