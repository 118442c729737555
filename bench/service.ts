/**
 * The service under test, in a process of its own: the real service (createServices + buildApp), with
 * the bench.noop remediation added to the catalogue and the bench matrix (bench/response-matrix.yaml
 * plus the shipped rules). Configured from the environment like src/server.ts.
 *
 * stdout protocol, one line each: `READY {json}` once listening, `PROFILE-DONE <path>` after a
 * profile was written, `MEM <rss bytes>` every 200 ms where /proc is missing (the orchestrator reads
 * /proc/<pid>/status otherwise), `MEM-REPORT {json}` after `mem`. stdin commands: `profile-start`,
 * `profile-stop <path>`, `mem` (process.memoryUsage() before and, with --expose-gc, after a full GC),
 * `counters` (`COUNTERS {pgQueries, redisCommands, timings}`: statements and commands sent so far, and
 * the intake's step timings since the previous `counters`), `stop`.
 * The process stops on SIGTERM/SIGINT, on `stop`, and when stdin closes (the orchestrator died).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
import { Session } from 'node:inspector/promises';
import { createInterface } from 'node:readline';
import pino from 'pino';
import { createCatalogue, remediations } from '../remediations/catalogue.js';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { loadMatrix } from '../src/matrix/load.js';
import type { Matrix } from '../src/matrix/types.js';
import { createServices } from '../src/services.js';
import { noop } from './noop.js';

const out = (line: string) => process.stdout.write(`${line}\n`);

const { config } = loadConfig(process.env);
const log = pino({ level: config.logLevel }, pino.destination(2));
const catalogue = createCatalogue([...remediations, noop]);

function benchMatrix(): { matrix: Matrix; shippedRules: number } {
  const bench = loadMatrix(config.matrixPath, catalogue);
  const shippedPath = process.env['BENCH_SHIPPED_MATRIX'];
  if (!shippedPath) return { matrix: bench, shippedRules: 0 };
  try {
    const shipped = loadMatrix(shippedPath, catalogue);
    // The bench's limits (none global) with every shipped rule after the bench rule: each alert is matched against all of them.
    return { matrix: { ...bench, rules: [...bench.rules, ...shipped.rules] }, shippedRules: shipped.rules.length };
  } catch (err) {
    process.stderr.write(`bench service: shipped matrix ${shippedPath} not used: ${(err as Error).message}\n`);
    return { matrix: bench, shippedRules: 0 };
  }
}

const { matrix, shippedRules } = benchMatrix();
const services = await createServices(config, { log, catalogue, matrix });
const app = await buildApp(services, { logger: log });

/**
 * Counts the statements the service sends to PostgreSQL through its pool and the commands it sends on
 * its main Redis connection (the intake's gates and the queue's adds), so the bench can report round
 * trips per alert. A counter increment per call: no measurable cost.
 */
const counters = { pgQueries: 0, redisCommands: 0 };
function countCalls(target: object, method: string, key: keyof typeof counters): void {
  const holder = target as Record<string, unknown>;
  const original = holder[method];
  if (typeof original !== 'function') return;
  holder[method] = function counted(this: unknown, ...args: unknown[]) {
    counters[key]++;
    return (original as (...a: unknown[]) => unknown).apply(this, args);
  };
}
countCalls(services.pool, 'query', 'pgQueries');
countCalls(services.redis, 'sendCommand', 'redisCommands');

/**
 * Wall time of the intake's steps, wrapped where the intake reaches them through the service objects
 * (property lookups at call time). A step the code no longer calls that way just shows no calls.
 * Concurrent calls overlap, so the times are per call, not a share of the wall clock.
 */
