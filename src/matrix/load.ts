import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type { Remediation } from '../../remediations/types.js';
import { ConfigError } from '../errors.js';
import { convertStrict } from '../kernel/convert.js';
import { DURATION_PATTERN, parseDuration } from '../kernel/duration.js';
import { parseMatcher } from './matchers.js';
import { checkTemplatePlacement, promqlString } from '../prometheus/promql.js';
import { anchor, compileScope, outOfScope } from '../gates/scope.js';
import { isSeverity, SEVERITIES } from '../gates/severity.js';
import { compileParams, compileTemplate } from './template.js';
import {
  WHEN_VALUES,
  type Action,
  type GlobalLimit,
  type Limit,
  type Matrix,
  type Predecessor,
  type QueryTemplate,
  type Rule,
} from './types.js';

const DurationText = Type.Union([Type.String({ pattern: DURATION_PATTERN, minLength: 1 }), Type.Literal(0)]);
const LimitSchema = Type.Object({ max: Type.Integer({ minimum: 1 }), per: DurationText }, { additionalProperties: false });
const GlobalLimitSchema = Type.Object(
  {
    max: Type.Integer({ minimum: 1 }),
    per: DurationText,
    reserve: Type.Optional(Type.Record(Type.String(), Type.Integer({ minimum: 0 }))),
  },
  { additionalProperties: false },
);
const ActionSchema = Type.Object(
  {
    id: Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9_-]{0,62}$' })),
    remediation: Type.String({ minLength: 1 }),
    after: Type.Optional(Type.String({ minLength: 1 })),
    when: Type.Optional(Type.Union(WHEN_VALUES.map((w) => Type.Literal(w)))),
    check: Type.Optional(
      Type.Object(
        { alertFiring: Type.Optional(Type.Boolean()), query: Type.Optional(Type.String({ minLength: 1 })) },
        { additionalProperties: false },
      ),
    ),
    verify: Type.Optional(
      Type.Object(
        { query: Type.String({ minLength: 1 }), within: DurationText, every: Type.Optional(DurationText) },
        { additionalProperties: false },
      ),
    ),
    onUnverified: Type.Optional(Type.Union([Type.Literal('revert'), Type.Literal('escalate'), Type.Literal('none')])),
    revertAfter: Type.Optional(DurationText),
    revertApproval: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('required')])),
    silence: Type.Optional(DurationText),
    onCheckError: Type.Optional(Type.Union([Type.Literal('proceed'), Type.Literal('skip')])),
    params: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    allow: Type.Optional(Type.Record(Type.String(), Type.String())),
    approval: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('required')])),
    cooldown: Type.Optional(DurationText),
    limit: Type.Optional(LimitSchema),
    dryRun: Type.Optional(Type.Boolean()),
    approvalTimeout: Type.Optional(DurationText),
  },
  { additionalProperties: false },
);
const RuleSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$' }),
    description: Type.Optional(Type.String()),
    matchers: Type.Array(Type.String(), { minItems: 1 }),
    severity: Type.Optional(Type.String()),
    responseTime: Type.Optional(DurationText),
    actions: Type.Optional(Type.Array(ActionSchema)),
    onResolved: Type.Optional(Type.Array(ActionSchema)),
  },
  { additionalProperties: false },
);
const MatrixSchema = Type.Object(
  {
    defaults: Type.Optional(
      Type.Object({ approvalTimeout: Type.Optional(DurationText), cooldown: Type.Optional(DurationText) }, { additionalProperties: false }),
    ),
    limits: Type.Optional(Type.Object({ global: Type.Optional(GlobalLimitSchema) }, { additionalProperties: false })),
    rules: Type.Array(RuleSchema),
  },
  { additionalProperties: false },
);
type MatrixFile = Static<typeof MatrixSchema>;
type ActionFile = Static<typeof ActionSchema>;

const DEFAULT_APPROVAL_TIMEOUT = '30m';
const DEFAULT_COOLDOWN = '10m';
const DEFAULT_VERIFY_EVERY = '30s';

/** A PromQL template: every reference sits inside a string literal, and its value is escaped for it. */
function compileQuery(text: string, after: boolean, fail: (message: string) => ConfigError): QueryTemplate {
  const misplaced = checkTemplatePlacement(text);
  if (misplaced) throw fail(misplaced);
  try {
    const render = compileTemplate(text, { after, escape: promqlString });
    return { text, render };
  } catch (err) {
    throw fail((err as Error).message);
  }
}

