/**
 * The benchmark: `npm run bench` (= `tsx bench/run.ts`).
 *
 * Starts everything it needs itself, against the local Redis and PostgreSQL: every service group gets
 * a fresh database and a unique QUEUE_PREFIX, all dropped/cleaned at the end. The service under test
 * runs in child processes (bench/service.ts: the real createServices + buildApp, plus the bench.noop
 * remediation), the load always comes from another child (bench/load.ts) over loopback, and this
 * process only orchestrates and measures (RSS and CPU from /proc/<pid>). Prints one table, writes
 * bench/results.json and bench/RESULTS.md.
 *
 * Environment: BENCH_PG_URL (admin URL, default postgres://postgres@127.0.0.1:5432/postgres),
 * BENCH_REDIS_URL (default redis://127.0.0.1:6379), BENCH_DURATION (seconds, default 10),
 * BENCH_CONNECTIONS (default 50), BENCH_PROFILE=1 (CPU-profile the intake during scenarios 2-4 into
 * bench/profiles/ and bench/PROFILE.md; the figures of a profiled run are not written to RESULTS.md),
 * BENCH_SERVICE_NODE_ARGS (extra node flags for the service processes only, e.g. `--max-old-space-size=128`),
 * BENCH_QUIET_WAIT_SEC (how long to wait at start for other work on the machine to settle, default 30).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import {
  API_TOKENS, SERIES, WEBHOOK_TOKEN, summarize,
  type CannonResult, type LoadSpec, type PacedResult, type StormResult, type Summary,
} from './common.js';
import { profileMarkdown, summarizeProfile, type CpuProfile } from './profile.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const BENCH = join(ROOT, 'bench');
const PG_ADMIN_URL = process.env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const DURATION = Number(process.env['BENCH_DURATION'] ?? 10);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 50);
const PROFILE = process.env['BENCH_PROFILE'] === '1';
/** Extra node flags for the service processes only, e.g. `--max-old-space-size=128`. */
// The service's node flags as `npm start` and the image use them, unless overridden.
const SERVICE_NODE_ARGS = (process.env['BENCH_SERVICE_NODE_ARGS'] ?? '--max-semi-space-size=8').split(/\s+/).filter(Boolean);
const WARMUP_SEC = 2;
const STORM_MESSAGES = 20;
const STORM_ALERTS = 1000;
const DUPLICATES = 10_000;
const EXEC_ALERTS = 200;
const EXEC_RATE = 50;
const HARD_TIMEOUT_MS = Number(process.env['BENCH_TIMEOUT_SEC'] ?? 420) * 1000;
const MiB = 1024 * 1024;

const TARGETS = {
  intakeRatio: 0.2,
  intakeP99Ms: 50,
  stormMaxMs: 250,
  duplicateFactor: 3,
  execP99Ms: 100,
  rssMiB: 200,
};

const tag = randomBytes(3).toString('hex');
const runId = `bench_${Date.now().toString(36)}_${tag}`;
const startsAt = new Date().toISOString().replace('Z', '123456Z');
const work = mkdtempSync(join(os.tmpdir(), 'remediator-bench-'));
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);

// ---------------------------------------------------------------------------------------------------
// Children: every process we start is tracked and killed on exit, on error and on a signal.

const children = new Set<ChildProcess>();

/**
 * The janitor (bench/janitor.ts) drops the databases and Redis keys and kills leftover children when
 * its stdin closes: at the end of the run, or when this process dies in any way, even by SIGKILL.
 * Detached, so a Ctrl-C on the terminal's process group does not reach it.
 */
const janitor = spawn(process.execPath, ['--import', 'tsx', join(BENCH, 'janitor.ts'), PG_ADMIN_URL, REDIS_URL], {
  cwd: ROOT,
  detached: true,
  stdio: ['pipe', 'ignore', 'inherit'],
});
janitor.stdin?.on('error', () => {});
const janitorPid = janitor.pid;
const tellJanitor = (line: string) => void janitor.stdin?.write(`${line}\n`);
tellJanitor(`dir ${work}`);

function killAll(): void {
  for (const proc of children) {
    try {
      proc.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}
process.on('exit', killAll);

interface Child {
  name: string;
  pid: number;
  url: string;
  info: Record<string, unknown>;
  /** Last RSS the child reported itself (only where /proc is missing). */
  reportedRss: number;
  send(line: string): void;
  waitLine(prefix: string, timeoutMs: number): Promise<string>;
  stop(): Promise<void>;
}

/**
 * The service and the baseline run compiled (`npm run build`), as `npm start` and the image run the
 * service: no transpiler in the measured process. The rest runs through tsx.
 */
function spawnTs(script: string, args: string[], env: Record<string, string>, nodeArgs: string[] = []): ChildProcess {
  const compiled = join(ROOT, 'dist', 'bench', script.replace(/\.ts$/, '.js'));
  const measured = script === 'service.ts' || script === 'baseline.ts';
  if (measured && !existsSync(compiled)) throw new Error(`${compiled} missing: run \`npm run build\` first (npm run bench does)`);
  const entry = measured ? [compiled] : ['--import', 'tsx', join(BENCH, script)];
  const proc = spawn(process.execPath, [...nodeArgs, ...entry, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(proc);
  if (proc.pid) {
    ourPids.set(proc.pid, script === 'load.ts' ? 'load' : script.replace(/\.ts$/, ''));
    tellJanitor(`pid ${proc.pid}`);
  }
  proc.on('exit', () => children.delete(proc));
  proc.stdin?.on('error', () => {});
  return proc;
}

function exitOf(proc: ChildProcess): Promise<number> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode ?? 128);
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 0))));
}

