import { Type } from '@sinclair/typebox';
import pg from 'pg';
import { parseDuration } from '../../src/kernel/duration.js';
import { count } from '../summary.js';
import {
  defineRemediation,
  RemediationError,
  throwIfAborted,
  type ExecutionContext,
  type RemediationResult,
  type Targets,
} from '../types.js';
import { Duration, SqlIdentifier } from '../validation.js';
import { refuseOwnDatabase } from './own-database.js';
import { inTransaction, pgFailure } from './transaction.js';

const DEFAULTS = { olderThan: '90d', timestampColumn: 'timestamp', batchSize: 5000 } as const;
// Archiving rows younger than this is a mistake in the matrix, not an emergency measure.
const MIN_OLDER_THAN_MS = 3600_000;
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;
const ARCHIVE_SUFFIX = '_archive';
const TIMESTAMP_TYPES = new Set(['timestamp with time zone', 'timestamp without time zone']);

const Params = Type.Object(
  {
    table: SqlIdentifier,
    olderThan: Type.Optional({ ...Duration, default: DEFAULTS.olderThan }),
    timestampColumn: Type.Optional({ ...SqlIdentifier, default: DEFAULTS.timestampColumn }),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 50_000, default: DEFAULTS.batchSize })),
  },
  { additionalProperties: false },
);

interface ArchiveParams {
  table: string;
  olderThan?: string;
  timestampColumn?: string;
  batchSize?: number;
}

interface Resolved {
  table: string;
  archive: string;
  column: string;
  olderThan: string;
  olderThanMs: number;
  batchSize: number;
}

/** Everything checked before the first query: the allowlist, the identifier shape, the duration. */
function resolve(p: ArchiveParams, ctx: ExecutionContext): Resolved {
  const olderThan = p.olderThan ?? DEFAULTS.olderThan;
  const column = p.timestampColumn ?? DEFAULTS.timestampColumn;
  const batchSize = p.batchSize ?? DEFAULTS.batchSize;
  for (const name of [p.table, column]) {
    if (!IDENTIFIER.test(name) || name.length + ARCHIVE_SUFFIX.length > 63) {
      throw new RemediationError('invalid_params', `not an accepted SQL identifier: ${JSON.stringify(name)}`);
    }
  }
  if (!ctx.targets.settings.archiveTables.includes(p.table)) {
    throw new RemediationError('refused', `table ${p.table} is not in ARCHIVE_TABLES`);
  }
  const olderThanMs = parseDuration(olderThan);
  if (olderThanMs === undefined) throw new RemediationError('invalid_params', `not a duration: ${JSON.stringify(olderThan)}`);
  if (olderThanMs < MIN_OLDER_THAN_MS) throw new RemediationError('refused', `olderThan ${olderThan} is below 1h`);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 50_000) {
    throw new RemediationError('invalid_params', `batchSize must be an integer in 1..50000, got ${batchSize}`);
  }
  return { table: p.table, archive: `${p.table}${ARCHIVE_SUFFIX}`, column, olderThan, olderThanMs, batchSize };
}

/**
 * The database TARGET_DATABASE_URL reaches, as the server names it (through PgBouncer too), must not
 * be the service's own: its tables are never archived, whatever ARCHIVE_TABLES and the matrix say.
 */
async function checkDatabase(client: pg.PoolClient, settings: Targets['settings']): Promise<void> {
  const { rows } = await client.query<{ name: string }>('SELECT current_database() AS name');
  refuseOwnDatabase(rows[0]?.name ?? '', settings, 'postgres.archive-old-data');
}

/** The table must exist and the cut-off column must be a timestamp, or the comparison means nothing. */
async function checkTable(client: pg.PoolClient, r: Resolved): Promise<void> {
  const { rows } = await client.query<{ relkind: string | null; column_type: string | null }>(
    `SELECT c.relkind::text AS relkind, format_type(a.atttypid, a.atttypmod) AS column_type
     FROM pg_class c
     LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped
     WHERE c.oid = to_regclass($1)`,
    [pg.escapeIdentifier(r.table), r.column],
  );
  const row = rows[0];
  if (!row || (row.relkind !== 'r' && row.relkind !== 'p')) throw new RemediationError('not_found', `table ${r.table} does not exist`);
  if (row.column_type === null) throw new RemediationError('not_found', `table ${r.table} has no column ${r.column}`);
  if (!TIMESTAMP_TYPES.has(row.column_type)) {
    throw new RemediationError('invalid_params', `column ${r.table}.${r.column} is ${row.column_type}, not a timestamp`);
  }
}

