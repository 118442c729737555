/**
 * `remediator check --rules`: the matrix against the Prometheus rules that fire its alerts. Two
 * mistakes no schema catches, each a warning with the matrix's `file:line:col`:
 * - a rule matches an `alertname` (`alertname="X"`, or each name of `alertname=~"X|Y"`; any other
 *   regex must match at least one) that no alert rule of the file fires;
 * - a template (params, `check.query`, `verify.query`) reads `{{ labels.X }}` that an alert rule
 *   able to fire a matching alert does not produce (see prometheus-rules.ts for what counts as
 *   produced): the label would render empty and the run fail `invalid_params`, or a query match nothing.
 * Which labels a template reads is found by rendering it, as compiled by src/matrix/template.ts,
 * with labels that record every name asked of them.
 */
import { readFileSync } from 'node:fs';
import { isMap, LineCounter, parseDocument, type Document } from 'yaml';
import type { Matcher } from '../matrix/matchers.js';
import { compileParams, type TemplateScope } from '../matrix/template.js';
import type { Action, Matrix, Rule } from '../matrix/types.js';
import { positionOf, producedLabels, type AlertRule, type RulesFile } from './prometheus-rules.js';

export interface Warning {
  /** `file:line:col` in the matrix, when known. */
  at: string | undefined;
  message: string;
}

export const formatWarning = (w: Warning) => `warning: ${w.at ? `${w.at}: ` : ''}${w.message}`;

/** The names of `labels.X` a renderer reads. */
export function labelsRead(render: (scope: TemplateScope) => unknown): string[] {
  const read = new Set<string>();
  const note = (key: string | symbol) => {
    if (typeof key === 'string') read.add(key);
  };
  const labels = new Proxy<Record<string, string>>(
    {},
    {
      get: (_t, key) => (note(key), undefined),
      has: (_t, key) => (note(key), false),
      getOwnPropertyDescriptor: (_t, key) => (note(key), undefined),
    },
  );
  render({
    labels,
    annotations: {},
    alert: { fingerprint: '', startsAt: '', status: 'firing' },
    after: { status: '', reason: null, error: null, result: {} },
  });
  return [...read];
}

/** Where a template of an action sits, and the labels it reads. */
interface TemplatePlace {
  path: Array<string | number>;
  labels: string[];
}

const SECTION = { firing: 'actions', resolved: 'onResolved' } as const;

function places(action: Action, rulePath: Array<string | number>, doc: Document): TemplatePlace[] {
  const [phase, index] = action.key.split(':') as ['firing' | 'resolved', string];
  const path = [...rulePath, SECTION[phase], Number(index)];
  const out: TemplatePlace[] = [];
  const params = doc.getIn([...path, 'params'], true);
  const raw = isMap(params) ? (params.toJSON() as Record<string, unknown>) : {};
  for (const [key, value] of Object.entries(raw)) {
    out.push({ path: [...path, 'params', key], labels: labelsRead(compileParams({ [key]: value }, { after: true })) });
  }
  if (action.conditionQuery) out.push({ path: [...path, 'check', 'query'], labels: labelsRead(action.conditionQuery.render) });
  if (action.verify) out.push({ path: [...path, 'verify', 'query'], labels: labelsRead(action.verify.query.render) });
  return out;
}

/** Whether an alert of `rule` could satisfy `m`: false only when its labels say it cannot. */
function couldHold(m: Matcher, rule: AlertRule, produced: ReadonlySet<string>): boolean {
  if (m.name === 'alertname') return m.test({ alertname: rule.alert });
  const fixed = rule.labels[m.name];
  if (fixed !== undefined && !fixed.includes('{{')) return m.test({ [m.name]: fixed });
  // A label the rule cannot produce is missing from its alerts, which matchers see as the empty string.
  if (!produced.has(m.name)) return m.test({});
  return true;
}

/** `alertname=~"A|B|(C)"`: the names, when the regex is only a list of them. */
function literalNames(regex: string): string[] | undefined {
  const inner = /^\((?:\?:)?(.*)\)$/.exec(regex)?.[1] ?? regex;
  const names = inner.split('|');
  return names.every((n) => /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(n)) ? names : undefined;
}

const where = (path: ReadonlyArray<string | number>) =>
  path
    .map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`))
    .join('')
    .replace(/^\./, '');

/** Cross-checks `matrix` (read again from its file for positions) against the rules of `rules`. */
export function checkAgainstRules(matrix: Matrix, rules: RulesFile): Warning[] {
  const lines = new LineCounter();
  const doc = parseDocument(readFileSync(matrix.path, 'utf8'), { lineCounter: lines });
  const at = (path: ReadonlyArray<string | number>): string | undefined => {
    for (let i = path.length; i > 0; i--) {
      const node = doc.getIn(path.slice(0, i), true);
      if (node && typeof node === 'object') return positionOf(matrix.path, lines, node);
    }
    return undefined;
  };
  const produced = new Map(rules.alerts.map((r) => [r, producedLabels(r, rules)]));
  const fired = new Set(rules.alerts.map((r) => r.alert));
  const warnings: Warning[] = [];

  matrix.rules.forEach((rule: Rule, ri) => {
    const rulePath = ['rules', ri];
    let missingName = false;
    rule.matchers.forEach((m, mi) => {
      if (m.name !== 'alertname' || (m.op !== '=' && m.op !== '=~')) return;
      const path = [...rulePath, 'matchers', mi];
      const names = m.op === '=' ? [m.value] : literalNames(m.value);
      if (names) {
        for (const name of names.filter((n) => !fired.has(n))) {
          missingName = true;
          warnings.push({ at: at(path), message: `${where(path)}: no alert rule in ${rules.path} fires alertname "${name}"` });
        }
      } else if (!rules.alerts.some((r) => m.test({ alertname: r.alert }))) {
        missingName = true;
        warnings.push({ at: at(path), message: `${where(path)}: no alert rule in ${rules.path} fires an alertname matching "${m.value}"` });
      }
    });
    const candidates = rules.alerts.filter((r) => rule.matchers.every((m) => couldHold(m, r, produced.get(r)!)));
    if (candidates.length === 0) {
      if (!missingName) {
        const path = [...rulePath, 'matchers'];
        warnings.push({
          at: at(path),
          message: `${where(path)}: no alert rule in ${rules.path} fires an alert these matchers hold for (by its alertname and labels)`,
        });
      }
      return;
    }
    for (const action of [...rule.actions, ...rule.onResolved]) {
      for (const place of places(action, rulePath, doc)) {
        for (const label of place.labels) {
          const lacking = candidates.filter((r) => !produced.get(r)!.has(label));
          if (lacking.length === 0) continue;
          const named = lacking.map((r) => `${r.alert} (${r.at})`).join(', ');
          warnings.push({
            at: at(place.path),
            message: `${where(place.path)}: reads labels.${label}, which alert rule${lacking.length > 1 ? 's' : ''} ${named} ${lacking.length > 1 ? 'do' : 'does'} not produce`,
          });
        }
      }
    }
  });
  return warnings;
}
