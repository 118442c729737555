import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import pg from 'pg';
import { ourPids, type Child } from './processes.js';
import { PG_ADMIN_URL, runId } from './settings.js';

// ---------------------------------------------------------------------------------------------------
// Measurements from /proc.

export function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const rssOf = (c: Child) => procStatus(c.pid, 'VmRSS') ?? c.reportedRss;

interface CpuSnapshot {
  at: number;
  total: number;
  idle: number;
  procs: Map<number, { comm: string; ticks: number }>;
}

/** CPU time of the whole machine and of every process, from /proc (undefined elsewhere). */
function cpuSnapshot(): CpuSnapshot | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const procs = new Map<number, { comm: string; ticks: number }>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        procs.set(Number(entry), {
          comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
          ticks: Number(fields[11]) + Number(fields[12]),
        });
      } catch {
        // exited meanwhile
      }
    }
    return { at: performance.now(), total: f.slice(0, 8).reduce((a, b) => a + b, 0), idle: (f[3] ?? 0) + (f[4] ?? 0), procs };
  } catch {
    return undefined;
  }
}

interface Backend {
  datname: string | null;
  /** `client backend`, `autovacuum worker`, `checkpointer`, `walwriter`... */
  type: string;
}

/** PostgreSQL processes by pid with their database and type, to tell ours from others' and queries from upkeep. */
async function pgBackends(): Promise<Map<number, Backend>> {
  const client = new pg.Client({ connectionString: PG_ADMIN_URL });
  client.on('error', () => {});
  try {
    await client.connect();
    const { rows } = await client.query<{ pid: number; datname: string | null; backend_type: string }>(
      'SELECT pid, datname, backend_type FROM pg_stat_activity',
    );
    return new Map(rows.map((r) => [r.pid, { datname: r.datname, type: r.backend_type }]));
  } catch {
    return new Map();
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Cores used between two snapshots, per party: each child of ours by name (the load generator as
 * `load`), `postgres` (client backends of our databases: the queries), `postgres-bg` (autovacuum of
 * our databases, checkpointer, WAL writer and the other background processes), `redis`,
 * `orchestrator`, `machine` (all busy cores, from /proc/stat) and `other`: the busy cores none of
 * those account for (other users of the machine, other databases' backends, kernel work).
 */
function cpuBetween(a: CpuSnapshot, b: CpuSnapshot, backends: Map<number, Backend>): Record<string, number> {
  const wall = (b.at - a.at) / 1000;
  const out: Record<string, number> = {};
  for (const [pid, p] of b.procs) {
    const before = a.procs.get(pid);
    const ticks = p.ticks - (before && before.comm === p.comm ? before.ticks : 0);
    if (ticks <= 0) continue;
    let party = ourPids.get(pid);
    if (!party && p.comm === 'postgres') {
      const backend = backends.get(pid);
      if (!backend || backend.datname === null) party = 'postgres-bg';
      else if (backend.datname.startsWith(runId)) party = backend.type === 'client backend' ? 'postgres' : 'postgres-bg';
    }
    if (!party && p.comm.startsWith('redis')) party = 'redis';
    if (!party && pid === process.pid) party = 'orchestrator';
    if (party) out[party] = (out[party] ?? 0) + ticks / 100 / wall;
  }
  const total = b.total - a.total;
  if (total > 0) out['machine'] = (1 - (b.idle - a.idle) / total) * os.cpus().length;
  return out;
}

export interface Sampled<T> {
  value: T;
  wallSec: number;
  /** Per child name: peak RSS in bytes while `fn` ran. */
  peakRss: Record<string, number>;
  /** Cores used while `fn` ran, per party (see cpuBetween). */
  cpu: Record<string, number>;
}

/** Runs `fn` while sampling the RSS of `watched` every 50 ms, and the machine's CPU use before and after. */
export async function sampled<T>(watched: Child[], fn: () => Promise<T>): Promise<Sampled<T>> {
  const peak: Record<string, number> = {};
  const cpu0 = cpuSnapshot();
  const sample = () => {
    for (const c of watched) peak[c.name] = Math.max(peak[c.name] ?? 0, rssOf(c));
  };
  sample();
  const timer = setInterval(sample, 50);
  const t0 = performance.now();
  try {
    const value = await fn();
    const wallSec = (performance.now() - t0) / 1000;
    sample();
    const cpu1 = cpuSnapshot();
    const cpu = cpu0 && cpu1 ? cpuBetween(cpu0, cpu1, await pgBackends()) : {};
    // A load generator has exited by now: it reports its own CPU time.
    const loadCpu = (value as { cpuSec?: unknown } | undefined)?.cpuSec;
    if (typeof loadCpu === 'number') cpu['load'] = (cpu['load'] ?? 0) + loadCpu / wallSec;
    if (cpu['machine'] !== undefined) {
      const ours = Object.entries(cpu)
        .filter(([k]) => k !== 'machine')
        .reduce((acc, [, v]) => acc + v, 0);
      cpu['other'] = Math.max(0, cpu['machine'] - ours);
    }
    return { value, wallSec, peakRss: peak, cpu };
  } finally {
    clearInterval(timer);
  }
}