/** Reports a mistake with the file, line and column of the node at `path`. */
function locator(file: string, doc: Document, lines: LineCounter) {
  return (path: ReadonlyArray<string | number>, message: string): ConfigError => {
    let node: unknown;
    for (let i = path.length; i >= 0 && !isNode(node); i--) node = doc.getIn(path.slice(0, i), true);
    const offset = isNode(node) && node.range ? node.range[0] : 0;
    const { line, col } = lines.linePos(offset);
    const where = path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`))
      .join('')
      .replace(/^\./, '');
    return new ConfigError(`${file}:${line}:${col}`, where ? `${where}: ${message}` : message);
  };
}

const ms = (text: string | 0) => parseDuration(String(text)) as number;
const limit = (l: { max: number; per: string | 0 } | undefined): Limit | undefined => (l ? { max: l.max, perMs: ms(l.per) } : undefined);

/** Parses and validates a matrix; throws `ConfigError` naming the file, line and what is wrong. */
export function parseMatrix(text: string, file: string, catalogue: ReadonlyMap<string, Remediation>): Matrix {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const pos = e.linePos?.[0];
    throw new ConfigError(`${file}:${pos?.line ?? 1}:${pos?.col ?? 1}`, e.message.split('\n')[0] ?? e.message);
  }
  const at = locator(file, doc, lines);
  const data = doc.toJS() as unknown;
  const first = Value.Errors(MatrixSchema, data).First();
  if (first) {
    const path = first.path
      .split('/')
      .slice(1)
      .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
    throw at(path, first.message);
  }
  const file_ = data as MatrixFile;
  const defaults = {
    approvalTimeoutMs: ms(file_.defaults?.approvalTimeout ?? DEFAULT_APPROVAL_TIMEOUT),
    cooldownMs: ms(file_.defaults?.cooldown ?? DEFAULT_COOLDOWN),
  };

  const seen = new Set<string>();
  const rules: Rule[] = file_.rules.map((r, ri) => {
    if (seen.has(r.name)) throw at(['rules', ri, 'name'], `duplicate rule name "${r.name}"`);
    seen.add(r.name);
    const matchers = r.matchers.map((m, mi) => {
      try {
        return parseMatcher(m);
      } catch (err) {
        throw at(['rules', ri, 'matchers', mi], (err as Error).message);
      }
    });
    const firingIds = new Map<string, number>();
    const compile = (phase: 'firing' | 'resolved', list: ActionFile[] | undefined): Action[] => {
      const ids = phase === 'firing' ? firingIds : new Map<string, number>();
      const section = phase === 'firing' ? 'actions' : 'onResolved';
      (list ?? []).forEach((a, ai) => {
        if (a.id === undefined) return;
        if (ids.has(a.id)) throw at(['rules', ri, section, ai, 'id'], `duplicate action id "${a.id}" in ${section}`);
        ids.set(a.id, ai);
      });
      return (list ?? []).map((a, ai) => {
        const path = ['rules', ri, section, ai];
        const remediation = catalogue.get(a.remediation);
        if (!remediation) {
          throw at([...path, 'remediation'], `unknown remediation "${a.remediation}" (known: ${[...catalogue.keys()].sort().join(', ')})`);
        }
        const after = predecessor(a, ai, phase, ids, firingIds, (message) =>
          at([...path, a.after === undefined ? 'when' : 'after'], message),
        );
        if (after && (after.when === 'verified' || after.when === 'unverified')) {
          const lists = { firing: r.actions ?? [], resolved: r.onResolved ?? [] };
          const [predPhase, predIndex] = after.key.split(':') as ['firing' | 'resolved', string];
          if (!lists[predPhase][Number(predIndex)]?.verify) {
            throw at([...path, 'when'], `"${after.when}" needs a verify on "${after.ref}": without one it is never verified or unverified`);
          }
        }
        const query = (key: 'check' | 'verify', text: string | undefined) =>
          text === undefined ? undefined : compileQuery(text, after !== undefined, (message) => at([...path, key, 'query'], message));
        const conditionQuery = query('check', a.check?.query);
        if (a.onUnverified !== undefined && !a.verify) throw at([...path, 'onUnverified'], '`onUnverified` needs `verify`');
        const noInverse = `${remediation.name} has no inverse to revert with`;
        if (a.onUnverified === 'revert' && !remediation.revert) throw at([...path, 'onUnverified'], `${noInverse}; use escalate or none`);
        if (a.revertAfter !== undefined && !remediation.revert) throw at([...path, 'revertAfter'], noInverse);
        if (a.revertApproval !== undefined && !remediation.revert) throw at([...path, 'revertApproval'], noInverse);
        if (a.revertAfter !== undefined && ms(a.revertAfter) <= 0) throw at([...path, 'revertAfter'], 'must be more than 0');
        if (a.silence !== undefined && phase === 'resolved')
          throw at([...path, 'silence'], '`silence` is for firing actions: a resolved alert has nothing to silence');
        if (a.silence !== undefined && ms(a.silence) <= 0) throw at([...path, 'silence'], 'must be more than 0');
        const verify = a.verify
          ? { query: query('verify', a.verify.query)!, withinMs: ms(a.verify.within), everyMs: ms(a.verify.every ?? DEFAULT_VERIFY_EVERY) }
          : undefined;
        if (verify && verify.everyMs <= 0) throw at([...path, 'verify', 'every'], 'must be more than 0');
        let renderParams;
        try {
          renderParams = compileParams(a.params ?? {}, { after: after !== undefined, textParams: remediation.textParams });
        } catch (err) {
          throw at([...path, 'params'], (err as Error).message);
        }
        checkConstantParams(remediation, a.params ?? {}, (key, message) => at([...path, 'params', key], message));
        const allow = compileAllow(remediation, a.allow, a.params ?? {}, (key, message) => at([...path, 'allow', key], message));
        return {
          rule: r.name,
          key: `${phase}:${ai}`,
          id: a.id,
          phase,
          after,
          // A notice reports what was done: it goes out whatever Alertmanager says now, unless asked otherwise.
          checkAlertFiring: a.check?.alertFiring ?? remediation.requires !== 'notify',
          onCheckError: a.onCheckError ?? 'skip',
          conditionQuery,
          verify,
          onUnverified: a.onUnverified ?? 'escalate',
          revertAfterMs: a.revertAfter !== undefined ? ms(a.revertAfter) : undefined,
          revertApproval: a.revertApproval,
          ...(a.silence !== undefined ? { silenceMs: ms(a.silence) } : {}),
          remediation,
          renderParams,
          ...(allow ? { allow } : {}),
          ...(r.severity !== undefined ? { severity: r.severity } : {}),
          approval: a.approval ?? 'auto',
          cooldownMs: a.cooldown !== undefined ? ms(a.cooldown) : defaults.cooldownMs,
          limit: limit(a.limit),
          dryRun: a.dryRun ?? false,
          approvalTimeoutMs: a.approvalTimeout !== undefined ? ms(a.approvalTimeout) : defaults.approvalTimeoutMs,
        };
      });
    };
    if (!r.actions?.length && !r.onResolved?.length) throw at(['rules', ri], 'a rule needs at least one action');
    return {
      name: r.name,
      matchers,
      severity: r.severity,
      responseTimeMs: r.responseTime !== undefined ? ms(r.responseTime) : undefined,
      actions: compile('firing', r.actions),
      onResolved: compile('resolved', r.onResolved),
    };
  });
  return { path: file, rules, globalLimit: globalLimit(file_.limits?.global, (key, message) => at(['limits', 'global', ...key], message)) };
}

/**
 * `limits.global`, with `reserve`: its keys are severities (see `gates/severity.ts`), its values the
 * slots of `max` kept for that severity and higher; together they leave at least nothing to the others.
 */
function globalLimit(
  l: Static<typeof GlobalLimitSchema> | undefined,
  fail: (path: string[], message: string) => ConfigError,
): GlobalLimit | undefined {
  if (!l) return undefined;
  const base = limit(l)!;
  if (l.reserve === undefined) return base;
  const reserve: Record<string, number> = {};
  for (const [name, n] of Object.entries(l.reserve)) {
    const severity = name.toLowerCase();
    if (!isSeverity(severity))
      throw fail(['reserve', name], `unknown severity "${name}" (severities, lowest first: ${SEVERITIES.join(', ')})`);
    if (Object.hasOwn(reserve, severity)) throw fail(['reserve', name], `severity "${severity}" is reserved twice`);
    reserve[severity] = n;
  }
  const total = Object.values(reserve).reduce((sum, n) => sum + n, 0);
  if (total > l.max) throw fail(['reserve'], `reserves ${total} of a budget of ${l.max}: at most max (${l.max}) can be reserved`);
  return { ...base, reserve };
}

/** Param types whose value a scope pattern can be matched against: strings, and numbers in decimal. */
const SCOPABLE = new Set(['string', 'integer', 'number']);

/**
 * `allow`, anchored and checked: each key a string or number param of the remediation, each pattern
 * a valid regex, and a constant param set in the action within its own scope.
 */
function compileAllow(
  remediation: Remediation,
  allow: Record<string, string> | undefined,
  params: Record<string, unknown>,
  fail: (key: string, message: string) => ConfigError,
): Record<string, string> | undefined {
  if (allow === undefined) return undefined;
  const properties = (remediation.params as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  const out: Record<string, string> = {};
  for (const [key, pattern] of Object.entries(allow)) {
    const prop = Object.hasOwn(properties, key) ? properties[key] : undefined;
    if (!prop) throw fail(key, `${remediation.name} takes no param "${key}" to scope (params: ${Object.keys(properties).join(', ')})`);
    if (typeof prop.type !== 'string' || !SCOPABLE.has(prop.type))
      throw fail(key, `${remediation.name}'s param "${key}" is not a string or a number: only those can be scoped`);
    const anchored = anchor(pattern);
    try {
      compileScope(anchored);
    } catch (err) {
      throw fail(key, `not a valid regex: ${(err as Error).message}`);
    }
    out[key] = anchored;
  }
  const constants = Object.fromEntries(Object.entries(params).filter(([key, v]) => key in out && !JSON.stringify(v).includes('{{')));
  const refused = outOfScope(Object.fromEntries(Object.entries(out).filter(([key]) => key in constants)), constants);
  if (refused) throw fail(refused.param, `the action's own ${refused.message}: every run would fail out_of_scope`);
  return out;
}

