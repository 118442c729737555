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
 * BENCH_QUIET_WAIT_SEC (how long to wait at start for other work on the machine to settle, default 30),
 * BENCH_REPETITIONS (how many times every scenario runs, default 3; the report shows the median),
 * BENCH_ONLY (a comma-separated list of steps to run, e.g. `chains` or `intake,chains`; the steps, in
 * order: baseline (scenario 1), intake (2, 3, 3b, 4, 6), intakeAll (2b), execAll (5a), execSplit (5b),
 * chains (7), chainsSplit (7b), atRest (6r); a BENCH_ONLY run prints the rows of its steps only and
 * writes neither bench/results.json nor bench/RESULTS.md).
 */
import { endPools, retireGroups } from './groups.js';
import { machine } from './machine.js';
import { sampled } from './proc-measurements.js';
import { interrupted, killAll, markInterrupted, releaseJanitor, sleep } from './processes.js';
import { NOISY_CORES, printResults, writeProfileReport, writeResults, type Repetition } from './report.js';
import { scenarioExec } from './scenarios/alert-to-execution.js';
import { scenarioAtRest } from './scenarios/at-rest.js';
import { scenarioBaseline } from './scenarios/baseline.js';
import { scenarioChains } from './scenarios/chains.js';
import { scenariosIntake } from './scenarios/intake.js';
import { scenarioIntakeAll } from './scenarios/intake-with-worker.js';
import type { Scenarios } from './scenarios/results.js';
import { HARD_TIMEOUT_MS, ONLY, PROFILE, REPETITIONS, log, runId } from './settings.js';

/** Ends our connections and lets the janitor drop the databases and keys; waits for it. */
async function cleanup(): Promise<void> {
  await endPools();
  await releaseJanitor();
}

let cleaning: Promise<void> | undefined;
async function shutdown(code: number, reason?: string): Promise<never> {
  markInterrupted();
  if (reason) log(reason);
  killAll();
  cleaning ??= cleanup();
  await Promise.race([cleaning, sleep(60_000)]);
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130, 'interrupted; cleaning up'));
process.on('SIGTERM', () => void shutdown(143, 'terminated; cleaning up'));
setTimeout(() => void shutdown(1, `the bench took longer than ${HARD_TIMEOUT_MS / 1000} s; stopped`), HARD_TIMEOUT_MS).unref();

/** The steps of a repetition, in order, by the names BENCH_ONLY uses (and results-table.ts's STEP_ROWS). */
function stepsOf(scenarios: Scenarios): Array<[string, () => Promise<void>]> {
  return [
    ['baseline', () => scenarioBaseline(scenarios)],
    ['intake', () => scenariosIntake(scenarios)],
    ['intakeAll', () => scenarioIntakeAll(scenarios)],
    ['execAll', async () => void (scenarios.execAll = await scenarioExec(false))],
    ['execSplit', async () => void (scenarios.execSplit = await scenarioExec(true))],
    ['chains', async () => void (scenarios.chainAll = await scenarioChains(false))],
    ['chainsSplit', async () => void (scenarios.chainSplit = await scenarioChains(true))],
    ['atRest', async () => void (scenarios.atRest = await scenarioAtRest())],
  ];
}
const STEP_NAMES = stepsOf({}).map(([name]) => name);
// A profiled run profiles the intake only.
const selected = STEP_NAMES.filter((name) => (!PROFILE || name === 'intake') && (ONLY.length === 0 || ONLY.includes(name)));

async function main(): Promise<void> {
  const unknown = ONLY.filter((name) => !STEP_NAMES.includes(name));
  if (unknown.length > 0) {
    log(`BENCH_ONLY names no step ${unknown.join(', ')}; the steps are ${STEP_NAMES.join(', ')}`);
    process.exitCode = 2;
    return;
  }
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

  const repetitions: Repetition[] = [];
  // A profiled run profiles the intake once.
  const count = PROFILE ? 1 : REPETITIONS;
  for (let rep = 1; rep <= count && !interrupted; rep++) {
    const scenarios: Scenarios = {};
    const errors: Record<string, string> = {};
    repetitions.push({ scenarios, errors });
    if (count > 1) log(`repetition ${rep} of ${count}`);
    for (const [name, step] of stepsOf(scenarios)) {
      if (interrupted) return;
      if (!selected.includes(name)) continue;
      try {
        await step();
      } catch (err) {
        errors[name] = (err as Error).message;
        log(`${name} failed: ${(err as Error).message}`);
        killAll();
      }
    }
    await retireGroups().catch((err: Error) => log(`could not drop repetition ${rep}'s databases: ${err.message}`));
  }
  const finished = new Date();
  const run = { env, started, finished, quiet, repetitions, steps: selected };
  const outcome = printResults(run);
  if (PROFILE) {
    writeProfileReport(run, outcome);
    return;
  }
  // The files hold the figures of every scenario: a run of some steps only leaves them as they are.
  if (ONLY.length > 0) log(`BENCH_ONLY=${ONLY.join(',')}: bench/results.json and bench/RESULTS.md not written`);
  else writeResults(run, outcome);
  if (repetitions.some((r) => Object.keys(r.errors).length > 0)) process.exitCode = 1;
}

main().then(
  () => shutdown(typeof process.exitCode === 'number' ? process.exitCode : 0),
  (err: unknown) => shutdown(1, `failed: ${(err as Error).stack ?? String(err)}`),
);
