import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { API_TOKENS, WEBHOOK_TOKEN } from './common.js';
import { sleep, tellJanitor } from './processes.js';
import { BENCH, PG_ADMIN_URL, REDIS_URL, ROOT, runId, tag } from './settings.js';

// ---------------------------------------------------------------------------------------------------
// Service groups: a database and a prefix each, so no scenario sees another one's backlog.

export interface Group {
  name: string;
  database: string;
  prefix: string;
  databaseUrl: string;
  pool?: pg.Pool;
  /** Dropped between repetitions. */
  retired?: boolean;
}

const groups: Group[] = [];

export function newGroup(name: string): Group {
  // Every repetition has groups of the same names: a number keeps their databases and prefixes apart.
  const unique = `${name}${groups.length}`;
  const database = `${runId}_${unique}`.toLowerCase();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${database}`;
  const group: Group = { name, database, prefix: `${runId}_${unique}`, databaseUrl: url.toString() };
  groups.push(group);
  tellJanitor(`db ${group.database}`);
  tellJanitor(`prefix ${group.prefix}`);
  return group;
}

export function serviceEnv(group: Group, role: 'api' | 'worker' | 'all', extra: Record<string, string> = {}): Record<string, string> {
  return {
    ROLE: role,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    DATABASE_URL: group.databaseUrl,
    REDIS_URL,
    QUEUE_PREFIX: group.prefix,
    MATRIX_PATH: join(BENCH, 'response-matrix.yaml'),
    BENCH_SHIPPED_MATRIX: join(ROOT, 'config', 'response-matrix.yaml'),
    WEBHOOK_TOKEN,
    API_TOKENS,
    ...extra,
  };
}

export function poolOf(group: Group): pg.Pool {
  if (!group.pool) {
    group.pool = new pg.Pool({ connectionString: group.databaseUrl, max: 2 });
    group.pool.on('error', () => {});
  }
  return group.pool;
}

export async function countRuns(group: Group, where = 'true', values: unknown[] = []): Promise<number> {
  const { rows } = await poolOf(group).query<{ n: string }>(`SELECT count(*) AS n FROM runs WHERE ${where}`, values);
  return Number(rows[0]?.n ?? 0);
}

/** Polls `countRuns(group, where, values)` every 100 ms until it reaches `expected` or `timeoutMs` passed; the last count. */
export async function waitForRuns(group: Group, where: string, values: unknown[], expected: number, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let done = 0;
  while (Date.now() < deadline) {
    done = await countRuns(group, where, values);
    if (done >= expected) break;
    await sleep(100);
  }
  return done;
}

export interface TableStats {
  seqScans: number;
  seqRowsRead: number;
  indexScans: number;
}

/**
 * Scans of the runs table so far (pg_stat_user_tables). PostgreSQL publishes a busy backend's counts
 * about once a second, so the caller waits a little after the load before reading them.
 */
async function runsTableStats(group: Group): Promise<TableStats> {
  const { rows } = await poolOf(group).query<{ s: string; r: string; i: string }>(
    "SELECT seq_scan AS s, seq_tup_read AS r, coalesce(idx_scan, 0) AS i FROM pg_stat_user_tables WHERE relname = 'runs'",
  );
  return { seqScans: Number(rows[0]?.s ?? 0), seqRowsRead: Number(rows[0]?.r ?? 0), indexScans: Number(rows[0]?.i ?? 0) };
}

/** Runs `fn` and returns the runs table's scans meanwhile. */
export async function scanned<T>(group: Group, fn: () => Promise<T>): Promise<{ value: T; scans: TableStats }> {
  // The bench's own queries (counting runs between scenarios) must be published before the first reading.
  await sleep(1500);
  const before = await runsTableStats(group);
  const value = await fn();
  await sleep(1500);
  const after = await runsTableStats(group);
  return {
    value,
    scans: {
      seqScans: after.seqScans - before.seqScans,
      seqRowsRead: after.seqRowsRead - before.seqRowsRead,
      indexScans: after.indexScans - before.indexScans,
    },
  };
}

export const seriesLike = (series: number) => `${tag}${series.toString(16).padStart(2, '0')}%`;

/** Ends our connections to the groups' databases (the janitor drops the databases). */
export async function endPools(): Promise<void> {
  for (const g of groups) await g.pool?.end().catch(() => {});
}

/**
 * Drops the databases and Redis keys of every group so far (their services have stopped), so that the
 * next repetition starts on a machine in the same state as the first: no large tables left for
 * autovacuum and checkpoints to work on. The janitor drops whatever is left at the end.
 */
export async function retireGroups(): Promise<void> {
  const retired = groups.filter((g) => !g.retired);
  if (retired.length === 0) return;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  admin.on('error', () => {});
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  try {
    await admin.connect();
    await redis.connect();
    for (const g of retired) {
      await g.pool?.end().catch(() => {});
      delete g.pool;
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(g.database)} WITH (FORCE)`);
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${g.prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.unlink(...keys);
      } while (cursor !== '0');
      g.retired = true;
    }
  } finally {
    await admin.end().catch(() => {});
    redis.disconnect();
  }
}