const shownStderr = new Set<string>();
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function startChild(name: string, script: string, env: Record<string, string>): Promise<Child> {
  if (interrupted) throw new Error('interrupted');
  // --expose-gc only lets the service answer `mem` with its heap after a full collection.
  const proc = spawnTs(script, [], env, script === 'service.ts' ? ['--expose-gc', ...SERVICE_NODE_ARGS] : []);
  if (proc.pid) ourPids.set(proc.pid, name);
  const stderrTail: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    stderrTail.push(line);
    if (stderrTail.length > 30) stderrTail.shift();
    // Each distinct line once per bench run (deprecation warnings repeat in every child).
    const key = line.replace(/^\(node:\d+\) /, '');
    if (key.startsWith('(Use `node --trace-warnings') || shownStderr.has(key)) return;
    shownStderr.add(key);
    process.stderr.write(`[${name}] ${line}\n`);
  });
  const waiters: Array<{ prefix: string; resolve: (line: string) => void }> = [];
  const exited = exitOf(proc);
  const child: Child = {
    name,
    pid: proc.pid ?? 0,
    url: '',
    info: {},
    reportedRss: 0,
    send: (line) => void proc.stdin?.write(`${line}\n`),
    waitLine(prefix, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: no "${prefix}" within ${timeoutMs} ms`)), timeoutMs);
        const waiter = { prefix, resolve: (line: string) => { clearTimeout(timer); resolve(line); } };
        waiters.push(waiter);
        void exited.then((code) => {
          clearTimeout(timer);
          reject(new Error(`${name} exited (${code}) while waiting for "${prefix}": ${stderrTail.slice(-10).join(' | ')}`));
        });
      });
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      child.send('stop');
      const code = await Promise.race([exited, sleep(15_000).then(() => undefined)]);
      if (code === undefined) {
        proc.kill('SIGKILL');
        await exited;
      }
    },
  };
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    if (line.startsWith('MEM ')) {
      child.reportedRss = Math.max(child.reportedRss, Number(line.slice(4)));
      return;
    }
    const i = waiters.findIndex((w) => line.startsWith(w.prefix));
    if (i >= 0) waiters.splice(i, 1)[0]!.resolve(line);
  });
  const ready = child.waitLine('READY ', 60_000);
  ready.catch(() => {});
  try {
    child.info = JSON.parse((await ready).slice('READY '.length)) as Record<string, unknown>;
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  child.url = `http://127.0.0.1:${String(child.info['port'])}`;
  return child;
}

// ---------------------------------------------------------------------------------------------------
// Measurements from /proc.

function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
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
        procs.set(Number(entry), { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), ticks: Number(fields[11]) + Number(fields[12]) });
      } catch {
        // exited meanwhile
      }
    }
    return { at: performance.now(), total: f.slice(0, 8).reduce((a, b) => a + b, 0), idle: (f[3] ?? 0) + (f[4] ?? 0), procs };
  } catch {
    return undefined;
  }
}

/** Every process this run started, by pid: the services by name, load generators as `load`. */
const ourPids = new Map<number, string>(janitorPid ? [[janitorPid, 'janitor']] : []);

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
    const { rows } = await client.query<{ pid: number; datname: string | null; backend_type: string }>('SELECT pid, datname, backend_type FROM pg_stat_activity');
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

interface Sampled<T> {
  value: T;
  wallSec: number;
  /** Per child name: peak RSS in bytes while `fn` ran. */
  peakRss: Record<string, number>;
  /** Cores used while `fn` ran, per party (see cpuBetween). */
  cpu: Record<string, number>;
}

/** Runs `fn` while sampling the RSS of `watched` every 50 ms, and the machine's CPU use before and after. */
async function sampled<T>(watched: Child[], fn: () => Promise<T>): Promise<Sampled<T>> {
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
      const ours = Object.entries(cpu).filter(([k]) => k !== 'machine').reduce((acc, [, v]) => acc + v, 0);
      cpu['other'] = Math.max(0, cpu['machine'] - ours);
    }
    return { value, wallSec, peakRss: peak, cpu };
  } finally {
    clearInterval(timer);
  }
}

// ---------------------------------------------------------------------------------------------------
// Load: always another process.

type Loaded<T> = T & { cpuSec: number };

async function runLoad<T>(spec: LoadSpec): Promise<Loaded<T>> {
  const id = randomBytes(4).toString('hex');
  const specPath = join(work, `spec-${id}.json`);
  const resultPath = join(work, `result-${id}.json`);
  writeFileSync(specPath, JSON.stringify(spec));
  const proc = spawnTs('load.ts', [specPath, resultPath], {});
  const tail: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 20) tail.shift();
  });
  proc.stdout?.resume();
  const code = await exitOf(proc);
  if (code !== 0 || !existsSync(resultPath)) throw new Error(`load (${spec.mode}) exited ${code}: ${tail.join(' | ')}`);
  return JSON.parse(readFileSync(resultPath, 'utf8')) as Loaded<T>;
}

// ---------------------------------------------------------------------------------------------------
// Service groups: a database and a prefix each, so no scenario sees another one's backlog.

interface Group {
  name: string;
  database: string;
  prefix: string;
  databaseUrl: string;
  pool?: pg.Pool;
}

const groups: Group[] = [];

function newGroup(name: string): Group {
  const database = `${runId}_${name}`.toLowerCase();
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${database}`;
  const group = { name, database, prefix: `${runId}_${name}`, databaseUrl: url.toString() };
  groups.push(group);
  tellJanitor(`db ${group.database}`);
  tellJanitor(`prefix ${group.prefix}`);
  return group;
}

function serviceEnv(group: Group, role: 'api' | 'worker' | 'all', extra: Record<string, string> = {}): Record<string, string> {
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

function poolOf(group: Group): pg.Pool {
  if (!group.pool) {
    group.pool = new pg.Pool({ connectionString: group.databaseUrl, max: 2 });
    group.pool.on('error', () => {});
  }
  return group.pool;
}

async function countRuns(group: Group, where = 'true', values: unknown[] = []): Promise<number> {
  const { rows } = await poolOf(group).query<{ n: string }>(`SELECT count(*) AS n FROM runs WHERE ${where}`, values);
  return Number(rows[0]?.n ?? 0);
}

interface TableStats {
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
async function scanned<T>(group: Group, fn: () => Promise<T>): Promise<{ value: T; scans: TableStats }> {
  // The bench's own queries (counting runs between scenarios) must be published before the first reading.
  await sleep(1500);
  const before = await runsTableStats(group);
  const value = await fn();
  await sleep(1500);
  const after = await runsTableStats(group);
  return {
    value,
    scans: { seqScans: after.seqScans - before.seqScans, seqRowsRead: after.seqRowsRead - before.seqRowsRead, indexScans: after.indexScans - before.indexScans },
  };
}

const seriesLike = (series: number) => `${tag}${series.toString(16).padStart(2, '0')}%`;

/** Ends our connections and lets the janitor drop the databases and keys; waits for it. */
async function cleanup(): Promise<void> {
  for (const g of groups) await g.pool?.end().catch(() => {});
  tellJanitor('done');
  janitor.stdin?.end();
  await exitOf(janitor);
}

let cleaning: Promise<void> | undefined;
let interrupted = false;
async function shutdown(code: number, reason?: string): Promise<never> {
  interrupted = true;
  if (reason) log(reason);
  killAll();
  cleaning ??= cleanup();
  await Promise.race([cleaning, sleep(60_000)]);
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130, 'interrupted; cleaning up'));
process.on('SIGTERM', () => void shutdown(143, 'terminated; cleaning up'));
setTimeout(() => void shutdown(1, `the bench took longer than ${HARD_TIMEOUT_MS / 1000} s; stopped`), HARD_TIMEOUT_MS).unref();

// ---------------------------------------------------------------------------------------------------
// Profiling (BENCH_PROFILE=1): the service profiles itself through the inspector, per scenario.

const profiles: Array<{ name: string; path: string }> = [];
async function profiled<T>(svc: Child, name: string, fn: () => Promise<T>): Promise<T> {
  if (!PROFILE) return fn();
  const dir = join(BENCH, 'profiles');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.cpuprofile`);
  const started = svc.waitLine('PROFILE-STARTED', 10_000);
  svc.send('profile-start');
  await started;
  try {
    return await fn();
  } finally {
    const done = svc.waitLine('PROFILE-DONE', 30_000);
    svc.send(`profile-stop ${path}`);
    await done;
    profiles.push({ name, path });
  }
}

