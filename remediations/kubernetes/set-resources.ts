import type { V1Container } from '@kubernetes/client-node';
import { Type, type Static } from '@sinclair/typebox';
import { defineRemediation, RemediationError, type RemediationResult } from '../types.js';
import { DnsLabel, DnsSubdomain } from '../validation.js';
import { checkParams, describeRef, FIELD_MANAGER, kubeClients, STRATEGIC_MERGE_PATCH, retryOnConflict } from './client.js';

/** A non-negative Kubernetes resource quantity (`500m`, `2`, `4Gi`, `1e3`), as apimachinery's parser accepts it. */
export const QUANTITY_PATTERN = '^(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$';
const Quantity = Type.String({ minLength: 1, maxLength: 32, pattern: QUANTITY_PATTERN });
const ResourceList = Type.Object(
  { cpu: Type.Optional(Quantity), memory: Type.Optional(Quantity) },
  { additionalProperties: false, minProperties: 1 },
);

const params = Type.Object(
  {
    namespace: DnsLabel,
    deployment: DnsSubdomain,
    container: DnsLabel,
    limits: Type.Optional(ResourceList),
    requests: Type.Optional(ResourceList),
  },
  { additionalProperties: false },
);
type Params = Static<typeof params>;
type Resources = { limits: Record<string, string>; requests: Record<string, string> };

const SCALE: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** The value of a quantity, so `4096Mi` equals `4Gi` and `0.5` equals `500m` (the API server stores the canonical form). */
export function quantityValue(q: string): number {
  const m = /^([0-9.]+)(?:([eE][+-]?[0-9]+)|([a-zA-Z]*))$/.exec(q);
  const scale = m?.[2] !== undefined ? 10 ** Number(m[2].slice(1)) : SCALE[m?.[3] ?? 'invalid'];
  if (!m || scale === undefined) return NaN;
  return Number(m[1]) * scale;
}

const sameQuantity = (a: string | undefined, b: string) =>
  a !== undefined && Math.abs(quantityValue(a) - quantityValue(b)) <= 1e-9 * Math.max(1, quantityValue(b));

/** Cross-field rules a schema cannot word well; `plan` runs them too, so they fail before anything runs. */
function checkChange(p: Params): void {
  if (p.limits === undefined && p.requests === undefined)
    throw new RemediationError('invalid_params', 'at least one of `limits` or `requests` is required');
  assertRequestsWithinLimits({ limits: { ...p.limits }, requests: { ...p.requests } }, 'params');
}

function assertRequestsWithinLimits(r: Resources, where: string): void {
  for (const [name, request] of Object.entries(r.requests)) {
    const limit = r.limits[name];
    if (limit !== undefined && quantityValue(request) > quantityValue(limit)) {
      throw new RemediationError('invalid_params', `${where}: ${name} request ${request} would exceed its limit ${limit}`);
    }
  }
}

const ref = (p: Params) => ({ kind: 'Deployment', namespace: p.namespace, name: p.deployment });

const describeValues = (p: Params) =>
  (['limits', 'requests'] as const)
    .flatMap((kind) => Object.entries(p[kind] ?? {}).map(([name, value]) => `${kind}.${name}=${value}`))
    .join(', ');

export default defineRemediation({
  name: 'kubernetes.set-resources',
  summary: "Sets one container's CPU/memory requests and limits in a Deployment, as `kubectl set resources` does",
  runbookStep:
    'Memory Issues: increase memory limits (kubectl set resources deployment conduit-api -n conduit --limits=memory=4Gi --requests=memory=2Gi)',
  params,
  requires: 'kubernetes',
  target: (p) => `kubernetes/${p.namespace}/deployment/${p.deployment}`,
  plan: (p) => {
    checkChange(p);
    return (
      `Set ${describeValues(p)} on container "${p.container}" of ${describeRef(ref(p))} (a rolling update of its pods): ` +
      `PATCH /apis/apps/v1/namespaces/${p.namespace}/deployments/${p.deployment} (application/strategic-merge-patch+json) ` +
      'with only the values that differ; skipped when none differ'
    );
  },
  execute: async (p, ctx): Promise<RemediationResult> => {
    checkParams(params, p);
    checkChange(p);
    const kube = await kubeClients(ctx);
    const target = ref(p);
    const names = { name: p.deployment, namespace: p.namespace };
    return retryOnConflict(ctx, async () => {
      const deployment = await kube.request(target, (o) => kube.apps.readNamespacedDeployment(names, o));
      const containers: V1Container[] = deployment.spec?.template?.spec?.containers ?? [];
      const container = containers.find((c) => c.name === p.container);
      if (!container) {
        throw new RemediationError(
          'not_found',
          `${describeRef(target)} has no container "${p.container}" (it has: ${containers.map((c) => c.name).join(', ') || 'none'})`,
        );
      }
      const from: Resources = { limits: { ...container.resources?.limits }, requests: { ...container.resources?.requests } };
      const to: Resources = { limits: { ...from.limits }, requests: { ...from.requests } };
      const changes: Resources = { limits: {}, requests: {} };
      // In words, for the summary: `limits.memory=4Gi (was 1Gi)`, and the values already right.
      const set: string[] = [];
      const kept: string[] = [];
      for (const kind of ['limits', 'requests'] as const) {
        for (const [name, value] of Object.entries(p[kind] ?? {})) {
          if (value === undefined) continue;
          const was = from[kind][name];
          if (sameQuantity(was, value)) {
            kept.push(`${kind}.${name}=${was}`);
            continue;
          }
          changes[kind][name] = value;
          to[kind][name] = value;
          set.push(`${kind}.${name}=${value} (was ${was ?? 'unset'})`);
        }
      }
      const where = `"${p.container}" of deployment ${p.namespace}/${p.deployment}`;
      assertRequestsWithinLimits(to, `container "${p.container}" of ${describeRef(target)}`);
      const resources = Object.fromEntries(Object.entries(changes).filter(([, v]) => Object.keys(v).length > 0));
      if (Object.keys(resources).length === 0) {
        const summary = `Container ${where} already had ${kept.join(', ')}; nothing changed`;
        return { container: p.container, from, to, changed: false, summary };
      }
      // Same shape as kubectl's two-way strategic merge patch: the list order directive, then only this container.
      const body = {
        spec: {
          template: {
            spec: {
              '$setElementOrder/containers': containers.map((c) => ({ name: c.name })),
              containers: [{ name: p.container, resources }],
            },
          },
        },
      };
      await kube.request(
        target,
        (o) => kube.apps.patchNamespacedDeployment({ ...names, body, fieldManager: FIELD_MANAGER }, o),
        STRATEGIC_MERGE_PATCH,
      );
      ctx.log.info({ runId: ctx.runId, deployment: describeRef(target), container: p.container, resources }, 'set container resources');
      const unchanged = kept.length > 0 ? `, keeping ${kept.join(', ')}` : '';
      return { container: p.container, from, to, changed: true, summary: `Set ${set.join(', ')} on container ${where}${unchanged}` };
    });
  },
});
