/**
 * The one shape of a run. TypeScript types come from these schemas (`Static<>`), the API answers
 * with them, and a test checks the store's row mapping against them.
 */
import { Type, type Static } from '@sinclair/typebox';
import { RUN_STATUSES, type RunStatus as StatusName } from './statuses.js';

export { isTerminal, RUN_STATUSES, TERMINAL_STATUSES } from './statuses.js';
export type RunStatus = StatusName;

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Obj = Type.Object({}, { additionalProperties: true });
const Phase = Type.Union([Type.Literal('firing'), Type.Literal('resolved'), Type.Literal('revert')]);
const AlertPhase = Type.Union([Type.Literal('firing'), Type.Literal('resolved')]);
export const When = Type.Union([
  Type.Literal('succeeded'),
  Type.Literal('failed'),
  Type.Literal('finished'),
  Type.Literal('verified'),
  Type.Literal('unverified'),
]);

/** The run a dependent waits for, named by its action within the same rule and alert episode. */
export const RunAfter = Type.Object({
  /** The predecessor's action key, e.g. `firing:0`. */
  action: Type.String(),
  /** As the matrix names it: `disable`, `firing.disable`. */
  ref: Type.String(),
  when: When,
  /** The predecessor run's id, when it exists and was read with the run. */
  runId: Nullable(Type.String()),
});
export type RunAfter = Static<typeof RunAfter>;

export const RunStatus = Type.Union(RUN_STATUSES.map((s) => Type.Literal(s)));

export const RunEvent = Type.Object({
  at: Type.String(),
  type: Type.String(),
  detail: Obj,
});
export type RunEvent = Static<typeof RunEvent>;

/** The alert a run was created for, as Alertmanager sent it. */
export const AlertSnapshot = Type.Object({
  fingerprint: Type.String(),
  status: AlertPhase,
  startsAt: Type.String(),
  endsAt: Type.Optional(Type.String()),
  generatorURL: Type.Optional(Type.String()),
  labels: Type.Record(Type.String(), Type.String()),
  annotations: Type.Record(Type.String(), Type.String()),
});
export type AlertSnapshot = Static<typeof AlertSnapshot>;

/** The action's gate settings, kept with the run so a matrix change does not alter them. */
export const RunGates = Type.Object({
  cooldownMs: Type.Integer(),
  limit: Type.Union([Type.Object({ max: Type.Integer(), perMs: Type.Integer() }), Type.Null()]),
  approvalTimeoutMs: Type.Integer(),
  /** Whether Alertmanager is asked that the alert still fires before executing (absent: yes). */
  alertFiring: Type.Optional(Type.Boolean()),
  /** When that check cannot be made in time: `skip` (absent) or `proceed`. */
  onCheckError: Type.Optional(Type.Union([Type.Literal('proceed'), Type.Literal('skip')])),
  /** `check.query`, rendered: asked of Prometheus right before executing. */
  checkQuery: Type.Optional(Type.String()),
  /** `verify`, rendered: after success, the query that proves the remediation helped. */
  verify: Type.Optional(Type.Object({ query: Type.String(), withinMs: Type.Integer(), everyMs: Type.Integer() })),
  onUnverified: Type.Optional(Type.Union([Type.Literal('revert'), Type.Literal('escalate'), Type.Literal('none')])),
  /** `revertAfter`: undone automatically this long after success, verified or not. */
  revertAfterMs: Type.Optional(Type.Integer()),
  /** Whether its revert needs approval (`revertApproval`; absent: as the run itself). */
  revertApproval: Type.Optional(Type.Union([Type.Literal('auto'), Type.Literal('required')])),
  /** `silence`: the alert is silenced in Alertmanager this long from when the run starts executing (absent: not silenced). */
  silenceMs: Type.Optional(Type.Integer()),
  /** `allow`: per param, the anchored pattern its value must match (absent: no scope); checked again right before executing. */
  allow: Type.Optional(Type.Record(Type.String(), Type.String())),
  /** The rule's severity, which the global budget's `reserve` counts by (absent: the lowest). */
  severity: Type.Optional(Type.String()),
  /** false: the run neither counts against the global budget nor is stopped by it (a notice); absent: it counts. */
  globalBudget: Type.Optional(Type.Literal(false)),
});
export type RunGates = Static<typeof RunGates>;

/** Whether the run's alert fires right now, as Alertmanager answered when the run was read. */
export const AlertFiring = Type.Object({
  /** null: no Alertmanager answered. */
  firing: Type.Union([Type.Boolean(), Type.Null()]),
  state: Nullable(Type.String()),
  alertmanager: Nullable(Type.String()),
  checkedAt: Type.String(),
  error: Type.Optional(Type.String()),
});
export type AlertFiring = Static<typeof AlertFiring>;