// ---------------------------------------------------------------------------------------------------
// Round trips: the service counts what it sends to PostgreSQL and Redis.

interface OpTiming {
  calls: number;
  totalMs: number;
  maxMs: number;
}

interface Counters {
  pgQueries: number;
  redisCommands: number;
  /** The intake's steps, timed in the service (see service.ts). */
  timings: Record<string, OpTiming>;
}

async function counters(svc: Child): Promise<Counters> {
  const line = svc.waitLine('COUNTERS ', 10_000);
  svc.send('counters');
  return JSON.parse((await line).slice('COUNTERS '.length)) as Counters;
}

/** Runs `fn` and returns what the service sent to PostgreSQL and Redis meanwhile, and its step timings. */
async function counted<T>(svc: Child, fn: () => Promise<T>): Promise<{ value: T; sent: Counters }> {
  const before = await counters(svc);
  const value = await fn();
  const after = await counters(svc);
  return { value, sent: { pgQueries: after.pgQueries - before.pgQueries, redisCommands: after.redisCommands - before.redisCommands, timings: after.timings } };
}

// ---------------------------------------------------------------------------------------------------
// Scenarios.

type Stripped = Omit<Sampled<unknown>, 'value'>;

interface Scenarios {
  baseline?: { load: Loaded<CannonResult>; sampled: Stripped };
  /** `sent`: PostgreSQL statements and Redis commands the service sent during the scenario, warm-up included. */
  intake?: { load: Loaded<CannonResult>; sampled: Stripped; runsStored: number; sent: Counters; alertsSent: number; scans: TableStats };
  intakeAll?: { load: Loaded<CannonResult>; sampled: Stripped; runsStored: number; executedDuring: number };
  storm?: { load: Loaded<StormResult>; sampled: Stripped; runsStored: number; sent: Counters; alertsSent: number; scans: TableStats };
  duplicates?: { load: Loaded<CannonResult>; sampled: Stripped; knownAlerts: number; runsBefore: number; runsAfter: number; sent: Counters; alertsSent: number; scans: TableStats };
  memory?: { vmHwm: number; peakSampled: number; perScenario: Record<string, number>; process?: MemReport };
  execAll?: ExecResult;
  execSplit?: ExecResult;
}

/** process.memoryUsage() of the service at the end of scenario 4, before and after a full GC. */
interface MemReport {
  before: NodeJS.MemoryUsage;
  /** V8 heap spaces (bytes reserved) before the GC. */
  heapSpaces: Record<string, number>;
  /** /proc/self/smaps_rollup: Rss, Anonymous, Shared_Clean, Private_Clean (bytes). */
  smaps?: Record<string, number>;
  afterGc?: NodeJS.MemoryUsage;
}

interface ExecResult {
  role: string;
  load: Loaded<PacedResult>;
  webhookMs: Summary;
  /** Webhook 200 (client clock) to bench.noop start (service clock), ms. */
  execMs: Summary;
  executed: number;
  missing: number;
  peakRss: Record<string, number>;
  cpu: Record<string, number>;
}

const scenarios: Scenarios = {};
const errors: Record<string, string> = {};
const strip = <T>(s: Sampled<T>) => ({ wallSec: s.wallSec, peakRss: s.peakRss, cpu: s.cpu });

function cannonSpec(url: string, series: number, warmupSeries: number | undefined): LoadSpec {
  return {
    mode: 'cannon',
    url,
    connections: CONNECTIONS,
    durationSec: DURATION,
    source: { kind: 'unique', tag, series, startsAt },
    ...(warmupSeries !== undefined ? { warmup: { durationSec: WARMUP_SEC, source: { kind: 'unique', tag, series: warmupSeries, startsAt } } } : {}),
  };
}

async function scenarioBaseline(): Promise<void> {
  const base = await startChild('baseline', 'baseline.ts', { PORT: '0', HOST: '127.0.0.1' });
  try {
    log(`1 baseline: bare Fastify route, c=${CONNECTIONS}, ${DURATION} s (+${WARMUP_SEC} s warm-up)`);
    const s = await sampled([base], () => runLoad<CannonResult>(cannonSpec(base.url, SERIES.baseline, SERIES.baselineWarmup)));
    scenarios.baseline = { load: s.value, sampled: strip(s) };
  } finally {
    await base.stop();
  }
}

/** Scenarios 2, 3, 4 and 6 on one ROLE=api service process (no worker competing). */
async function scenariosIntake(): Promise<void> {
  const group = newGroup('a');
  // No worker drains this group's queue by design; a 1 h REQUEUE_AFTER keeps the sweeper from
  // re-adding the still-queued runs of scenario 2 during scenarios 3-4 (an artifact of the set-up).
  const svc = await startChild('svc-api', 'service.ts', serviceEnv(group, 'api', { REQUEUE_AFTER: '1h' }));
  const perScenario: Record<string, number> = {};
  let peakSampled = 0;
  const track = (name: string, s: Sampled<unknown>) => {
    perScenario[name] = s.peakRss[svc.name] ?? 0;
    peakSampled = Math.max(peakSampled, perScenario[name]!);
  };
  try {
    log(`2 intake: unique single-alert messages, ROLE=api, c=${CONNECTIONS}, ${DURATION} s (+${WARMUP_SEC} s warm-up); ${String(svc.info['rules'])} rules`);
    const { value: { value: s2, sent: sent2 }, scans: scans2 } = await scanned(group, () => counted(svc, () => sampled([svc], () => profiled(svc, 'intake', () => runLoad<CannonResult>(cannonSpec(svc.url, SERIES.intake, SERIES.intakeWarmup))))));
    track('intake', s2);
    scenarios.intake = {
      load: s2.value, sampled: strip(s2), sent: sent2, scans: scans2,
      alertsSent: await countRuns(group, 'fingerprint LIKE $1 OR fingerprint LIKE $2', [seriesLike(SERIES.intake), seriesLike(SERIES.intakeWarmup)]),
      runsStored: await countRuns(group, 'fingerprint LIKE $1', [seriesLike(SERIES.intake)]),
    };

    log(`3 storm: ${STORM_MESSAGES} sequential messages of ${STORM_ALERTS} unique alerts`);
    const { value: { value: s3, sent: sent3 }, scans: scans3 } = await scanned(group, () => counted(svc, () => sampled([svc], () => profiled(svc, 'storm', () => runLoad<StormResult>({
      mode: 'storm', url: svc.url, messages: STORM_MESSAGES, alertsPerMessage: STORM_ALERTS, tag, series: SERIES.storm, startsAt,
    })))));
    track('storm', s3);
    scenarios.storm = {
      load: s3.value, sampled: strip(s3), sent: sent3, scans: scans3, alertsSent: STORM_MESSAGES * STORM_ALERTS,
      runsStored: await countRuns(group, 'fingerprint LIKE $1', [seriesLike(SERIES.storm)]),
    };

    const { rows } = await poolOf(group).query<{ fingerprint: string }>(
      'SELECT fingerprint FROM runs WHERE fingerprint LIKE $1 ORDER BY seq LIMIT $2',
      [seriesLike(SERIES.intake), DUPLICATES],
    );
    const known = rows.map((r) => r.fingerprint);
    if (known.length === 0) throw new Error('scenario 2 stored no runs; nothing to re-deliver');
    log(`4 duplicate flood: ${DUPLICATES} re-deliveries of ${known.length} known alerts, c=${CONNECTIONS}`);
    const runsBefore = await countRuns(group);
    const { value: { value: s4, sent: sent4 }, scans: scans4 } = await scanned(group, () => counted(svc, () => sampled([svc], () => profiled(svc, 'duplicates', () => runLoad<CannonResult>({
      mode: 'cannon', url: svc.url, connections: CONNECTIONS, amount: DUPLICATES, source: { kind: 'list', fingerprints: known, startsAt },
    })))));
    track('duplicates', s4);
    const runsAfter = await countRuns(group);
    scenarios.duplicates = { load: s4.value, sampled: strip(s4), sent: sent4, scans: scans4, alertsSent: s4.value.sent, knownAlerts: known.length, runsBefore, runsAfter };
    const vmHwm = procStatus(svc.pid, 'VmHWM') ?? peakSampled;
    const reported = svc.waitLine('MEM-REPORT ', 10_000);
    svc.send('mem');
    const memReport = JSON.parse((await reported).slice('MEM-REPORT '.length)) as MemReport;
    scenarios.memory = { vmHwm, peakSampled, perScenario, process: memReport };
  } finally {
    await svc.stop();
  }
}

