import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { LoadSpec } from './common.js';
import { BENCH, PG_ADMIN_URL, REDIS_URL, ROOT, SERVICE_NODE_ARGS } from './settings.js';

export const work = mkdtempSync(join(os.tmpdir(), 'remediator-bench-'));

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
export const tellJanitor = (line: string) => void janitor.stdin?.write(`${line}\n`);
tellJanitor(`dir ${work}`);

/** Tells the janitor we are done, so it drops the databases and keys; waits for it. */
export async function releaseJanitor(): Promise<void> {
  tellJanitor('done');
  janitor.stdin?.end();
  await exitOf(janitor);
}

/** Every process this run started, by pid: the services by name, load generators as `load`. */
export const ourPids = new Map<number, string>(janitorPid ? [[janitorPid, 'janitor']] : []);

export function killAll(): void {
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

/** Set by the runner's shutdown: no child starts after it. */
export let interrupted = false;
export function markInterrupted(): void {
  interrupted = true;
}

export interface Child {
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
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startChild(name: string, script: string, env: Record<string, string>): Promise<Child> {
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
        const waiter = {
          prefix,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
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
// Load: always another process.

export type Loaded<T> = T & { cpuSec: number };

export async function runLoad<T>(spec: LoadSpec): Promise<Loaded<T>> {
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
