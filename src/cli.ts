import { Command, Option } from 'commander';
import { loadConfig } from './config.js';
import { ConfigError } from './errors.js';
import { check, type CheckOptions } from './cli/check.js';
import { DEFAULT_URL } from './cli/client.js';
import { OUTPUT_FORMATS } from './cli/table.js';
import { openDatabase } from './store/database.js';
import { migrate } from './store/migrate.js';

const defaultMatrix = () => process.env['MATRIX_PATH'] ?? 'config/response-matrix.yaml';

/** `-o json`: the answer as JSON, for scripts; a table otherwise. */
const outputOption = () => new Option('-o, --output <format>', 'table or json').choices(OUTPUT_FORMATS).default('table');

/** `--url` and `--token`, over REMEDIATOR_URL and REMEDIATOR_TOKEN. */
function connection(cmd: Command): Command {
  return cmd
    .option('--url <url>', `the remediator's base URL (default: REMEDIATOR_URL, else ${DEFAULT_URL})`)
    .option('--token <token>', 'an API bearer token (default: REMEDIATOR_TOKEN)')
    .addOption(outputOption());
}

/**
 * `remediator`: the operator's command line. `check` validates a matrix as the service would at
 * start (exit 1 naming file, line and column), and with `--rules` cross-checks it against the alert
 * rules; `simulate` shows what a message would do; `migrate` applies the database migrations and
 * exits; `runs`, `show`, `approve`, `reject`, `pause` and `resume` call the API of a running service.
 * The commands that need more than a matrix load their code when they run.
 */
export function cli(): Command {
  const program = new Command('remediator').description('conduit-remediator operator tools').showHelpAfterError();
  program
    .command('check')
    .description('validate an alert response matrix and print its rules and actions')
    .option('--matrix <path>', 'the matrix file', defaultMatrix())
    .option('--rules <path>', 'a Prometheus rules file: warn about alertnames it never fires and labels its alerts lack')
    .option('--strict', 'exit 1 when there is any warning')
    .action((opts: CheckOptions) => check(opts));
  program
    .command('simulate')
    .description('what an Alertmanager webhook message (a JSON file, - for stdin) would do: offline, or with --url by the service')
    .argument('<file>', 'the message, as Alertmanager posts it')
    .option('--matrix <path>', 'the matrix file (offline)', defaultMatrix())
    .option('--url <url>', 'ask the service at this base URL (POST /api/simulate) instead of simulating offline')
    .option('--token <token>', 'an API bearer token, with --url (default: REMEDIATOR_TOKEN)')
    .addOption(outputOption())
    .action(async (file: string, opts) => (await import('./cli/simulate.js')).simulateCommand(file, opts));
  connection(
    program
      .command('runs')
      .description('list runs, newest first (GET /api/runs)')
      .option('--status <status>', 'only runs in this status')
      .option('--rule <rule>', 'only runs of this matrix rule')
      .option('--remediation <name>', 'only runs of this remediation')
      .option('--alertname <name>', 'only runs of alerts with this labels.alertname')
      .option('--since <when>', 'only runs created since: a duration back from now (1h, 30m, 2d) or an RFC 3339 time')
      .option('--limit <n>', 'at most this many runs (1 to 200, default 50)')
      .option('--cursor <cursor>', 'the next page, as the previous one said'),
  ).action(async (opts) => (await import('./cli/runs.js')).listRuns(opts));
  connection(
    program.command('show').description('one run with its timeline of events (GET /api/runs/:id)').argument('<id>', 'the run id'),
  ).action(async (id: string, opts) => (await import('./cli/runs.js')).showRun(id, opts));
  connection(
    program
      .command('approve')
      .description('approve a run waiting for approval: it is queued (POST /api/runs/:id/approve)')
      .argument('<id>', 'the run id')
      .option('-m, --message <comment>', 'a comment, recorded with the decision'),
  ).action(async (id: string, opts) => (await import('./cli/runs.js')).decide('approve', id, opts));
  connection(
    program
      .command('reject')
      .description('reject a run waiting for approval (POST /api/runs/:id/reject)')
      .argument('<id>', 'the run id')
      .option('-m, --message <reason>', 'why, recorded with the decision'),
  ).action(async (id: string, opts) => (await import('./cli/runs.js')).decide('reject', id, opts));
  connection(
    program
      .command('pause')
      .description('the kill switch: new runs are suppressed, queued ones wait (POST /api/control/pause)')
      .option('-m, --message <reason>', 'why, recorded with the switch'),
  ).action(async (opts) => (await import('./cli/runs.js')).control('pause', opts));
  connection(program.command('resume').description('turn the kill switch off (POST /api/control/resume)')).action(async (opts) =>
    (await import('./cli/runs.js')).control('resume', opts),
  );
  program
    .command('migrate')
    .description('apply the database migrations (DATABASE_URL) and exit, as an init container would')
    .action(async () => {
      const { config } = loadConfig(process.env);
      const pool = await openDatabase(config.databaseUrl, { max: 1, applicationName: config.applicationName });
      try {
        const applied = await migrate(pool);
        process.stdout.write(applied.length > 0 ? `applied migrations ${applied.join(', ')}\n` : 'database is up to date\n');
      } finally {
        await pool.end();
      }
    });
  return program;
}

export async function main(argv: string[]): Promise<number> {
  // `remediator check | head`: a reader that stopped reading is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  try {
    await cli().parseAsync(argv);
    return 0;
  } catch (err) {
    process.stderr.write(`error: ${err instanceof ConfigError ? err.message : (err as Error).message}\n`);
    return 1;
  }
}