/**
 * Resolves `after` to the predecessor's action key. It names an earlier action of the same phase by
 * id, or from `onResolved`, a firing-phase one as `firing.<id>`: pointing only backwards, a chain
 * cannot form a cycle.
 */
function predecessor(
  a: ActionFile,
  index: number,
  phase: 'firing' | 'resolved',
  ids: ReadonlyMap<string, number>,
  firingIds: ReadonlyMap<string, number>,
  fail: (message: string) => ConfigError,
): Predecessor | undefined {
  if (a.after === undefined) {
    if (a.when !== undefined) throw fail('`when` needs `after`: it says which outcome of the predecessor lets this action go on');
    return undefined;
  }
  const ref = a.after;
  const when = a.when ?? 'succeeded';
  const cross = /^firing\.(.+)$/.exec(ref)?.[1];
  if (cross !== undefined) {
    if (phase === 'firing') throw fail(`"${ref}": firing.<id> is for onResolved actions; in actions, name the id alone`);
    const at = firingIds.get(cross);
    if (at === undefined) throw fail(`"${ref}": no firing action has id "${cross}"${known(firingIds)}`);
    return { key: `firing:${at}`, ref, when };
  }
  if (ref === a.id) throw fail(`"${ref}": an action cannot wait for itself`);
  const at = ids.get(ref);
  if (at === undefined) {
    const hint = phase === 'resolved' && firingIds.has(ref) ? `; did you mean "firing.${ref}"?` : known(ids);
    throw fail(`"${ref}": no action of this phase has id "${ref}"${hint}`);
  }
  if (at > index) throw fail(`"${ref}" comes later in the list: an action can only wait for one before it`);
  return { key: `${phase}:${at}`, ref, when };
}