/** Scenario 2 again with the worker in the same process (ROLE=all), executing while it takes alerts. */
async function scenarioIntakeAll(): Promise<void> {
  const group = newGroup('b');
  const svc = await startChild('svc-all', 'service.ts', serviceEnv(group, 'all'));
  try {
    log(`2b intake with the worker in the same process (ROLE=all), c=${CONNECTIONS}, ${DURATION} s`);
    const s = await sampled([svc], () => runLoad<CannonResult>(cannonSpec(svc.url, SERIES.intakeAll, SERIES.intakeAllWarmup)));
    scenarios.intakeAll = {
      load: s.value,
      sampled: strip(s),
      runsStored: await countRuns(group, 'fingerprint LIKE $1', [seriesLike(SERIES.intakeAll)]),
      executedDuring: await countRuns(group, "status = 'succeeded'"),
    };
  } finally {
    await svc.stop();
  }
}

async function waitExecuted(group: Group, fingerprints: string[], timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let done = 0;
  while (Date.now() < deadline) {
    done = await countRuns(group, "fingerprint = ANY($1) AND status IN ('succeeded', 'failed', 'suppressed')", [fingerprints]);
    if (done >= fingerprints.length) break;
    await sleep(100);
  }
  return done;
}

/** Scenario 5: webhook 200 to the remediation starting, at a steady rate. */
async function scenarioExec(split: boolean): Promise<ExecResult> {
  const group = newGroup(split ? 'd' : 'c');
  const started: Child[] = [];
  try {
    const api = await startChild(split ? 'svc-api5' : 'svc-all5', 'service.ts', serviceEnv(group, split ? 'api' : 'all'));
    started.push(api);
    if (split) started.push(await startChild('svc-worker5', 'service.ts', serviceEnv(group, 'worker')));
    const role = split ? 'ROLE=api + ROLE=worker processes' : 'ROLE=all';
    log(`5${split ? 'b' : 'a'} alert to execution, ${role}: ${EXEC_ALERTS} alerts at ${EXEC_RATE}/s (+20 warm-up)`);
    const warm = await runLoad<PacedResult>({ mode: 'paced', url: api.url, count: 20, ratePerSec: EXEC_RATE, tag, series: SERIES.execWarmup, startsAt });
    await waitExecuted(group, warm.alerts.map((a) => a.fingerprint), 15_000);
    const s = await sampled(started, () => runLoad<PacedResult>({ mode: 'paced', url: api.url, count: EXEC_ALERTS, ratePerSec: EXEC_RATE, tag, series: SERIES.exec, startsAt }));
    const load = s.value;
    const fps = load.alerts.filter((a) => a.status === 200).map((a) => a.fingerprint);
    const executed = await waitExecuted(group, fps, 30_000);
    const { rows } = await poolOf(group).query<{ fingerprint: string; started: number | null }>(
      "SELECT fingerprint, (result->>'startedAt')::float8 AS started FROM runs WHERE fingerprint = ANY($1)",
      [fps],
    );
    const startedAt = new Map(rows.map((r) => [r.fingerprint, r.started]));
    const lat: number[] = [];
    for (const a of load.alerts) {
      const st = startedAt.get(a.fingerprint);
      if (a.status === 200 && typeof st === 'number') lat.push(st - a.okAt);
    }
    return { role, load, webhookMs: load.latencyMs, execMs: summarize(lat), executed, missing: EXEC_ALERTS - lat.length, peakRss: s.peakRss, cpu: s.cpu };
  } finally {
    for (const c of started.reverse()) await c.stop();
  }
}

// ---------------------------------------------------------------------------------------------------
// Report.

