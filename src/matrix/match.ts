import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { Remediation } from '../../remediations/types.js';
import type { AlertSnapshot } from '../schemas/runs.js';
import { convertStrict } from '../kernel/convert.js';
import { matchesAll } from './matchers.js';
import type { PredecessorScope } from './template.js';
import type { Action, Matrix } from './types.js';

/** The actions an alert triggers: a firing alert the rules' `actions`, a resolved one their `onResolved`. */
export function matchAlert(matrix: Matrix, alert: AlertSnapshot): Action[] {
  const out: Action[] = [];
  for (const rule of matrix.rules) {
    if (!matchesAll(rule.matchers, alert.labels)) continue;
    out.push(...(alert.status === 'firing' ? rule.actions : rule.onResolved));
  }
  return out;
}

/** Whether any rule's matchers hold for the alert, whatever its phase has to do. */
export function matchesAnyRule(matrix: Matrix, alert: AlertSnapshot): boolean {
  return matrix.rules.some((rule) => matchesAll(rule.matchers, alert.labels));
}

export type Prepared =
  | { ok: true; params: Record<string, unknown>; target: string; plan: string }
  | { ok: false; params: Record<string, unknown>; error: string };

const checks = new WeakMap<TSchema, TypeCheck<TSchema>>();
function checker(schema: TSchema): TypeCheck<TSchema> {
  let check = checks.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    checks.set(schema, check);
  }
  return check;
}

/** Renders params from the alert and validates them against the remediation's schema. */
export function prepareParams(remediation: Remediation, raw: Record<string, unknown>): Prepared {
  const converted = Value.Default(remediation.params, convertStrict(remediation.params, structuredClone(raw))) as Record<string, unknown>;
  const check = checker(remediation.params);
  if (!check.Check(converted)) {
    const first = check.Errors(converted).First();
    const field = first?.path.replace(/^\//, '').replace(/\//g, '.') || 'params';
    return { ok: false, params: raw, error: `${field}: ${first?.message ?? 'invalid'}` };
  }
  try {
    return { ok: true, params: converted, target: remediation.target(converted), plan: remediation.plan(converted) };
  } catch (err) {
    return { ok: false, params: raw, error: (err as Error).message };
  }
}

/** Renders an action's params for an alert (and, for a dependent moving on, its predecessor's outcome) and checks them. */
export function prepare(action: Action, alert: AlertSnapshot, after?: PredecessorScope): Prepared {
  const raw = action.renderParams({
    labels: alert.labels,
    annotations: alert.annotations,
    alert: { fingerprint: alert.fingerprint, startsAt: alert.startsAt, status: alert.status },
    ...(after ? { after } : {}),
  });
  return prepareParams(action.remediation, raw);
}
