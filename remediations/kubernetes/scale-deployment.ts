import { Type, type Static } from '@sinclair/typebox';
import { count } from '../summary.js';
import { defineRemediation, RemediationError, type RemediationResult } from '../types.js';
import { DnsLabel, DnsSubdomain } from '../validation.js';
import { checkParams, describeRef, FIELD_MANAGER, kubeClients, MERGE_PATCH, retryOnConflict } from './client.js';

const params = Type.Object(
  {
    namespace: DnsLabel,
    deployment: DnsSubdomain,
    /** Absolute replica count; exactly one of `replicas` and `by`. */
    replicas: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
    /** Relative change (`+2`, `-1`); exactly one of `replicas` and `by`. */
    by: Type.Optional(Type.Integer({ minimum: -10_000, maximum: 10_000 })),
    /** Upper bound whatever the request: an alert storm must not scale a deployment without limit. */
    max: Type.Integer({ minimum: 1, maximum: 10_000 }),
    /** Set by a revert: act only if the deployment still has this many replicas, as the reverted run left it. */
    ifReplicas: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000 })),
  },
  { additionalProperties: false },
);
type Params = Static<typeof params>;
type Change = { replicas: number; by?: undefined } | { by: number; replicas?: undefined };

/**
 * "Exactly one of" is checked here rather than with a schema union, so that the matrix loader still
 * sees each param by name and the operator reads this message instead of "expected union value".
 * `plan` calls it too, so a bad combination fails when the params are prepared, before anything runs.
 */
function change(p: Params): Change {
  if (p.replicas !== undefined && p.by === undefined) return { replicas: p.replicas };
  if (p.by !== undefined && p.replicas === undefined) return { by: p.by };
  throw new RemediationError('invalid_params', 'exactly one of `replicas` (absolute) or `by` (relative) is required');
}

/**
 * The replica count to ask for. A relative change never moves the other way: `by: +2` on a
 * deployment already above `max` leaves it alone rather than scaling it down to `max`.
 */
export function desiredReplicas(c: Change, max: number, current: number): number {
  if (c.replicas !== undefined) return Math.min(c.replicas, max);
  const wanted = Math.min(Math.max(current + c.by, 0), max);
  return (c.by >= 0 && wanted < current) || (c.by < 0 && wanted > current) ? current : wanted;
}

const ref = (p: Params) => ({ kind: 'Deployment', namespace: p.namespace, name: p.deployment });

/** What was done, in words: the counts, and why the count differs from the one asked for (`max`, or a relative change kept one way). */
function scaleSummary(p: Params, c: Change, from: number, to: number): string {
  const deployment = `deployment ${p.namespace}/${p.deployment}`;
  const asked = c.replicas !== undefined ? c.replicas : Math.max(from + c.by, 0);
  if (to !== from) {
    const clamped = asked > to ? `, clamped to max ${p.max} (asked for ${asked})` : '';
    return `Scaled ${deployment} from ${from} to ${count(to, 'replica')}${clamped}`;
  }
  // Unchanged although more was asked for: the deployment was already at or above `max`.
  const why = asked > from ? `, ${from === p.max ? 'the max' : `above max ${p.max}`} (asked for ${asked})` : '';
  return `Deployment ${p.namespace}/${p.deployment} already had ${count(from, 'replica')}${why}; nothing changed`;
}

export default defineRemediation({
  name: 'kubernetes.scale-deployment',
  summary: 'Sets the replica count of a Deployment through its scale subresource, clamped to a maximum',
  runbookStep: 'Scale Up if Needed (kubectl scale deployment conduit-api -n conduit --replicas=N)',
  params,
  requires: 'kubernetes',
  target: (p) => `kubernetes/${p.namespace}/deployment/${p.deployment}`,
  plan: (p) => {
    const c = change(p);
    const what = c.replicas !== undefined ? `to ${Math.min(c.replicas, p.max)} replicas` : `by ${c.by >= 0 ? '+' : ''}${c.by} replicas`;
    return (
      `Scale ${describeRef(ref(p))} ${what} (never above ${p.max}): ` +
      `PATCH /apis/apps/v1/namespaces/${p.namespace}/deployments/${p.deployment}/scale (application/merge-patch+json) {"spec":{"replicas":N}}, ` +
      'skipped when it already has that many' +
      (p.ifReplicas !== undefined ? `; refused (changed_since) unless it still has ${p.ifReplicas}` : '')
    );
  },
  execute: async (p, ctx): Promise<RemediationResult> => {
    checkParams(params, p);
    const c = change(p);
    const kube = await kubeClients(ctx);
    const target = ref(p);
    const names = { name: p.deployment, namespace: p.namespace };
    return retryOnConflict(ctx, async () => {
      const scale = await kube.request(target, (o) => kube.apps.readNamespacedDeploymentScale(names, o));
      const from = scale.spec?.replicas ?? 0;
      if (p.ifReplicas !== undefined && from !== p.ifReplicas) {
        throw new RemediationError(
          'changed_since',
          `deployment ${p.namespace}/${p.deployment} has ${count(from, 'replica')} now, not the ${p.ifReplicas} the reverted run left; leaving it as it is`,
          { detail: { replicas: from, expected: p.ifReplicas } },
        );
      }
      const to = desiredReplicas(c, p.max, from);
      if (to === from) return { from, to, changed: false, summary: scaleSummary(p, c, from, to) };
      await kube.request(
        target,
        (o) => kube.apps.patchNamespacedDeploymentScale({ ...names, body: { spec: { replicas: to } }, fieldManager: FIELD_MANAGER }, o),
        MERGE_PATCH,
      );
      ctx.log.info({ runId: ctx.runId, deployment: describeRef(target), from, to }, 'scaled deployment');
      return { from, to, changed: true, summary: scaleSummary(p, c, from, to) };
    });
  },
  // Back to the recorded count, only while the deployment still has the count this run set.
  revert: (p, result) =>
    result['changed'] === true
      ? {
          remediation: 'kubernetes.scale-deployment',
          params: {
            namespace: p.namespace,
            deployment: p.deployment,
            replicas: result['from'],
            max: Math.max(Number(result['from']), 1),
            ifReplicas: result['to'],
          },
        }
      : null,
});