async function machine() {
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

const fmtInt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '—');
const fmtMs = (n: number | undefined) => (n !== undefined && Number.isFinite(n) ? (Math.abs(n) >= 100 ? n.toFixed(0) : n.toFixed(1)) : '—');
const fmtX = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}×` : '—');
const fmtMiB = (bytes: number) => `${(bytes / MiB).toFixed(0)} MiB`;
/** `CPU in cores: service 0.59, postgres 0.80, redis 0.10, load 0.40; machine 1.9 of 2 busy`. */
const cpuOf = (s: { cpu: Record<string, number> }, name: string) => {
  const c = s.cpu;
  if (c[name] === undefined) return '';
  const f = (v: number | undefined) => (v ?? 0).toFixed(2);
  const bg = c['postgres-bg'] ?? 0;
  return `CPU cores: ${name === 'baseline' ? 'server' : 'service'} ${f(c[name])}, postgres ${f(c['postgres'])}${bg >= 0.05 ? ` (+${f(bg)} upkeep)` : ''}, redis ${f(c['redis'])}, load ${f(c['load'])}, other ${f(c['other'])}; machine ${f(c['machine'])} of ${os.cpus().length} busy`;
};

interface Row {
  id: string;
  scenario: string;
  rate: string;
  p50: string;
  p99: string;
  max: string;
  detail: string;
  target: string;
  result: 'PASS' | 'FAIL' | 'info' | 'error';
}

interface Verdict {
  id: string;
  target: string;
  met: boolean | undefined;
  note: string;
}

function report(): { rows: Row[]; verdicts: Verdict[]; figures: Record<string, number> } {
  const rows: Row[] = [];
  const verdicts: Verdict[] = [];
  const figures: Record<string, number> = {};
  const rate = (r: CannonResult, alertsPerMessage = 1) => (r.ok * alertsPerMessage) / r.durationSec;
  const failures = (r: CannonResult) => (r.non2xx + r.errors > 0 ? `; ${r.non2xx} non-2xx ${JSON.stringify(r.statusCodes)}, ${r.errors} errors` : '');

  const b = scenarios.baseline;
  const baseRps = b ? rate(b.load) : NaN;
  if (b) {
    figures['baselineRps'] = baseRps;
    rows.push({
      id: '1', scenario: `baseline: bare Fastify 5 route, same body + schema, c=${CONNECTIONS}, ${DURATION} s`, rate: `${fmtInt(baseRps)} req/s`,
      p50: fmtMs(b.load.latencyMs.p50), p99: fmtMs(b.load.latencyMs.p99), max: fmtMs(b.load.latencyMs.max),
      detail: `${fmtInt(b.load.ok)} requests${failures(b.load)}; ${cpuOf(b.sampled, 'baseline')}`, target: 'ceiling', result: 'info',
    });
  } else rows.push(errorRow('1', 'baseline', errors['baseline']));

  const s2 = scenarios.intake;
  const s2Rate = s2 ? rate(s2.load) : NaN;
  if (s2) {
    const ratio = s2Rate / baseRps;
    const okRatio = ratio >= TARGETS.intakeRatio;
    const okP99 = s2.load.latencyMs.p99 < TARGETS.intakeP99Ms;
    const clean = s2.load.non2xx + s2.load.errors === 0;
    figures['intakeAlertsPerSec'] = s2Rate;
    figures['intakeRatio'] = ratio;
    figures['intakeP99Ms'] = s2.load.latencyMs.p99;
    rows.push({
      id: '2', scenario: `intake: unique single-alert messages, auto bench.noop, ROLE=api, c=${CONNECTIONS}, ${DURATION} s`, rate: `${fmtInt(s2Rate)} alerts/s`,
      p50: fmtMs(s2.load.latencyMs.p50), p99: fmtMs(s2.load.latencyMs.p99), max: fmtMs(s2.load.latencyMs.max),
      detail: `${fmtX(ratio)} baseline; ${fmtInt(s2.runsStored)} runs stored${failures(s2.load)}; ${perAlert(s2.sent, s2.alertsSent)}${seqScans(s2.scans)}; ${cpuOf(s2.sampled, 'svc-api')}`,
      target: `≥ ${TARGETS.intakeRatio}× baseline, p99 < ${TARGETS.intakeP99Ms} ms`, result: okRatio && okP99 && clean ? 'PASS' : 'FAIL',
    });
    const need = TARGETS.intakeRatio * baseRps;
    verdicts.push({
      id: '2', target: rows.at(-1)!.target, met: okRatio && okP99 && clean,
      note: [
        okRatio ? `throughput met: ${fmtX(ratio)} of the baseline's ${fmtInt(baseRps)} req/s` : `throughput gap: ${fmtX(ratio)} of the baseline; needs ${fmtInt(need)} alerts/s, ${fmtX(need / s2Rate)} the measured ${fmtInt(s2Rate)}`,
        okP99 ? `p99 met: ${fmtMs(s2.load.latencyMs.p99)} ms` : `p99 gap: ${fmtMs(s2.load.latencyMs.p99)} ms against ${TARGETS.intakeP99Ms} ms`,
        ...(clean ? [] : [`${s2.load.non2xx} non-2xx answers and ${s2.load.errors} errors under load`]),
      ].join('; '),
    });
  } else rows.push(errorRow('2', 'intake, ROLE=api', errors['intake']));

  const s2b = scenarios.intakeAll;
  if (s2b) {
    const r = rate(s2b.load);
    figures['intakeAllAlertsPerSec'] = r;
    rows.push({
      id: '2b', scenario: `intake as 2, worker in the same process (ROLE=all)`, rate: `${fmtInt(r)} alerts/s`,
      p50: fmtMs(s2b.load.latencyMs.p50), p99: fmtMs(s2b.load.latencyMs.p99), max: fmtMs(s2b.load.latencyMs.max),
      detail: `${fmtX(r / baseRps)} baseline; ${fmtInt(s2b.executedDuring)} runs executed meanwhile${failures(s2b.load)}; ${cpuOf(s2b.sampled, 'svc-all')}`,
      target: `info (2's target: ${fmtX(r / baseRps)}, p99 ${fmtMs(s2b.load.latencyMs.p99)} ms)`, result: 'info',
    });
  } else rows.push(errorRow('2b', 'intake, ROLE=all', errors['intakeAll']));

  const s3 = scenarios.storm;
  if (s3) {
    const m = s3.load.messages;
    const okAll = m.every((x) => x.status === 200 && x.received === STORM_ALERTS && x.runs === STORM_ALERTS);
    const max = s3.load.latencyMs.max;
    const alerts = m.filter((x) => x.status === 200).length * STORM_ALERTS;
    const busy = m.reduce((acc, x) => acc + x.ms, 0) / 1000;
    const met = okAll && max < TARGETS.stormMaxMs;
    figures['stormMaxMs'] = max;
    figures['stormAlertsPerSec'] = alerts / busy;
    rows.push({
      id: '3', scenario: `storm: ${STORM_MESSAGES} sequential messages × ${fmtInt(STORM_ALERTS)} unique alerts, ROLE=api`, rate: `${fmtInt(alerts / busy)} alerts/s`,
      p50: fmtMs(s3.load.latencyMs.p50), p99: fmtMs(s3.load.latencyMs.p99), max: fmtMs(max),
      detail: `per message; ${m.filter((x) => x.status === 200).length}/${m.length} answered 200, ${fmtInt(s3.runsStored)} runs stored; ${perAlert(s3.sent, s3.alertsSent, m.length)}${seqScans(s3.scans)}; ${cpuOf(s3.sampled, 'svc-api')}`,
      target: `each message < ${TARGETS.stormMaxMs} ms`, result: met ? 'PASS' : 'FAIL',
    });
    verdicts.push({
      id: '3', target: rows.at(-1)!.target, met,
      note: met ? `slowest of ${m.length} messages ${fmtMs(max)} ms`
        : `slowest message ${fmtMs(max)} ms, median ${fmtMs(s3.load.latencyMs.p50)} ms against ${TARGETS.stormMaxMs} ms (${fmtX(max / TARGETS.stormMaxMs)} the target)${okAll ? '' : `; not every message answered 200 with ${STORM_ALERTS} runs: ${JSON.stringify(m.filter((x) => x.status !== 200 || x.runs !== STORM_ALERTS).slice(0, 3))}`}`,
    });
  } else rows.push(errorRow('3', 'storm', errors['intake']));

  const s4 = scenarios.duplicates;
  if (s4) {
    const r = rate(s4.load);
    const created = s4.runsAfter - s4.runsBefore;
    const factor = r / s2Rate;
    const met = factor >= TARGETS.duplicateFactor && created === 0 && s4.load.non2xx + s4.load.errors === 0;
    figures['duplicateAlertsPerSec'] = r;
    figures['duplicateFactor'] = factor;
    figures['duplicateRunsCreated'] = created;
    rows.push({
      id: '4', scenario: `duplicate flood: ${fmtInt(DUPLICATES)} re-deliveries of ${fmtInt(s4.knownAlerts)} known alerts, c=${CONNECTIONS}`, rate: `${fmtInt(r)} alerts/s`,
      p50: fmtMs(s4.load.latencyMs.p50), p99: fmtMs(s4.load.latencyMs.p99), max: fmtMs(s4.load.latencyMs.max),
      detail: `${fmtX(factor)} scenario 2; ${created} runs created${failures(s4.load)}; ${perAlert(s4.sent, s4.alertsSent)}${seqScans(s4.scans)}; ${cpuOf(s4.sampled, 'svc-api')}`,
      target: `≥ ${TARGETS.duplicateFactor}× scenario 2, 0 runs created`, result: met ? 'PASS' : 'FAIL',
    });
    verdicts.push({
      id: '4', target: rows.at(-1)!.target, met,
      note: [
        factor >= TARGETS.duplicateFactor ? `throughput met: ${fmtX(factor)} scenario 2` : `throughput gap: ${fmtX(factor)} scenario 2 (${fmtInt(r)} against the ${fmtInt(TARGETS.duplicateFactor * s2Rate)} alerts/s needed)`,
        created === 0 ? 'dedup met: 0 runs created' : `dedup FAILED: ${created} runs created by re-deliveries`,
      ].join('; '),
    });
  } else rows.push(errorRow('4', 'duplicate flood', errors['intake']));

  for (const [id, ex, key] of [['5a', scenarios.execAll, 'execAll'], ['5b', scenarios.execSplit, 'execSplit']] as const) {
    if (!ex) {
      rows.push(errorRow(id, `alert to execution (${id === '5a' ? 'ROLE=all' : 'api + worker'})`, errors[key]));
      continue;
    }
    const met = ex.execMs.p99 < TARGETS.execP99Ms && ex.missing === 0;
    figures[`${key}P99Ms`] = ex.execMs.p99;
    rows.push({
      id, scenario: `alert → execution: ${EXEC_ALERTS} alerts at ${EXEC_RATE}/s, ${ex.role}`, rate: '—',
      p50: fmtMs(ex.execMs.p50), p99: fmtMs(ex.execMs.p99), max: fmtMs(ex.execMs.max),
      detail: `webhook 200 → bench.noop start; webhook itself p50 ${fmtMs(ex.webhookMs.p50)} / p99 ${fmtMs(ex.webhookMs.p99)} ms; ${ex.executed}/${EXEC_ALERTS} executed; other CPU ${(ex.cpu['other'] ?? 0).toFixed(2)} cores`,
      target: `p99 < ${TARGETS.execP99Ms} ms`, result: met ? 'PASS' : 'FAIL',
    });
    verdicts.push({
      id, target: `${ex.role}: p99 < ${TARGETS.execP99Ms} ms`, met,
      note: met ? `p99 ${fmtMs(ex.execMs.p99)} ms (p50 ${fmtMs(ex.execMs.p50)} ms)`
        : `p99 ${fmtMs(ex.execMs.p99)} ms against ${TARGETS.execP99Ms} ms${ex.missing ? `; ${ex.missing} alerts never started` : ''}`,
    });
  }

  const mem = scenarios.memory;
  if (mem) {
    const peak = Math.max(mem.vmHwm, mem.peakSampled);
    const met = peak < TARGETS.rssMiB * MiB;
    figures['peakRssMiB'] = peak / MiB;
    rows.push({
      id: '6', scenario: 'memory: peak RSS of the ROLE=api service process over scenarios 2-4', rate: '—', p50: '—', p99: '—', max: '—',
      detail: `${fmtMiB(peak)} (VmHWM); sampled peaks: ${Object.entries(mem.perScenario).map(([k, v]) => `${k} ${fmtMiB(v)}`).join(', ')}${memDetail(mem.process)}`,
      target: `< ${TARGETS.rssMiB} MiB`, result: met ? 'PASS' : 'FAIL',
    });
    verdicts.push({ id: '6', target: rows.at(-1)!.target, met, note: met ? `peak ${fmtMiB(peak)}` : `peak ${fmtMiB(peak)}, ${fmtMiB(peak - TARGETS.rssMiB * MiB)} over` });
  } else rows.push(errorRow('6', 'memory', errors['intake']));

  for (const v of ['2', '3', '4', '5a', '5b', '6']) {
    if (!verdicts.some((x) => x.id === v)) verdicts.push({ id: v, target: '', met: undefined, note: 'not measured: the scenario failed (see errors)' });
  }
  verdicts.sort((a, b) => a.id.localeCompare(b.id));
  return { rows, verdicts, figures };
}

