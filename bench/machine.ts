import os from 'node:os';
import { Redis } from 'ioredis';
import pg from 'pg';
import { PG_ADMIN_URL, REDIS_URL } from './settings.js';

/** What the bench ran on, for the log line at the start and the report. */
export type Machine = Awaited<ReturnType<typeof machine>>;

export async function machine() {
  const cpus = os.cpus();
  let postgres = 'unknown';
  let redis = 'unknown';
  let postgresSettings = '';
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  admin.on('error', () => {});
  try {
    await admin.connect();
    postgres = (await admin.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]?.v ?? 'unknown';
    const { rows } = await admin.query<{ name: string; setting: string; unit: string | null }>(
      "SELECT name, setting, unit FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'shared_buffers', 'max_connections')",
    );
    postgresSettings = rows.map((r) => `${r.name}=${r.setting}${r.unit === '8kB' ? `×8kB` : ''}`).join(', ');
  } catch {
    // reported as unknown
  } finally {
    await admin.end().catch(() => {});
  }
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  r.on('error', () => {});
  try {
    await r.connect();
    redis = /redis_version:(\S+)/.exec(await r.info('server'))?.[1] ?? 'unknown';
  } catch {
    // reported as unknown
  } finally {
    r.disconnect();
  }
  return {
    cores: cpus.length,
    cpuModel: cpus[0]?.model ?? 'unknown',
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    postgres,
    postgresSettings,
    redis,
  };
}
