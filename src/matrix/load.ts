import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import type { Remediation } from '../../remediations/types.js';
import { ConfigError } from '../errors.js';
import { convertStrict } from '../kernel/convert.js';
import { DURATION_PATTERN, parseDuration } from '../kernel/duration.js';
import { parseMatcher } from './matchers.js';
import { compileParams } from './template.js';
import type { Action, Limit, Matrix, Rule } from './types.js';

const DurationText = Type.Union([Type.String({ pattern: DURATION_PATTERN, minLength: 1 }), Type.Literal(0)]);
const LimitSchema = Type.Object({ max: Type.Integer({ minimum: 1 }), per: DurationText }, { additionalProperties: false });
const ActionSchema = Type.Object(
  {
    remediation: Type.String({ minLength: 1 }),
    params: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
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
    limits: Type.Optional(Type.Object({ global: Type.Optional(LimitSchema) }, { additionalProperties: false })),
    rules: Type.Array(RuleSchema),
  },
  { additionalProperties: false },
);
type MatrixFile = Static<typeof MatrixSchema>;
type ActionFile = Static<typeof ActionSchema>;

const DEFAULT_APPROVAL_TIMEOUT = '30m';
const DEFAULT_COOLDOWN = '10m';

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
    const compile = (phase: 'firing' | 'resolved', list: ActionFile[] | undefined): Action[] =>
      (list ?? []).map((a, ai) => {
        const path = ['rules', ri, phase === 'firing' ? 'actions' : 'onResolved', ai];
        const remediation = catalogue.get(a.remediation);
        if (!remediation) {
          throw at([...path, 'remediation'], `unknown remediation "${a.remediation}" (known: ${[...catalogue.keys()].sort().join(', ')})`);
        }
        let renderParams;
        try {
          renderParams = compileParams(a.params ?? {});
        } catch (err) {
          throw at([...path, 'params'], (err as Error).message);
        }
        checkConstantParams(remediation, a.params ?? {}, (key, message) => at([...path, 'params', key], message));
        return {
          rule: r.name,
          key: `${phase}:${ai}`,
          phase,
          remediation,
          renderParams,
          approval: a.approval ?? 'auto',
          cooldownMs: a.cooldown !== undefined ? ms(a.cooldown) : defaults.cooldownMs,
          limit: limit(a.limit),
          dryRun: a.dryRun ?? false,
          approvalTimeoutMs: a.approvalTimeout !== undefined ? ms(a.approvalTimeout) : defaults.approvalTimeoutMs,
        };
      });
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
  return { path: file, rules, globalLimit: limit(file_.limits?.global) };
}

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