const NOISY_CORES = 0.3;

/** `; runs table: 120 sequential scans read 2,400,000 rows`, when there were any. */
function seqScans(t: TableStats): string {
  return t.seqScans > 0 ? `; runs table: ${fmtInt(t.seqScans)} sequential scans read ${fmtInt(t.seqRowsRead)} rows (${fmtInt(t.indexScans)} index scans)` : '';
}

/** `per alert: 2.00 PostgreSQL statements, 2.00 Redis commands` (or per message, for messages of many alerts). */
function perAlert(sent: Counters, alerts: number, messages?: number): string {
  if (alerts <= 0) return '';
  const each = messages ? { n: messages, what: 'message' } : { n: alerts, what: 'alert' };
  const f = (v: number) => (v >= 100 ? v.toFixed(0) : v.toFixed(2));
  return `per ${each.what}: ${f(sent.pgQueries / each.n)} PostgreSQL statements, ${f(sent.redisCommands / each.n)} Redis commands`;
}

/** Scenarios during which something else on the machine used a noticeable share of the CPU. */
function noise(): string[] {
  const out: string[] = [];
  const check = (id: string, cpu: Record<string, number> | undefined) => {
    const other = cpu?.['other'];
    if (other !== undefined && other > NOISY_CORES) out.push(`${id}: ${other.toFixed(2)} cores busy with work that is not the bench's`);
  };
  check('1', scenarios.baseline?.sampled.cpu);
  check('2', scenarios.intake?.sampled.cpu);
  check('2b', scenarios.intakeAll?.sampled.cpu);
  check('3', scenarios.storm?.sampled.cpu);
  check('4', scenarios.duplicates?.sampled.cpu);
  check('5a', scenarios.execAll?.cpu);
  check('5b', scenarios.execSplit?.cpu);
  return out;
}

