import { Type, type Static } from '@sinclair/typebox';

// PostgreSQL text cannot hold U+0000: refused here, with a 400, rather than failing a whole batch later.
const NoNul = (opts: { maxLength?: number } = {}) => Type.String({ pattern: '^[^\\u0000]*$', ...opts });
const Labels = Type.Record(Type.String(), NoNul());

/** One alert of an Alertmanager webhook message (version 4). Fields added by newer versions are kept. */
export const WebhookAlert = Type.Object(
  {
    status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
    labels: Labels,
    annotations: Labels,
    startsAt: Type.String({ minLength: 1, maxLength: 64, pattern: '^\\d{4}-\\d{2}-\\d{2}T' }),
    endsAt: NoNul({ maxLength: 64 }),
    generatorURL: Type.Optional(NoNul()),
    fingerprint: Type.String({ minLength: 1, maxLength: 64, pattern: '^[0-9a-fA-F]+$' }),
  },
  { additionalProperties: true },
);

/** The Alertmanager webhook payload, version 4 (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config). */
export const WebhookMessage = Type.Object(
  {
    version: Type.Literal('4'),
    groupKey: Type.String(),
    truncatedAlerts: Type.Optional(Type.Integer({ minimum: 0 })),
    status: Type.Union([Type.Literal('firing'), Type.Literal('resolved')]),
    receiver: Type.String(),
    groupLabels: Labels,
    commonLabels: Labels,
    commonAnnotations: Labels,
    externalURL: Type.String(),
    alerts: Type.Array(WebhookAlert),
  },
  { additionalProperties: true },
);
export type WebhookMessage = Static<typeof WebhookMessage>;
export type WebhookAlert = Static<typeof WebhookAlert>;

export const WebhookRun = Type.Object({
  id: Type.String(),
  rule: Type.String(),
  remediation: Type.String(),
  status: Type.String(),
  duplicate: Type.Boolean(),
});

export const WebhookResponse = Type.Object({
  received: Type.Integer(),
  runs: Type.Array(WebhookRun),
});