interface OpTiming {
  calls: number;
  totalMs: number;
  maxMs: number;
}
let timings: Record<string, OpTiming> = {};
function timeCalls(target: object, method: string, label: string): void {
  const holder = target as Record<string, unknown>;
  const original = holder[method];
  if (typeof original !== 'function') return;
  holder[method] = function timed(this: unknown, ...args: unknown[]) {
    const started = performance.now();
    const done = () => {
      const ms = performance.now() - started;
      const t = (timings[label] ??= { calls: 0, totalMs: 0, maxMs: 0 });
      t.calls++;
      t.totalMs += ms;
      t.maxMs = Math.max(t.maxMs, ms);
    };
    const result = (original as (...a: unknown[]) => unknown).apply(this, args);
    if (result instanceof Promise) result.then(done, done);
    else done();
    return result;
  };
}
timeCalls(services, 'intake', 'delivery (intake call, batching wait included)');
timeCalls(services.runs, 'findByKeys', 'runs.findByKeys');
timeCalls(services.runs, 'insert', 'runs.insert');
timeCalls(services.runs, 'insertOrFind', 'runs.insertOrFind (lookup and insert)');
timeCalls(services.runs, 'resolveEpisodes', 'runs.resolveEpisodes');
timeCalls(services.killSwitch, 'state', 'killSwitch.state');
timeCalls(services.counters, 'peek', 'counters.peek (gates)');
timeCalls(services.queue, 'enqueue', 'queue.enqueue');
timeCalls(services.queue, 'enqueueMissing', 'queue.enqueueMissing');
await app.listen({ port: config.port, host: config.host });
const address = app.server.address();
const port = typeof address === 'object' && address ? address.port : config.port;
out(`READY ${JSON.stringify({ pid: process.pid, port, role: config.role, rules: matrix.rules.length, shippedRules })}`);

if (!existsSync(`/proc/${process.pid}/status`)) {
  setInterval(() => out(`MEM ${process.memoryUsage.rss()}`), 200).unref();
}

let stopping: Promise<void> | undefined;
function stop(code = 0): Promise<void> {
  stopping ??= (async () => {
    const force = setTimeout(() => process.exit(code || 1), 10_000);
    force.unref();
    try {
      await app.close();
      await services.close();
    } catch (err) {
      process.stderr.write(`bench service: close failed: ${(err as Error).message}\n`);
    }
    process.exit(code);
  })();
  return stopping;
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());

let session: Session | undefined;
const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  const [command, arg] = line.trim().split(/\s+/, 2);
  void (async () => {
    try {
      if (command === 'profile-start') {
        session = new Session();
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.setSamplingInterval', { interval: 200 });
        await session.post('Profiler.start');
        out('PROFILE-STARTED');
      } else if (command === 'profile-stop' && arg && session) {
        const { profile } = await session.post('Profiler.stop');
        writeFileSync(arg, JSON.stringify(profile));
        session.disconnect();
        session = undefined;
        out(`PROFILE-DONE ${arg}`);
      } else if (command === 'counters') {
        // Counters are cumulative; timings are since the previous `counters`.
        out(`COUNTERS ${JSON.stringify({ ...counters, timings })}`);
        timings = {};
      } else if (command === 'mem') {
        const before = process.memoryUsage();
        const heapSpaces = Object.fromEntries(getHeapSpaceStatistics().map((h) => [h.space_name, h.space_size]));
        let smaps: Record<string, number> | undefined;
        try {
          // Resident memory by kind: anonymous (heaps, malloc) versus file-backed (the node binary, shared libraries).
          const text = readFileSync('/proc/self/smaps_rollup', 'utf8');
          smaps = Object.fromEntries(
            [...text.matchAll(/^(Rss|Anonymous|Shared_Clean|Private_Clean):\s+(\d+) kB/gm)].map((m) => [m[1]!, Number(m[2]) * 1024]),
          );
        } catch {
          // not Linux
        }
        const gc = (globalThis as { gc?: () => void }).gc;
        let afterGc: NodeJS.MemoryUsage | undefined;
        if (gc) {
          gc();
          afterGc = process.memoryUsage();
        }
        out(`MEM-REPORT ${JSON.stringify({ before, heapSpaces, ...(smaps ? { smaps } : {}), ...(afterGc ? { afterGc } : {}) })}`);
      } else if (command === 'stop') {
        await stop();
      }
    } catch (err) {
      process.stderr.write(`bench service: command ${line} failed: ${(err as Error).message}\n`);
      out(`PROFILE-DONE error`);
    }
  })();
});
// The orchestrator holds our stdin: when it goes away, so do we.
commands.on('close', () => void stop());