const known = (ids: ReadonlyMap<string, number>) => (ids.size > 0 ? ` (ids: ${[...ids.keys()].join(', ')})` : ' (no action has an id)');

/**
 * Catches mistakes that no alert could fix at load time: unknown params, and constant values the
 * schema rejects. Templated values are checked per alert, when they are rendered.
 */
function checkConstantParams(
  remediation: Remediation,
  params: Record<string, unknown>,
  fail: (key: string, message: string) => ConfigError,
): void {
  const schema = remediation.params as { properties?: Record<string, unknown>; additionalProperties?: unknown };
  for (const [key, value] of Object.entries(params)) {
    const prop = schema.properties?.[key];
    if (!prop) {
      if (schema.additionalProperties === false)
        throw fail(key, `${remediation.name} takes no param "${key}" (params: ${Object.keys(schema.properties ?? {}).join(', ')})`);
      continue;
    }
    if (JSON.stringify(value).includes('{{')) continue;
    const converted = convertStrict(prop as never, value);
    const err = Value.Errors(prop as never, converted).First();
    if (err) throw fail(key, err.message);
  }
  const required = (schema as { required?: string[] }).required ?? [];
  const missing = required.filter(
    (key) => !(key in params) && (schema.properties?.[key] as { default?: unknown } | undefined)?.default === undefined,
  );
  if (missing.length > 0) throw fail('', `${remediation.name} needs param${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
}

export function loadMatrix(path: string, catalogue: ReadonlyMap<string, Remediation>): Matrix {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('MATRIX_PATH', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseMatrix(text, path, catalogue);
}
