import { createHash } from 'node:crypto';
import pg from 'pg';
import { on } from '../errors.js';

/**
 * The store's way to PostgreSQL: every failure leaves it as a `DependencyError` naming PostgreSQL,
 * so the webhook and the API answer 503 without guessing from messages.
 */
export interface Db {
  pool: pg.Pool;
  query<R extends pg.QueryResultRow = Record<string, unknown>>(
    text: string | pg.QueryConfig,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>>;
  /** Runs `work` in one transaction on one connection. */
  transaction<T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T>;
}

/**
 * The name a statement is prepared under on each session: derived from its text, so one text is
 * parsed and planned once per session however often it runs. Every text the store sends is built
 * from its code (the values travel as parameters), so the names are a small fixed set.
 */
const statementNames = new Map<string, string>();
export function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `q${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    statementNames.set(text, name);
  }
  return name;
}

/**
 * A session prepared a statement that returns `runs.*` before a migration (run by another replica)
 * added a column: PostgreSQL refuses the old statement before it runs anything. pg-pool destroys a
 * client whose query failed, so trying again reaches another session, which prepares it anew.
 */
const isStalePlan = (err: unknown): boolean =>
  (err as { code?: string }).code === '0A000' && /cached plan must not change result type/.test((err as Error).message);

async function queryFresh<R extends pg.QueryResultRow>(pool: pg.Pool, config: pg.QueryConfig): Promise<pg.QueryResult<R>> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await pool.query<R>(config);
    } catch (err) {
      if (!isStalePlan(err) || attempt >= (pool.options.max ?? 10)) throw err;
    }
  }
}

export function createDb(pool: pg.Pool): Db {
  return {
    pool,
    // A statement with parameters is prepared by name (see statementName); one without runs as it is,
    // and may hold several commands.
    query: <R extends pg.QueryResultRow>(text: string | pg.QueryConfig, values?: unknown[]) =>
      on(
        'PostgreSQL',
        'query',
        typeof text !== 'string'
          ? queryFresh<R>(pool, text)
          : values !== undefined
            ? queryFresh<R>(pool, { name: statementName(text), text, values })
            : pool.query<R>(text),
      ),
    transaction: (work) =>
      on(
        'PostgreSQL',
        'transaction',
        (async () => {
          const client = await pool.connect();
          let failure: Error | undefined;
          try {
            await client.query('BEGIN');
            const result = await work(client);
            await client.query('COMMIT');
            return result;
          } catch (err) {
            failure = err as Error;
            await client.query('ROLLBACK').catch(() => {});
            throw err;
          } finally {
            // A client whose statement failed (a timeout on a stalled connection, say) is destroyed, not reused.
            client.release(failure);
          }
        })(),
      ),
  };
}

/** `application_name` of the service's sessions unless PG_APPLICATION_NAME names another. */
export const DEFAULT_APPLICATION_NAME = 'conduit-remediator';

/**
 * Opens the service's pool; creates the database first when it is missing and the user may.
 * `timeoutMs` bounds every wait on PostgreSQL: a connection from the pool, a statement on the server,
 * the answer to a query on the client side (which also covers a frozen backend or a network path that
 * holds bytes). A client whose query failed is destroyed, not reused; TCP keepalive finds dead peers.
 * Every session carries `applicationName` (an `application_name` in the URL itself takes precedence,
 * as pg reads it), so `pg_stat_activity` and `postgres.kill-idle-connections` tell the service's apart.
 */
export async function openDatabase(
  url: string,
  opts: { max?: number; timeoutMs?: number; applicationName?: string } = {},
): Promise<pg.Pool> {
  const applicationName = opts.applicationName ?? DEFAULT_APPLICATION_NAME;
  await ensureDatabase(url, applicationName);
  const timeoutMs = opts.timeoutMs;
  const pool = new pg.Pool({
    connectionString: url,
    application_name: applicationName,
    max: opts.max ?? 10,
    connectionTimeoutMillis: Math.min(timeoutMs ?? 5000, 5000),
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    // The statements prepared by name (the intake's lookup and insert) keep one plan per session, made
    // for any batch size: PostgreSQL's default plans each execution anew for as long as its cost guess
    // favours that, which is about half of such a statement's time on the server. Set before the new
    // session is handed out; a session that cannot take it is closed and the checkout fails.
    onConnect: (client) => client.query('SET plan_cache_mode = force_generic_plan'),
    ...(timeoutMs !== undefined ? { statement_timeout: timeoutMs, query_timeout: timeoutMs } : {}),
  });
  // An idle client losing its server must not crash the process; the next query reports it.
  pool.on('error', () => {});
  return pool;
}

export async function ensureDatabase(url: string, applicationName = DEFAULT_APPLICATION_NAME): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!name) return;
  const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, application_name: applicationName });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== '3D000') throw err;
  } finally {
    await probe.end().catch(() => {});
  }
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString(), connectionTimeoutMillis: 5000, application_name: applicationName });
  client.on('error', () => {});
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } catch (err) {
    // Another replica created it first.
    if (!['42P04', '23505'].includes((err as { code?: string }).code ?? '')) throw err;
  } finally {
    await client.end().catch(() => {});
  }
}
