/** `remediator check`: a matrix validated as the service loads it, printed, and optionally cross-checked against the alert rules. */
import { createCatalogue } from '../../remediations/catalogue.js';
import { formatDuration } from '../kernel/duration.js';
import { loadMatrix } from '../matrix/load.js';
import type { Action, Matrix } from '../matrix/types.js';
import { loadRules } from './prometheus-rules.js';
import { checkAgainstRules, formatWarning } from './rules-check.js';
import { print, table } from './table.js';

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
  return table(rows);
}

export interface CheckOptions {
  matrix: string;
  rules?: string;
  strict?: boolean;
}

/**
 * Prints the matrix and, with `rules`, the warnings of the cross-check (on stderr). Throws on an
 * invalid matrix or rules file, and with `strict` when there is any warning: exit 1 either way.
 */
export function check(opts: CheckOptions): void {
  const matrix = loadMatrix(opts.matrix, createCatalogue());
  print(matrixTable(matrix));
  const actions = matrix.rules.reduce((n, r) => n + r.actions.length + r.onResolved.length, 0);
  print(`${opts.matrix}: ${matrix.rules.length} rules, ${actions} actions, valid`);
  if (opts.rules === undefined) return;
  const rules = loadRules(opts.rules);
  const warnings = checkAgainstRules(matrix, rules);
  for (const w of warnings) process.stderr.write(`${formatWarning(w)}\n`);
  const counted = `${rules.alerts.length} alert rules, ${[...rules.records.values()].flat().length} recording rules`;
  print(
    warnings.length === 0
      ? `${opts.rules}: ${counted}; every alertname the matrix matches is fired, every label it reads is produced`
      : `${opts.rules}: ${counted}; ${warnings.length} warning${warnings.length > 1 ? 's' : ''}`,
  );
  if (opts.strict && warnings.length > 0) {
    throw new Error(`${warnings.length} warning${warnings.length > 1 ? 's' : ''} with --strict`);
  }
}