/** The intake's steps per scenario: calls, mean and max wall time per call, timed inside the service. */
function stepsTable(): string[] {
  const cols = [
    ['2', scenarios.intake?.sent.timings],
    ['3', scenarios.storm?.sent.timings],
    ['4', scenarios.duplicates?.sent.timings],
  ] as const;
  const ops = [...new Set(cols.flatMap(([, t]) => Object.keys(t ?? {})))];
  if (ops.length === 0) return [];
  const cell = (t: OpTiming | undefined) => (t ? `${fmtInt(t.calls)} × ${fmtMs(t.totalMs / t.calls)} ms (max ${fmtMs(t.maxMs)})` : '—');
  return [
    '## Where the intake\'s time goes',
    '',
    'Wall time per call of the intake\'s steps, timed inside the service process (calls × mean, and the slowest),',
    'warm-up included. Concurrent calls overlap; a step that waits for another batch shows in "delivery" only.',
    '',
    `| step | ${cols.map(([id]) => `scenario ${id}`).join(' | ')} |`,
    `|---|${cols.map(() => '---').join('|')}|`,
    ...ops.map((op) => `| ${op} | ${cols.map(([, t]) => cell(t?.[op])).join(' | ')} |`),
    '',
  ];
}

function memDetail(m: MemReport | undefined): string {
  if (!m) return '';
  const part = (u: NodeJS.MemoryUsage) => `rss ${fmtMiB(u.rss)}, heap used ${fmtMiB(u.heapUsed)} of ${fmtMiB(u.heapTotal)}, external ${fmtMiB(u.external)}`;
  const anon = m.smaps?.['Anonymous'];
  const spaces = ['new_space', 'old_space', 'code_space', 'large_object_space'].map((k) => `${k} ${fmtMiB(m.heapSpaces[k] ?? 0)}`).join(', ');
  return `; after 4: ${part(m.before)}${anon !== undefined ? ` (anonymous ${fmtMiB(anon)})` : ''}; V8 spaces ${spaces}${m.afterGc ? `; after a full GC: ${part(m.afterGc)}` : ''}`;
}

function errorRow(id: string, scenario: string, error: string | undefined): Row {
  return { id, scenario, rate: '—', p50: '—', p99: '—', max: '—', detail: `error: ${error ?? 'not run'}`, target: '', result: 'error' };
}

function table(rows: Row[]): string {
  const head = ['#', 'scenario', 'throughput', 'p50 ms', 'p99 ms', 'max ms', 'detail', 'target', 'result'];
  const body = rows.map((r) => [r.id, r.scenario, r.rate, r.p50, r.p99, r.max, r.detail, r.target, r.result]);
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map((_, i) => ([2, 3, 4, 5].includes(i) ? '---:' : '---')).join('|')}|`,
    ...body.map((cells) => `| ${cells.map(esc).join(' | ')} |`),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = new Date();
  const env = await machine();
  log(`run ${runId} on ${env.cores} × ${env.cpuModel}, Node ${env.node}, PostgreSQL ${env.postgres}, Redis ${env.redis}`);
  // What the rest of the machine does while the bench idles (its own janitor excluded): wait up to
  // BENCH_QUIET_WAIT_SEC (default 30) for it to settle, then go on regardless, with a warning.
  const quietDeadline = Date.now() + Number(process.env['BENCH_QUIET_WAIT_SEC'] ?? 30) * 1000;
  let quiet = (await sampled([], () => sleep(1000))).cpu['other'] ?? 0;
  if (quiet > NOISY_CORES) log(`${quiet.toFixed(2)} cores busy with other work; waiting for the machine to settle`);
  while (quiet > NOISY_CORES && Date.now() < quietDeadline) quiet = (await sampled([], () => sleep(1000))).cpu['other'] ?? 0;
  if (quiet > NOISY_CORES) log(`warning: ${quiet.toFixed(2)} cores busy with other work before the bench starts; the figures will be low`);

  const steps: Array<[string, () => Promise<void>]> = [
    ['baseline', scenarioBaseline],
    ['intake', scenariosIntake],
    ['intakeAll', scenarioIntakeAll],
    ['execAll', async () => void (scenarios.execAll = await scenarioExec(false))],
    ['execSplit', async () => void (scenarios.execSplit = await scenarioExec(true))],
  ];
  for (const [name, step] of steps) {
    if (interrupted) return;
    if (PROFILE && name !== 'intake') continue;
    try {
      await step();
    } catch (err) {
      errors[name] = (err as Error).message;
      log(`${name} failed: ${(err as Error).message}`);
      killAll();
    }
  }
  const finished = new Date();
  const { rows, verdicts, figures } = report();
  const printed = table(rows);
  const knobs = [
    ...(PROFILE ? ['BENCH_PROFILE=1'] : []),
    ...(SERVICE_NODE_ARGS.length ? [`BENCH_SERVICE_NODE_ARGS='${SERVICE_NODE_ARGS.join(' ')}'`] : []),
    ...(process.env['BENCH_DURATION'] ? [`BENCH_DURATION=${DURATION}`] : []),
    ...(process.env['BENCH_CONNECTIONS'] ? [`BENCH_CONNECTIONS=${CONNECTIONS}`] : []),
  ];
  const command = [...knobs, 'npm run bench'].join(' ');
  process.stdout.write(`\nconduit-remediator benchmark, ${finished.toISOString()}\n`);
  process.stdout.write(`machine: ${env.cores} cores, ${env.cpuModel}, ${env.memoryGiB} GiB, ${env.os}; Node ${env.node}; PostgreSQL ${env.postgres} (${env.postgresSettings}); Redis ${env.redis}\n\n`);
  process.stdout.write(`${printed}\n\n`);
  for (const v of verdicts) process.stdout.write(`${v.met === undefined ? '?' : v.met ? 'met ' : 'GAP '} ${v.id}: ${v.note}\n`);
  const noisy = noise();
  if (quiet > NOISY_CORES) noisy.unshift(`before the start: ${quiet.toFixed(2)} cores busy with other work`);
  for (const n of noisy) process.stdout.write(`warning: the machine was not quiet, ${n}; figures may be low. Re-run on a quiet machine.\n`);

  if (PROFILE) {
    const parts = [
      '# Intake CPU profiles',
      '',
      `Generated by \`${command}\` on ${finished.toISOString()} (${env.cores} × ${env.cpuModel}, Node ${env.node}).`,
      'The service child profiled itself (V8 sampling profiler through `node:inspector`, 200 µs interval) during each scenario;',
      'the raw profiles are in `bench/profiles/` (open them in Chrome DevTools or speedscope). Profiling slows the service: the',
      'figures of a profiled run are not the benchmark\'s and are not written to RESULTS.md.',
      '',
      printed,
      '',
    ];
    for (const p of profiles) {
      const profile = JSON.parse(readFileSync(p.path, 'utf8')) as CpuProfile;
      parts.push(profileMarkdown(p.name, summarizeProfile(profile, ROOT)));
    }
    writeFileSync(join(BENCH, 'PROFILE.md'), parts.join('\n'));
    log('wrote bench/PROFILE.md and bench/profiles/*.cpuprofile');
    return;
  }

  const json = {
    runId,
    command,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    wallSec: (finished.getTime() - started.getTime()) / 1000,
    machine: env,
    settings: { serviceNodeArgs: SERVICE_NODE_ARGS, durationSec: DURATION, warmupSec: WARMUP_SEC, connections: CONNECTIONS, stormMessages: STORM_MESSAGES, stormAlerts: STORM_ALERTS, duplicates: DUPLICATES, execAlerts: EXEC_ALERTS, execRatePerSec: EXEC_RATE },
    targets: TARGETS,
    figures,
    verdicts,
    busyCoresBeforeStart: quiet,
    noise: noisy,
    rows,
    // Per-alert samples of scenario 5 are summarized above; the raw arrays would make the file large.
    scenarios: JSON.parse(JSON.stringify(scenarios, (key, value: unknown) => (key === 'alerts' && Array.isArray(value) ? `${value.length} samples` : value))) as unknown,
    errors,
  };
  if (!scenarios.intake) {
    // Nothing of the intake was measured: keep the last good results rather than a table of errors.
    throw new Error(`the intake scenarios failed (${errors['intake'] ?? 'unknown'}); results not written`);
  }
  writeFileSync(join(BENCH, 'results.json'), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(BENCH, 'RESULTS.md'), resultsMarkdown(env, command, started, finished, printed, verdicts, noisy));
  log('wrote bench/results.json and bench/RESULTS.md');
  if (Object.keys(errors).length > 0) process.exitCode = 1;
}

