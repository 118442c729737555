import { Type } from '@sinclair/typebox';
import { RUN_STATUSES } from '../store/types.js';

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
const Obj = Type.Object({}, { additionalProperties: true });

export const RunStatus = Type.Union(RUN_STATUSES.map((s) => Type.Literal(s)));

export const RunEvent = Type.Object({
  at: Type.String(),
  type: Type.String(),
  detail: Obj,
});

export const Run = Type.Object({
  id: Type.String({ format: 'uuid' }),
  rule: Type.String(),
  action: Type.String(),
  phase: Type.String(),
  remediation: Type.String(),
  target: Nullable(Type.String()),
  params: Obj,
  status: RunStatus,
  reason: Nullable(Type.String()),
  alert: Type.Object({
    fingerprint: Type.String(),
    status: Type.String(),
    startsAt: Type.String(),
    endsAt: Type.Optional(Type.String()),
    generatorURL: Type.Optional(Type.String()),
    labels: Type.Record(Type.String(), Type.String()),
    annotations: Type.Record(Type.String(), Type.String()),
  }),
  approval: Type.Object({
    required: Type.Boolean(),
    expiresAt: Nullable(Type.String()),
    decidedBy: Nullable(Type.String()),
    decidedAt: Nullable(Type.String()),
    comment: Nullable(Type.String()),
  }),
  dryRun: Type.Boolean(),
  gates: Obj,
  attempts: Type.Integer(),
  plan: Nullable(Type.String()),
  result: Type.Union([Obj, Type.Null()]),
  error: Nullable(Type.String()),
  createdAt: Type.String(),
  updatedAt: Type.String(),
  events: Type.Optional(Type.Array(RunEvent)),
});

export const RunList = Type.Object({
  runs: Type.Array(Run),
  nextCursor: Nullable(Type.String()),
});

export const RunListQuery = Type.Object(
  {
    status: Type.Optional(RunStatus),
    rule: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    remediation: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    limit: Type.Optional(Type.String({ pattern: '^([1-9]|[1-9][0-9]|[1-4][0-9][0-9]|500)$', description: '1 to 500, default 50' })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,19}$' })),
  },
  { additionalProperties: false },
);

// Any string: an id that is not a run's (not even a UUID) is simply not found.
export const RunIdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
export const ApproveBody = Type.Object({ comment: Type.Optional(Type.String({ maxLength: 2000 })) }, { additionalProperties: false });
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
export const PauseBody = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 2000 })) }, { additionalProperties: false });