export const Run = Type.Object({
  id: Type.String({ format: 'uuid' }),
  rule: Type.String(),
  action: Type.String(),
  phase: Phase,
  remediation: Type.String(),
  target: Nullable(Type.String()),
  params: Obj,
  status: RunStatus,
  reason: Nullable(Type.String()),
  alert: AlertSnapshot,
  approval: Type.Object({
    required: Type.Boolean(),
    expiresAt: Nullable(Type.String()),
    decidedBy: Nullable(Type.String()),
    decidedAt: Nullable(Type.String()),
    comment: Nullable(Type.String()),
  }),
  dryRun: Type.Boolean(),
  gates: RunGates,
  attempts: Type.Integer(),
  /** While `running`: until when the worker that claimed it holds it. */
  leaseUntil: Nullable(Type.String()),
  after: Type.Union([RunAfter, Type.Null()]),
  /** After success with `verify`: `pending`, then `verified` or `unverified` (null: nothing to verify). */
  verification: Type.Union([Type.Literal('pending'), Type.Literal('verified'), Type.Literal('unverified'), Type.Null()]),
  /** Until when a pending verification is evaluated. */
  verifyUntil: Nullable(Type.String()),
  /** A revert run: the run it undoes. */
  revertOf: Nullable(Type.String()),
  /** When `revertAfter` undoes this run (null: not scheduled, or done). */
  revertDue: Nullable(Type.String()),
  /** The revert run undoing this one (present when read on its own or listed). */
  revertedBy: Type.Optional(Nullable(Type.String())),
  /** The runs waiting for this one (present when read on its own or listed). */
  dependents: Type.Optional(Type.Array(Type.String())),
  plan: Nullable(Type.String()),
  result: Type.Union([Obj, Type.Null()]),
  error: Nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  events: Type.Optional(Type.Array(RunEvent)),
  /** On `GET /api/runs/:id` of a firing-phase run, when ALERTMANAGER_URL is set. */
  alertFiring: Type.Optional(AlertFiring),
});
export type Run = Static<typeof Run>;

/** A run about to be stored, with the events that explain its first status. */
export const NewRun = Type.Composite([
  Type.Pick(Run, [
    'id',
    'rule',
    'action',
    'phase',
    'remediation',
    'target',
    'params',
    'status',
    'reason',
    'alert',
    'dryRun',
    'gates',
    'plan',
    'error',
    'after',
    'revertOf',
  ]),
  Type.Object({
    approvalRequired: Type.Boolean(),
    expiresAt: Nullable(Type.String()),
    events: Type.Array(Type.Object({ type: Type.String(), detail: Type.Optional(Obj) })),
  }),
]);
export type NewRun = Static<typeof NewRun>;

/** What a delivery needs of an existing run: who it is and where it stands. */
export const RunRef = Type.Composite([
  Type.Pick(Run, ['id', 'rule', 'action', 'remediation', 'status']),
  Type.Object({ alert: Type.Pick(AlertSnapshot, ['fingerprint', 'startsAt']) }),
]);
export type RunRef = Static<typeof RunRef>;

/** Labels a listed run shows of its alert, and the characters of each value (longer ones end with `…`). */
export const SUMMARY_LABELS = 16;
export const SUMMARY_VALUE_CHARS = 256;

/**
 * The alert of a listed run: who it is and a few of its labels, never its annotations. The whole
 * stored alert is on `GET /api/runs/:id`.
 */
export const AlertSummary = Type.Object({
  fingerprint: Type.String(),
  status: AlertPhase,
  startsAt: Type.String(),
  endsAt: Type.Optional(Type.String()),
  labels: Type.Record(Type.String(), Type.String(), {
    description: `at most ${SUMMARY_LABELS} of the alert's labels: alertname, then by name; a value longer than ${SUMMARY_VALUE_CHARS} characters is cut and ends with …`,
  }),
  /** How many labels the stored alert has (more than `labels` shows when above SUMMARY_LABELS). */
  labelCount: Type.Integer({ minimum: 0 }),
});
export type AlertSummary = Static<typeof AlertSummary>;

/** A run as `GET /api/runs` lists it: every field of a run but its timeline, with the summary of its alert. */
export const RunListItem = Type.Composite([Type.Omit(Run, ['alert', 'events', 'alertFiring']), Type.Object({ alert: AlertSummary })]);
export type RunListItem = Static<typeof RunListItem>;

export const RunList = Type.Object({
  runs: Type.Array(RunListItem),
  nextCursor: Nullable(Type.String()),
});

/** The most runs one page of `GET /api/runs` holds. */
export const MAX_LIST_LIMIT = 200;

/** `since` / `until`: an RFC 3339 time, or a duration back from now (`1h`, `30m`, `2d`) by PostgreSQL's clock. */
const TimeBound = (what: string) =>
  Type.String({ minLength: 1, maxLength: 64, description: `runs ${what}: an RFC 3339 time or a duration back from now, e.g. 1h` });

export const RunListQuery = Type.Object(
  {
    status: Type.Optional(RunStatus),
    rule: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    remediation: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    limit: Type.Optional(
      Type.String({ pattern: '^([1-9]|[1-9][0-9]|1[0-9][0-9]|200)$', description: `1 to ${MAX_LIST_LIMIT}, default 50` }),
    ),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,19}$' })),
    alertname: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: "the alert's labels.alertname" })),
    fingerprint: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    target: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    since: Type.Optional(TimeBound('created at or after this')),
    until: Type.Optional(TimeBound('created before this')),
  },
  { additionalProperties: false },
);

// Any string: an id that is not a run's (not even a UUID) is simply not found.
export const RunIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
export const ApproveBody = Type.Object({ comment: Type.Optional(Type.String({ maxLength: 2000 })) }, { additionalProperties: false });
export const RevertBody = Type.Object({}, { additionalProperties: false });
export const RejectBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 2000 })) }, { additionalProperties: false });

export const ErrorResponse = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String(),
  error: Type.String(),
  message: Type.String(),
});

export const Control = Type.Object({
  paused: Type.Boolean(),
  dryRun: Type.Boolean(),
  reason: Nullable(Type.String()),
  changedBy: Nullable(Type.String()),
  changedAt: Nullable(Type.String()),
});
/** The answer of `POST /-/reload`: the matrix now in use. */
export const Reloaded = Type.Object({
  path: Type.String(),
  rules: Type.Integer(),
  actions: Type.Integer(),
  loadedAt: Type.String({ format: 'date-time' }),
});
export const PauseBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 2000 })) }, { additionalProperties: false });
/** The body of a POST that takes none: absent, or `{}`. */
export const EmptyBody = Type.Object({}, { additionalProperties: false });