function resultsMarkdown(env: Awaited<ReturnType<typeof machine>>, command: string, started: Date, finished: Date, printed: string, verdicts: Verdict[], noisy: string[]): string {
  return `${[
    '# Benchmark results',
    '',
    '<!-- Generated by bench/run.ts on every run; edits here are overwritten. -->',
    '',
    `Command: \`${command}\` (from the repository root; needs the local Redis and PostgreSQL; this run took ${Math.round((finished.getTime() - started.getTime()) / 1000)} s).`,
    `Run: ${started.toISOString()} to ${finished.toISOString()}.`,
    '',
    `Machine: ${env.cores} cores (${env.cpuModel}), ${env.memoryGiB} GiB, ${env.os}; Node ${env.node}; PostgreSQL ${env.postgres} (${env.postgresSettings}); Redis ${env.redis}.`,
    'The load generator, the service, PostgreSQL and Redis all share these cores.',
    '',
    printed,
    '',
    ...(noisy.length > 0 ? ['**The machine was not quiet during this run** (figures may be low; re-run on a quiet machine):', '', ...noisy.map((n) => `- ${n}`), ''] : []),
    ...stepsTable(),
    '## Targets',
    '',
    ...verdicts.map((v) => `- **${v.id}** ${v.met === undefined ? 'not measured' : v.met ? 'met' : 'not met'}: ${v.note}.`),
    '',
    '## How it is measured',
    '',
    '- Every service process is `node --import tsx bench/service.ts` (the real `createServices` + `buildApp`, as `npm start` runs',
    '  `src/server.ts`), with the `bench.noop` remediation added to the catalogue and the matrix `bench/response-matrix.yaml`',
    '  followed by every rule of the shipped `config/response-matrix.yaml`, so each alert is matched against the real rule set.',
    '  The bench matrix has no global budget, and the bench rule\'s target is per alert, so no unique alert is suppressed.',
    '- The load always comes from another process (`bench/load.ts`: autocannon, or a keep-alive `http` client for 3 and 5) over',
    '  loopback; this process only orchestrates and reads `/proc/<pid>` for RSS (VmRSS sampled every 50 ms, VmHWM) and CPU.',
    '- Each service group gets a fresh database and its own `QUEUE_PREFIX`, dropped and deleted at the end, so no scenario sees',
    '  another one\'s backlog: 2, 3, 4 and 6 share one `ROLE=api` process (no worker competing; its queued runs stay queued, so',
    '  REQUEUE_AFTER is 1 h there to keep the sweeper from re-adding them); 2b is one `ROLE=all` process; 5a one `ROLE=all`',
    '  process; 5b one `ROLE=api` plus one `ROLE=worker` process.',
    `- 1, 2, 2b: ${CONNECTIONS} connections for ${DURATION} s after a ${WARMUP_SEC} s warm-up (not counted), every request a`,
    '  single-alert message with a new fingerprint; latency is per response, from the request being written to the response.',
    `- 3: ${STORM_MESSAGES} messages of ${STORM_ALERTS} new alerts each, one after another; time to the complete 200 of each;`,
    '  alerts/s is alerts over the summed response times.',
    `- 4: the single-alert bodies of scenario 2 again (the first ${DUPLICATES} runs it stored), ${DUPLICATES} requests at`,
    `  ${CONNECTIONS} connections; runs are counted in PostgreSQL before and after. Those runs are still \`queued\` (no worker`,
    '  in this group) and their jobs are waiting, so each re-delivery meets the intake\'s handling of still-queued runs.',
    `- 5: ${EXEC_ALERTS} single-alert messages at ${EXEC_RATE}/s (after 20 warm-up alerts), from the moment the client got the`,
    '  200 to the moment `bench.noop` started (it stores `performance.timeOrigin + performance.now()` in the run\'s result;',
    '  same machine clock). The job is enqueued before the 200 is written, so a worker can start before the client reads the',
    '  200: such samples are negative.',
    '- 6: the highest of VmHWM and the sampled VmRSS of the `ROLE=api` process at the end of scenario 4 (includes start-up);',
    '  then `process.memoryUsage()`, the V8 heap spaces and the anonymous share of the RSS, before and after a full GC.',
    '- "runs table: N sequential scans": from pg_stat_user_tables, read 1.5 s after the load. Any sequential scan of the',
    '  runs table in the intake is a plan gone wrong (the table only grows); it costs time proportional to the table.',
    '- "per alert": PostgreSQL statements sent through the service\'s pool and commands sent on its main Redis connection',
    '  (gates and queue adds), counted in the service process, divided by the alerts of the scenario (warm-up included).',
    '- "CPU cores": cores used during the scenario (warm-up included), from /proc: the service process, PostgreSQL (its',
    '  backends serving the bench databases; "upkeep" = autovacuum, checkpointer, WAL writer), Redis, the load generator,',
    '  and `other` = busy cores none of those account for. When `other` exceeds 0.3 cores the run is flagged as noisy:',
    '  something else was using the machine.',
  ].join('\n')}\n`;
}

main().then(
  () => shutdown(typeof process.exitCode === 'number' ? process.exitCode : 0),
  (err: unknown) => shutdown(1, `failed: ${(err as Error).stack ?? String(err)}`),
);
