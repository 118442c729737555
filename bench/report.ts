import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Machine } from './machine.js';
import { profileMarkdown, summarizeProfile, type CpuProfile } from './profile.js';
import { profiles } from './profiling.js';
import { STEP_ROWS, fmtInt, fmtMs, median, medianTable, resultsTable, type Row, type Table, type Verdict } from './results-table.js';
import type { OpTiming } from './round-trips.js';
import type { Scenarios } from './scenarios/results.js';
import {
  BENCH,
  BIG_MESSAGE_ALERTS,
  CHAIN_ALERTS,
  CHAIN_RATE,
  CONNECTIONS,
  DUPLICATES,
  DURATION,
  EXEC_ALERTS,
  EXEC_RATE,
  ONLY,
  PROFILE,
  REPETITIONS,
  ROOT,
  AT_REST_SEC,
  SERVICE_NODE_ARGS,
  STORM_ALERTS,
  STORM_MESSAGES,
  TARGETS,
  WARMUP_SEC,
  log,
  runId,
} from './settings.js';

// ---------------------------------------------------------------------------------------------------
// Report.

export const NOISY_CORES = 0.3;

/** Scenarios during which something else on the machine used a noticeable share of the CPU. */
function noise(scenarios: Scenarios, rep: number): string[] {
  const out: string[] = [];
  const check = (id: string, cpu: Record<string, number> | undefined) => {
    const other = cpu?.['other'];
    if (other !== undefined && other > NOISY_CORES)
      out.push(`repetition ${rep}, ${id}: ${other.toFixed(2)} cores busy with work that is not the bench's`);
  };
  check('1', scenarios.baseline?.sampled.cpu);
  check('2', scenarios.intake?.sampled.cpu);
  check('2b', scenarios.intakeAll?.sampled.cpu);
  check('3', scenarios.storm?.sampled.cpu);
  check('3b', scenarios.bigMessage?.sampled.cpu);
  check('4', scenarios.duplicates?.sampled.cpu);
  check('5a', scenarios.execAll?.cpu);
  check('5b', scenarios.execSplit?.cpu);
  check('7', scenarios.chainAll?.cpu);
  check('7b', scenarios.chainSplit?.cpu);
  return out;
}

