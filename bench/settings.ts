/**
 * What one bench run is: the knobs from the environment (documented in run.ts), the scenario sizes,
 * the targets, and the identity of the run (its tag, the prefix of its databases and keys).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
export const BENCH = join(ROOT, 'bench');
export const PG_ADMIN_URL = process.env['BENCH_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379';
export const DURATION = Number(process.env['BENCH_DURATION'] ?? 10);
export const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 50);
export const PROFILE = process.env['BENCH_PROFILE'] === '1';
/** Extra node flags for the service processes only, e.g. `--max-old-space-size=128`. */
// The service's node flags as `npm start` and the image use them, unless overridden.
export const SERVICE_NODE_ARGS = (
  process.env['BENCH_SERVICE_NODE_ARGS'] ?? '--max-semi-space-size=8 --heap-growing-percent=50 --v8-pool-size=1'
)
  .split(/\s+/)
  .filter(Boolean);
export const WARMUP_SEC = 2;
export const STORM_MESSAGES = 20;
export const STORM_ALERTS = 1000;
/** Scenario 3b: the alerts of its one message (within MAX_ALERTS_PER_MESSAGE's default, 5,000). */
export const BIG_MESSAGE_ALERTS = 5000;
export const DUPLICATES = 10_000;
export const EXEC_ALERTS = 200;
export const EXEC_RATE = 50;
/**
 * Scenario 7: chains (one alert each: a predecessor and its dependent), sent at CHAIN_RATE alerts a
 * second: two runs each, so as many runs a second execute as in scenario 5.
 */
export const CHAIN_ALERTS = 200;
export const CHAIN_RATE = EXEC_RATE / 2;
/** How long the at-rest processes idle before their RSS is read (6r). */
export const AT_REST_SEC = 60;
/** Every scenario runs this many times; the report shows the median (BENCH_REPETITIONS, default 3). */
export const REPETITIONS = Math.max(1, Number(process.env['BENCH_REPETITIONS'] ?? 3));
/**
 * BENCH_ONLY: the steps to run (comma-separated names, see run.ts); empty: all of them. A BENCH_ONLY
 * run prints the rows of its steps but writes neither RESULTS.md nor results.json.
 */
export const ONLY = (process.env['BENCH_ONLY'] ?? '')
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
export const HARD_TIMEOUT_MS = Number(process.env['BENCH_TIMEOUT_SEC'] ?? 240 + 330 * REPETITIONS) * 1000;
export const MiB = 1024 * 1024;

export const TARGETS = {
  intakeRatio: 0.2,
  intakeP99Ms: 50,
  stormMaxMs: 250,
  bigMessageMs: 1000,
  duplicateFactor: 3,
  execP99Ms: 100,
  rssMiB: 150,
  restRssMiB: 80,
  chainP99Ms: 100,
};

export const tag = randomBytes(3).toString('hex');
export const runId = `bench_${Date.now().toString(36)}_${tag}`;
export const startsAt = new Date().toISOString().replace('Z', '123456Z');
export const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