async function ensureArchiveTable(pool: pg.Pool, r: Resolved, timeoutMs: number): Promise<void> {
  // Asked first because CREATE TABLE IF NOT EXISTS still needs CREATE on the schema when the table
  // exists, and a least-privilege role working on a pre-created archive table has no such right.
  const { rows } = await inTransaction(pool, timeoutMs, (client) =>
    client.query<{ found: boolean }>('SELECT to_regclass($1) IS NOT NULL AS found', [pg.escapeIdentifier(r.archive)]),
  );
  if (rows[0]?.found) return;
  const sql = `CREATE TABLE IF NOT EXISTS ${pg.escapeIdentifier(r.archive)} (LIKE ${pg.escapeIdentifier(r.table)} INCLUDING DEFAULTS)`;
  try {
    await inTransaction(pool, timeoutMs, (client) => client.query(sql));
  } catch (err) {
    // Two runs creating it at once: IF NOT EXISTS is not atomic against the catalog's unique indexes.
    const code = (err as { code?: unknown }).code;
    if (code !== '23505' && code !== '42P07') throw err;
  }
}

/*
 * One statement moves one batch: the rows it deletes are exactly the rows it inserts, and the
 * surrounding transaction commits both or neither, so a crash at any point loses and duplicates
 * nothing. (tableoid, ctid) rather than ctid alone, because ctids repeat across partitions.
 * SKIP LOCKED lets two runs share the work instead of waiting on each other's rows.
 */
function moveBatchSql(r: Resolved): string {
  const t = pg.escapeIdentifier(r.table);
  const col = pg.escapeIdentifier(r.column);
  return `WITH moved AS (
      DELETE FROM ${t}
      WHERE (tableoid, ctid) IN (
        SELECT tableoid, ctid FROM ${t} WHERE ${col} < $1 ORDER BY ${col} LIMIT $2 FOR UPDATE SKIP LOCKED)
      RETURNING *)
    INSERT INTO ${pg.escapeIdentifier(r.archive)} SELECT * FROM moved`;
}

function describe(p: ArchiveParams): string {
  const olderThan = p.olderThan ?? DEFAULTS.olderThan;
  const column = p.timestampColumn ?? DEFAULTS.timestampColumn;
  const batchSize = p.batchSize ?? DEFAULTS.batchSize;
  return (
    `Move the rows of table "${p.table}" whose "${column}" is older than ${olderThan} (cut-off fixed at the start) ` +
    `into "${p.table}${ARCHIVE_SUFFIX}" (created LIKE "${p.table}" INCLUDING DEFAULTS if missing), ` +
    `oldest first, in batches of ${batchSize} rows, each batch deleted and inserted in one transaction.`
  );
}

export default defineRemediation({
  name: 'postgres.archive-old-data',
  summary: 'Moves rows older than a cut-off from an allowlisted table to its _archive twin, one transaction per batch.',
  runbookStep: 'Database Maintenance / Archive Old Data',
  params: Params,
  requires: 'targetDatabase',
  target: (p) => `postgres/table/${p.table}`,
  plan: describe,
  async execute(p, ctx): Promise<RemediationResult> {
    const r = resolve(p, ctx);
    const pool = ctx.targets.targetDatabase;
    if (!pool) throw new RemediationError('target_not_configured', 'TARGET_DATABASE_URL is not configured');
    const cutoff = new Date(ctx.now().getTime() - r.olderThanMs).toISOString();
    const sql = moveBatchSql(r);
    let moved = 0;
    let batches = 0;
    try {
      throwIfAborted(ctx.signal);
      await inTransaction(pool, ctx.timeoutMs, async (client) => {
        await checkDatabase(client, ctx.targets.settings);
        await checkTable(client, r);
      });
      await ensureArchiveTable(pool, r, ctx.timeoutMs);
      for (;;) {
        throwIfAborted(ctx.signal);
        const { rowCount } = await inTransaction(pool, ctx.timeoutMs, (client) => client.query(sql, [cutoff, r.batchSize]));
        const n = rowCount ?? 0;
        if (n > 0) {
          moved += n;
          batches += 1;
          ctx.log.info({ table: r.table, batch: batches, rows: n, moved }, 'archived batch');
        }
        // A short batch means no unlocked old row was left when it ran.
        if (n < r.batchSize) break;
      }
    } catch (err) {
      const failure = pgFailure(err);
      ctx.log.warn({ table: r.table, moved, batches, code: failure.code }, 'archive stopped; committed batches stay archived');
      throw new RemediationError(failure.code, failure.message, {
        retryable: failure.retryable,
        detail: { ...failure.detail, moved, batches, cutoff },
        cause: failure.cause ?? err,
      });
    }
    const older = `older than ${r.olderThan} (${r.column} before ${cutoff})`;
    const summary =
      moved === 0
        ? `Moved no rows of table "${r.table}": none was ${older}`
        : `Moved ${count(moved, 'row')} of table "${r.table}" ${older} to "${r.archive}" in ${count(batches, 'batch', 'batches')}`;
    return { table: r.table, archiveTable: r.archive, moved, batches, cutoff, summary };
  },
});
