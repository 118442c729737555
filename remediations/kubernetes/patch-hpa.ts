import { Type, type Static } from '@sinclair/typebox';
import { defineRemediation, RemediationError, type RemediationResult } from '../types.js';
import { DnsLabel, DnsSubdomain } from '../validation.js';
import { checkParams, describeRef, FIELD_MANAGER, kubeClients, MERGE_PATCH, retryOnConflict } from './client.js';

const Replicas = Type.Integer({ minimum: 1, maximum: 10_000 });

const params = Type.Object(
  {
    namespace: DnsLabel,
    name: DnsSubdomain,
    minReplicas: Type.Optional(Replicas),
    maxReplicas: Type.Optional(Replicas),
    /** Set by a revert: act only if the autoscaler still has these bounds, as the reverted run left them. */
    ifMinReplicas: Type.Optional(Replicas),
    ifMaxReplicas: Type.Optional(Replicas),
  },
  { additionalProperties: false },
);
type Params = Static<typeof params>;

/** Cross-field rules a schema cannot word well; `plan` runs them too, so they fail before anything runs. */
function checkChange(p: Params): void {
  if (p.minReplicas === undefined && p.maxReplicas === undefined) {
    throw new RemediationError('invalid_params', 'at least one of `minReplicas` or `maxReplicas` is required');
  }
  if (p.minReplicas !== undefined && p.maxReplicas !== undefined && p.minReplicas > p.maxReplicas) {
    throw new RemediationError('invalid_params', `minReplicas (${p.minReplicas}) is greater than maxReplicas (${p.maxReplicas})`);
  }
}

const ref = (p: Params) => ({ kind: 'HorizontalPodAutoscaler', namespace: p.namespace, name: p.name });

const describeChange = (p: Params) =>
  [p.minReplicas === undefined ? '' : `minReplicas=${p.minReplicas}`, p.maxReplicas === undefined ? '' : `maxReplicas=${p.maxReplicas}`]
    .filter(Boolean)
    .join(', ');

export default defineRemediation({
  name: 'kubernetes.patch-hpa',
  summary: "Sets a HorizontalPodAutoscaler's minReplicas and/or maxReplicas",
  runbookStep: `Scale Up if Needed: update HPA (kubectl patch hpa conduit-api-hpa -n conduit -p '{"spec":{"minReplicas":5,"maxReplicas":30}}')`,
  params,
  requires: 'kubernetes',
  target: (p) => `kubernetes/${p.namespace}/hpa/${p.name}`,
  plan: (p) => {
    checkChange(p);
    return (
      `Set ${describeChange(p)} on ${describeRef(ref(p))}: ` +
      `PATCH /apis/autoscaling/v2/namespaces/${p.namespace}/horizontalpodautoscalers/${p.name} (application/merge-patch+json), ` +
      'skipped when already set; refused when the result would have minReplicas above maxReplicas' +
      (p.ifMinReplicas !== undefined || p.ifMaxReplicas !== undefined
        ? `; refused (changed_since) unless it still has${p.ifMinReplicas !== undefined ? ` minReplicas ${p.ifMinReplicas}` : ''}${p.ifMaxReplicas !== undefined ? ` maxReplicas ${p.ifMaxReplicas}` : ''}`
        : '')
    );
  },
  execute: async (p, ctx): Promise<RemediationResult> => {
    checkParams(params, p);
    checkChange(p);
    const kube = await kubeClients(ctx);
    const target = ref(p);
    const names = { name: p.name, namespace: p.namespace };
    return retryOnConflict(ctx, async () => {
      const hpa = await kube.request(target, (o) => kube.autoscaling.readNamespacedHorizontalPodAutoscaler(names, o));
      // minReplicas defaults to 1 when unset, as the HPA controller reads it.
      const from = { minReplicas: hpa.spec?.minReplicas ?? 1, maxReplicas: hpa.spec?.maxReplicas ?? 1 };
      if (
        (p.ifMinReplicas !== undefined && from.minReplicas !== p.ifMinReplicas) ||
        (p.ifMaxReplicas !== undefined && from.maxReplicas !== p.ifMaxReplicas)
      ) {
        throw new RemediationError(
          'changed_since',
          `${describeRef(target)} has minReplicas ${from.minReplicas} and maxReplicas ${from.maxReplicas} now, not as the reverted run left it; leaving it as it is`,
          { detail: { from, expected: { minReplicas: p.ifMinReplicas, maxReplicas: p.ifMaxReplicas } } },
        );
      }
      const to = { minReplicas: p.minReplicas ?? from.minReplicas, maxReplicas: p.maxReplicas ?? from.maxReplicas };
      if (to.minReplicas > to.maxReplicas) {
        throw new RemediationError(
          'invalid_params',
          `${describeRef(target)} would have minReplicas ${to.minReplicas} above maxReplicas ${to.maxReplicas}`,
          { detail: { from, to } },
        );
      }
      if (to.minReplicas === from.minReplicas && to.maxReplicas === from.maxReplicas) {
        const summary = `${describeRef(target)} already had minReplicas ${from.minReplicas} and maxReplicas ${from.maxReplicas}; nothing changed`;
        return { from, to, changed: false, summary };
      }
      const spec: Record<string, number> = {};
      const changes: string[] = [];
      for (const field of ['minReplicas', 'maxReplicas'] as const) {
        if (to[field] === from[field]) continue;
        spec[field] = to[field];
        changes.push(`${field} from ${from[field]} to ${to[field]}`);
      }
      await kube.request(
        target,
        (o) => kube.autoscaling.patchNamespacedHorizontalPodAutoscaler({ ...names, body: { spec }, fieldManager: FIELD_MANAGER }, o),
        MERGE_PATCH,
      );
      ctx.log.info({ runId: ctx.runId, hpa: describeRef(target), from, to }, 'patched horizontal pod autoscaler');
      return { from, to, changed: true, summary: `Changed ${changes.join(' and ')} of ${describeRef(target)}` };
    });
  },
  // Back to the recorded bounds, only while the autoscaler still has the bounds this run set.
  revert: (p, result) => {
    if (result['changed'] !== true) return null;
    const from = result['from'] as { minReplicas: number; maxReplicas: number };
    const to = result['to'] as { minReplicas: number; maxReplicas: number };
    return {
      remediation: 'kubernetes.patch-hpa',
      params: {
        namespace: p.namespace,
        name: p.name,
        minReplicas: from.minReplicas,
        maxReplicas: from.maxReplicas,
        ifMinReplicas: to.minReplicas,
        ifMaxReplicas: to.maxReplicas,
      },
    };
  },
});
