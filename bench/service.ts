/**
 * The service under test, in a process of its own: the real service (createServices + buildApp), with
 * the bench.noop remediation added to the catalogue and the bench matrix (bench/response-matrix.yaml
 * plus the shipped rules). Configured from the environment like src/server.ts.
 *
 * stdout protocol, one line each: `READY {json}` once listening, `PROFILE-DONE <path>` after a
 * profile was written, `MEM <rss bytes>` every 200 ms where /proc is missing (the orchestrator reads
 * /proc/<pid>/status otherwise), `MEM-REPORT {json}` after `mem`. stdin commands: `profile-start`,
 * `profile-stop <path>`, `mem` (process.memoryUsage() before and, with --expose-gc, after a full GC), `stop`.
 * The process stops on SIGTERM/SIGINT, on `stop`, and when stdin closes (the orchestrator died).
 */
import { existsSync, writeFileSync } from 'node:fs';
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
      } else if (command === 'mem') {
        const before = process.memoryUsage();
        const gc = (globalThis as { gc?: () => void }).gc;
        let afterGc: NodeJS.MemoryUsage | undefined;
        if (gc) {
          gc();
          afterGc = process.memoryUsage();
        }
        out(`MEM-REPORT ${JSON.stringify({ before, ...(afterGc ? { afterGc } : {}) })}`);
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