/** The intake's steps per scenario: calls, mean and max wall time per call, timed inside the service. */
function stepsTable(scenarios: Scenarios, rep: number): string[] {
  const cols = [
    ['2', scenarios.intake?.sent.timings],
    ['3', scenarios.storm?.sent.timings],
    ['3b', scenarios.bigMessage?.sent.timings],
    ['4', scenarios.duplicates?.sent.timings],
  ] as const;
  const ops = [...new Set(cols.flatMap(([, t]) => Object.keys(t ?? {})))];
  if (ops.length === 0) return [];
  const cell = (t: OpTiming | undefined) => (t ? `${fmtInt(t.calls)} × ${fmtMs(t.totalMs / t.calls)} ms (max ${fmtMs(t.maxMs)})` : '—');
  return [
    "## Where the intake's time goes",
    '',
    `Repetition ${rep} (the one with the median scenario 2 throughput). Wall time per call of the intake's steps, timed inside`,
    'the service process (calls × mean, and the slowest), warm-up included. Concurrent calls overlap; a step that waits for',
    'another batch shows in "delivery" only.',
    '',
    `| step | ${cols.map(([id]) => `scenario ${id}`).join(' | ')} |`,
    `|---|${cols.map(() => '---').join('|')}|`,
    ...ops.map((op) => `| ${op} | ${cols.map(([, t]) => cell(t?.[op])).join(' | ')} |`),
    '',
  ];
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

/** One repetition of every scenario. */
export interface Repetition {
  scenarios: Scenarios;
  errors: Record<string, string>;
}

/** What a finished run hands to the writers. */
export interface FinishedRun {
  env: Machine;
  started: Date;
  finished: Date;
  /** Cores busy with other work just before the first scenario. */
  quiet: number;
  repetitions: Repetition[];
  /** The steps of run.ts that ran (BENCH_ONLY may leave some out): only their rows are shown. */
  steps: readonly string[];
}

/** What the printed summary computed, for the files written after it. */
export interface Outcome {
  /** The median of the repetitions. */
  rows: Row[];
  verdicts: Verdict[];
  figures: Record<string, number>;
  /** Each repetition's own table. */
  tables: Table[];
  printed: string;
  command: string;
  noisy: string[];
}

/** The repetition whose scenario 2 throughput is the median one (its step timings are the ones shown). */
function medianRepetition(tables: readonly Table[]): number {
  const rates = tables.map((t) => t.figures['intakeAlertsPerSec'] ?? NaN);
  const m = median(rates);
  const i = rates.findIndex((r) => r === m);
  return i >= 0 ? i : 0;
}

/** A table with the rows (and verdicts) of the steps that ran only. */
function onlyShown(t: Table, shown: ReadonlySet<string>): Table {
  return { ...t, rows: t.rows.filter((r) => shown.has(r.id)), verdicts: t.verdicts.filter((v) => shown.has(v.id)) };
}

/** Prints the table, the verdicts and the noise warnings to stdout. */
export function printResults(run: FinishedRun): Outcome {
  const { env, finished, quiet, repetitions } = run;
  const shown = new Set(run.steps.flatMap((step) => STEP_ROWS[step] ?? []));
  const tables = repetitions.map((r) => onlyShown(resultsTable(r.scenarios, r.errors), shown));
  const { rows, verdicts, figures } = onlyShown(medianTable(tables), shown);
  const printed = table(rows);
  const knobs = [
    ...(PROFILE ? ['BENCH_PROFILE=1'] : []),
    ...(SERVICE_NODE_ARGS.length ? [`BENCH_SERVICE_NODE_ARGS='${SERVICE_NODE_ARGS.join(' ')}'`] : []),
    ...(process.env['BENCH_DURATION'] ? [`BENCH_DURATION=${DURATION}`] : []),
    ...(process.env['BENCH_CONNECTIONS'] ? [`BENCH_CONNECTIONS=${CONNECTIONS}`] : []),
    ...(process.env['BENCH_REPETITIONS'] ? [`BENCH_REPETITIONS=${REPETITIONS}`] : []),
    ...(ONLY.length ? [`BENCH_ONLY=${ONLY.join(',')}`] : []),
  ];
  const command = [...knobs, 'npm run bench'].join(' ');
  process.stdout.write(`\nconduit-remediator benchmark, ${finished.toISOString()}\n`);
  process.stdout.write(
    `machine: ${env.cores} cores, ${env.cpuModel}, ${env.memoryGiB} GiB, ${env.os}; Node ${env.node}; PostgreSQL ${env.postgres} (${env.postgresSettings}); Redis ${env.redis}\n\n`,
  );
  tables.forEach((t, i) => process.stdout.write(`repetition ${i + 1}:\n${table(t.rows)}\n\n`));
  process.stdout.write(`median of ${tables.length}:\n${printed}\n\n`);
  for (const v of verdicts) process.stdout.write(`${v.met === undefined ? '?' : v.met ? 'met ' : 'GAP '} ${v.id}: ${v.note}\n`);
  const noisy = repetitions.flatMap((r, i) => noise(r.scenarios, i + 1));
  if (quiet > NOISY_CORES) noisy.unshift(`before the start: ${quiet.toFixed(2)} cores busy with other work`);
  for (const n of noisy) process.stdout.write(`warning: the machine was not quiet, ${n}; figures may be low. Re-run on a quiet machine.\n`);
  return { rows, verdicts, figures, tables, printed, command, noisy };
}

/** BENCH_PROFILE=1: bench/PROFILE.md instead of the results. */
export function writeProfileReport(run: FinishedRun, { printed, command }: Outcome): void {
  const { env, finished } = run;
  const parts = [
    '# Intake CPU profiles',
    '',
    `Generated by \`${command}\` on ${finished.toISOString()} (${env.cores} × ${env.cpuModel}, Node ${env.node}).`,
    'The service child profiled itself (V8 sampling profiler through `node:inspector`, 200 µs interval) during each scenario;',
    'the raw profiles are in `bench/profiles/` (open them in Chrome DevTools or speedscope). Profiling slows the service: the',
    "figures of a profiled run are not the benchmark's and are not written to RESULTS.md.",
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
}

export function writeResults(run: FinishedRun, outcome: Outcome): void {
  const { rows, verdicts, figures, tables, command, noisy } = outcome;
  const { env, started, finished, quiet, repetitions } = run;
  const json = {
    runId,
    command,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    wallSec: (finished.getTime() - started.getTime()) / 1000,
    machine: env,
    settings: {
      serviceNodeArgs: SERVICE_NODE_ARGS,
      durationSec: DURATION,
      warmupSec: WARMUP_SEC,
      connections: CONNECTIONS,
      stormMessages: STORM_MESSAGES,
      stormAlerts: STORM_ALERTS,
      bigMessageAlerts: BIG_MESSAGE_ALERTS,
      duplicates: DUPLICATES,
      execAlerts: EXEC_ALERTS,
      execRatePerSec: EXEC_RATE,
      chainAlerts: CHAIN_ALERTS,
      chainRatePerSec: CHAIN_RATE,
      repetitions: REPETITIONS,
    },
    targets: TARGETS,
    figures,
    verdicts,
    busyCoresBeforeStart: quiet,
    noise: noisy,
    rows,
    repetitions: repetitions.map((r, i) => ({
      figures: tables[i]!.figures,
      rows: tables[i]!.rows,
      // Per-alert samples of scenarios 5 and 7 are summarized above; the raw arrays would make the file large.
      scenarios: JSON.parse(
        JSON.stringify(r.scenarios, (key, value: unknown) =>
          key === 'alerts' && Array.isArray(value) ? `${value.length} samples` : value,
        ),
      ) as unknown,
      errors: r.errors,
    })),
  };
  if (!repetitions.some((r) => r.scenarios.intake)) {
    // Nothing of the intake was measured: keep the last good results rather than a table of errors.
    throw new Error(`the intake scenarios failed (${repetitions[0]?.errors['intake'] ?? 'unknown'}); results not written`);
  }
  writeFileSync(join(BENCH, 'results.json'), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(BENCH, 'RESULTS.md'), resultsMarkdown(run, outcome));
  log('wrote bench/results.json and bench/RESULTS.md');
}

function resultsMarkdown(run: FinishedRun, { tables, printed, verdicts, command, noisy }: Outcome): string {
  const { env, started, finished, repetitions } = run;
  const mid = medianRepetition(tables);
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
    `Each figure is the median of ${tables.length} repetitions of every scenario (see "How it is measured"); the repetitions follow.`,
    '',
    printed,
    '',
    ...(noisy.length > 0
      ? [
          '**The machine was not quiet during this run** (figures may be low; re-run on a quiet machine):',
          '',
          ...noisy.map((n) => `- ${n}`),
          '',
        ]
      : []),
    '## Targets (on the medians)',
    '',
    ...verdicts.map((v) => `- **${v.id}** ${v.met === undefined ? 'not measured' : v.met ? 'met' : 'not met'}: ${v.note}.`),
    '',
    ...tables.flatMap((t, i) => [`## Repetition ${i + 1}`, '', table(t.rows), '']),
    ...stepsTable(repetitions[mid]?.scenarios ?? {}, mid + 1),
    '## How it is measured',
    '',
    `- Every scenario runs ${tables.length} times, one repetition after the other (1; 2, 3, 3b, 4 and 6; 2b; 5a; 5b; 7; 7b;`,
    '  6r; then again), each repetition with fresh service processes and databases; the databases of a repetition are',
    '  dropped before the next one.',
    '  The main table shows the median of the repetitions for every figure. Ratios are taken within a repetition first',
    "  (scenario 2 and 2b against that repetition's baseline, 4 against that repetition's 2), then their median is the one",
    "  judged, so the machine's drift between repetitions does not enter a ratio. Failure counts (non-2xx answers, runs",
    '  created by re-deliveries, alerts never executed, incomplete storm messages, chains that did not complete) take their',
    '  worst repetition, not the median.',
    '- Every service process is `node --import tsx bench/service.ts` (the real `createServices` + `buildApp`, as `npm start` runs',
    '  `src/server.ts`), with the `bench.noop` remediation added to the catalogue and the matrix `bench/response-matrix.yaml`',
    '  followed by every rule of the shipped `config/response-matrix.yaml`, so each alert is matched against the real rule set.',
    "  The bench matrix has no global budget, and its rules' targets are per alert, so no unique alert is suppressed.",
    '- The load always comes from another process (`bench/load.ts`: autocannon, or a keep-alive `http` client for 3, 3b, 5 and 7) over',
    '  loopback; this process only orchestrates and reads `/proc/<pid>` for RSS (VmRSS sampled every 50 ms, VmHWM) and CPU.',
    '- Each service group gets a fresh database and its own `QUEUE_PREFIX`, dropped and deleted at the end, so no scenario sees',
    "  another one's backlog: 2, 3, 3b, 4 and 6 share one `ROLE=api` process (no worker competing; its queued runs stay queued,",
    '  so REQUEUE_AFTER is 1 h there to keep the sweeper from re-adding them); 2b is one `ROLE=all` process; 5a and 7 one',
    '  `ROLE=all` process each; 5b and 7b one `ROLE=api` plus one `ROLE=worker` process each.',
    `- 1, 2, 2b: ${CONNECTIONS} connections for ${DURATION} s after a ${WARMUP_SEC} s warm-up (not counted), every request a`,
    '  single-alert message with a new fingerprint; latency is per response, from the request being written to the response.',
    `- 3: ${STORM_MESSAGES} messages of ${STORM_ALERTS} new alerts each, one after another; time to the complete 200 of each;`,
    '  alerts/s is alerts over the summed response times.',
    `- 3b: right after 3, on its process, one message of ${BIG_MESSAGE_ALERTS} new alerts (within MAX_ALERTS_PER_MESSAGE's`,
    '  default and the webhook body limit); time to its complete 200, which comes once every run is stored and enqueued.',
    `- 4: the single-alert bodies of scenario 2 again (the first ${DUPLICATES} runs it stored), ${DUPLICATES} requests at`,
    `  ${CONNECTIONS} connections, after a ${WARMUP_SEC} s warm-up (not counted) that re-delivers the next runs scenario 2 stored, as`,
    '  1, 2 and 2b warm up (without it the measured second or so is mostly the re-delivery path being compiled); runs are',
    `  counted in PostgreSQL before the warm-up and after. Those runs are still \`queued\` (no worker`,
    "  in this group) and their jobs are waiting, so each re-delivery meets the intake's handling of still-queued runs.",
    `- 5: ${EXEC_ALERTS} single-alert messages at ${EXEC_RATE}/s (after 20 warm-up alerts), from the moment the client got the`,
    "  200 to the moment `bench.noop` started (it stores `performance.timeOrigin + performance.now()` in the run's result;",
    '  same machine clock). The job is enqueued before the 200 is written, so a worker can start before the client reads the',
    '  200: such samples are negative.',
    '- 6: the highest of VmHWM and the sampled VmRSS of the `ROLE=api` process at the end of scenario 4 (includes start-up',
    '  and 3b);',
    '  then `process.memoryUsage()`, the V8 heap spaces and the anonymous share of the RSS, before and after a full GC.',
    `- 6r: two idle \`ROLE=all\` processes (the default role) of a group of their own, one with no Kubernetes configuration`,
    '  (HOME without ~/.kube, no in-cluster variables) and one with a kubeconfig naming a cluster it never contacts, sent',
    `  nothing; VmRSS read every second once both are ready. "At rest" is the reading after ${AT_REST_SEC} s (V8 returns the`,
    "  start-up's garbage and shrinks its young generation only after some idle seconds); the reading after 2 s is shown too.",
    `- 7: ${CHAIN_ALERTS} single-alert messages at ${CHAIN_RATE}/s (after 20 warm-up alerts) of the bench's chain rule: each`,
    '  alert makes a `bench.noop` run (`id: first`) and a dependent `bench.noop` run (`after: first`, `when: succeeded`),',
    `  stored \`waiting\` and released when the first succeeds: ${CHAIN_RATE * 2} runs a second execute, as in 5. Per chain,`,
    "  from the moment the predecessor's `succeeded` event was stored (`run_events.at`, PostgreSQL's `clock_timestamp()` as",
    "  the executor wrote the outcome) to the moment the dependent's `bench.noop` started (its stored result; same machine",
    '  clock). Measured once every run of every chain is final; a chain whose runs did not both succeed counts as missing.',
    '  7 runs on one `ROLE=all` process (the default role: the process that takes the alerts also executes the runs and',
    '  releases the dependents), 7b on a `ROLE=api` plus a `ROLE=worker` process.',
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
