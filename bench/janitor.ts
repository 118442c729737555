/**
 * Cleans up after the bench even when the orchestrator dies without warning (SIGKILL, or `tsx`'s
 * signal relay killing it on Ctrl-C): started detached by processes.ts, in its own process group, told on
 * stdin what exists (`db <name>`, `prefix <name>`, `pid <pid>`, `dir <path>`). When its stdin closes,
 * for whatever reason, it kills the pids still alive, drops the databases (WITH FORCE), unlinks every
 * Redis key under the prefixes, removes the directories, and exits. Signals do not stop it.
 *
 * `node --import tsx bench/janitor.ts <postgres admin url> <redis url>`
 */
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import pg from 'pg';

const [pgUrl, redisUrl] = process.argv.slice(2);
if (!pgUrl || !redisUrl) {
  process.stderr.write('usage: janitor.ts <postgres admin url> <redis url>\n');
  process.exit(2);
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});

const databases = new Set<string>();
const prefixes = new Set<string>();
const pids = new Set<number>();
const dirs = new Set<string>();
let orderly = false;

const log = (line: string) => {
  try {
    process.stderr.write(`bench janitor: ${line}\n`);
  } catch {
    // the terminal may be gone
  }
};

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function clean(): Promise<void> {
  // Children stop by themselves when the orchestrator's pipes close; whatever is left is killed.
  if (!orderly) await sleep(1500);
  for (const pid of pids) {
    if (alive(pid)) {
      log(`killing leftover process ${pid}`);
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  const admin = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 5000 });
  admin.on('error', () => {});
  try {
    await admin.connect();
    for (const db of databases) {
      await admin
        .query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(db)} WITH (FORCE)`)
        .catch((e: Error) => log(`drop ${db}: ${e.message}`));
    }
  } catch (err) {
    log(`PostgreSQL: ${(err as Error).message}; databases left: ${[...databases].join(', ')}`);
  } finally {
    await admin.end().catch(() => {});
  }
  const redis = new Redis(redisUrl!, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5000 });
  redis.on('error', () => {});
  try {
    await redis.connect();
    for (const prefix of prefixes) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) await redis.unlink(...keys);
      } while (cursor !== '0');
    }
  } catch (err) {
    log(`Redis: ${(err as Error).message}; prefixes left: ${[...prefixes].join(', ')}`);
  } finally {
    redis.disconnect();
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  if (!orderly) log(`cleaned up after an interrupted run (${databases.size} databases, ${prefixes.size} key prefixes)`);
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const [kind, value] = line.trim().split(/\s+/, 2);
  if (!value && kind !== 'done') return;
  if (kind === 'db') databases.add(value!);
  else if (kind === 'prefix') prefixes.add(value!);
  else if (kind === 'pid') pids.add(Number(value));
  else if (kind === 'dir') dirs.add(value!);
  else if (kind === 'done') orderly = true;
});
lines.on('close', () => {
  const hard = setTimeout(() => process.exit(1), 60_000);
  void clean().finally(() => {
    clearTimeout(hard);
    process.exit(0);
  });
});
