import { Command } from 'commander';
import { createCatalogue } from '../remediations/catalogue.js';
import { loadConfig } from './config.js';
import { ConfigError } from './errors.js';
import { loadMatrix } from './matrix/load.js';
import type { Action, Matrix } from './matrix/types.js';
import { openDatabase } from './store/database.js';
import { migrate } from './store/migrate.js';
import { formatDuration } from './kernel/duration.js';

/** One line per action: what the matrix does, for a reviewer of a matrix change. */
function describeAction(a: Action): string[] {
  return [
    a.id ?? a.key,
    a.remediation.name,
    a.approval,
    a.cooldownMs > 0 ? formatDuration(a.cooldownMs) : '-',
    a.limit ? `${a.limit.max}/${formatDuration(a.limit.perMs)}` : '-',
    a.after ? `${a.after.ref} ${a.after.when}` : '-',
    [a.conditionQuery ? 'check' : '', a.verify ? `verify ${formatDuration(a.verify.withinMs)}` : ''].filter(Boolean).join(', ') || '-',
  ];
}

/** The matrix as a table: rule, phase, then each action's settings. */
export function matrixTable(matrix: Matrix): string {
  const rows = [['RULE', 'PHASE', 'ACTION', 'REMEDIATION', 'APPROVAL', 'COOLDOWN', 'LIMIT', 'AFTER', 'LOOP']];
  for (const rule of matrix.rules) {
    for (const a of rule.actions) rows.push([rule.name, 'firing', ...describeAction(a)]);
    for (const a of rule.onResolved) rows.push([rule.name, 'resolved', ...describeAction(a)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * `remediator`: the operator's command line. `check` validates a matrix as the service would at
 * start (exit 1 naming file, line and column); `migrate` applies the database migrations and exits.
 */
export function cli(): Command {
  const program = new Command('remediator').description('conduit-remediator operator tools').showHelpAfterError();
  program
    .command('check')
    .description('validate an alert response matrix and print its rules and actions')
    .option('--matrix <path>', 'the matrix file', process.env['MATRIX_PATH'] ?? 'config/response-matrix.yaml')
    .action((opts: { matrix: string }) => {
      const matrix = loadMatrix(opts.matrix, createCatalogue());
      process.stdout.write(`${matrixTable(matrix)}\n`);
      const actions = matrix.rules.reduce((n, r) => n + r.actions.length + r.onResolved.length, 0);
      process.stdout.write(`${opts.matrix}: ${matrix.rules.length} rules, ${actions} actions, valid\n`);
    });
  program
    .command('migrate')
    .description('apply the database migrations (DATABASE_URL) and exit, as an init container would')
    .action(async () => {
      const { config } = loadConfig(process.env);
      const pool = await openDatabase(config.databaseUrl, { max: 1 });
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
