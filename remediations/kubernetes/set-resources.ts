import type { V1Container } from '@kubernetes/client-node';
import { Type, type Static } from '@sinclair/typebox';
import { defineRemediation, RemediationError, type RemediationResult } from '../types.js';
import { DnsLabel, DnsSubdomain } from '../validation.js';
import { checkParams, describeRef, FIELD_MANAGER, kubeClients, STRATEGIC_MERGE_PATCH, retryOnConflict } from './client.js';

/** A non-negative Kubernetes resource quantity (`500m`, `2`, `4Gi`, `1e3`), as apimachinery's parser accepts it. */
export const QUANTITY_PATTERN = '^(?:[0-9]+(?:\\.[0-9]*)?|\\.[0-9]+)(?:[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$';
const Quantity = Type.String({ minLength: 1, maxLength: 32, pattern: QUANTITY_PATTERN });
/** A quantity, or null: the resource is unset (to set: removed, sent as a strategic merge patch null, which deletes the key). */
const QuantityOrUnset = Type.Union([Quantity, Type.Null()]);
const ResourceList = Type.Object(
  { cpu: Type.Optional(QuantityOrUnset), memory: Type.Optional(QuantityOrUnset) },
  { additionalProperties: false, minProperties: 1 },
);

const params = Type.Object(
  {
    namespace: DnsLabel,
    deployment: DnsSubdomain,
    container: DnsLabel,
    limits: Type.Optional(ResourceList),
    requests: Type.Optional(ResourceList),
    /**
     * Set by a revert: act only if the container still has these limits (null: still unset), as the
     * reverted run left them. Each one names a resource that `limits` sets.
     */
    ifLimits: Type.Optional(ResourceList),
    /** The same for `requests`. */
    ifRequests: Type.Optional(ResourceList),
  },
  { additionalProperties: false },
);
type Params = Static<typeof params>;
type Kind = 'limits' | 'requests';
type Resources = Record<Kind, Record<string, string>>;
type Values = Partial<Record<'cpu' | 'memory', string | null>>;

const KINDS = ['limits', 'requests'] as const;
const RESOURCE_NAMES = ['cpu', 'memory'] as const;
const PRECONDITION = { limits: 'ifLimits', requests: 'ifRequests' } as const;

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

/** What a precondition says about one resource: held when it is unset as expected, or has that amount. */
const holds = (expected: string | null, current: string | undefined) =>
  expected === null ? current === undefined : sameQuantity(current, expected);

/** The quantities of a list, without the resources it unsets. */
const quantities = (v: Values | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(v ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string'));

/** Cross-field rules a schema cannot word well; `plan` runs them too, so they fail before anything runs. */
function checkChange(p: Params): void {
  if (p.limits === undefined && p.requests === undefined)
    throw new RemediationError('invalid_params', 'at least one of `limits` or `requests` is required');
  for (const kind of KINDS) {
    for (const [name, expected] of Object.entries(p[PRECONDITION[kind]] ?? {})) {
      if (expected === undefined) continue;
      const value = p[kind]?.[name as keyof Values];
      if (value === undefined) {
        throw new RemediationError(
          'invalid_params',
          `\`${PRECONDITION[kind]}.${name}\` is given but \`${kind}.${name}\` is not: a precondition guards only a value this run sets`,
        );
      }
      if (value === null ? expected === null : holds(value, expected ?? undefined)) {
        throw new RemediationError(
          'invalid_params',
          `\`${PRECONDITION[kind]}.${name}\` is what \`${kind}.${name}\` sets: the run could only ever find it already done`,
        );
      }
    }
  }
  assertRequestsWithinLimits({ limits: quantities(p.limits), requests: quantities(p.requests) }, 'params');
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

/** `limits.memory=4Gi, requests.cpu unset`: what a list of values sets (or expects). */
const describeValues = (lists: Partial<Record<Kind, Values>>) =>
  KINDS.flatMap((kind) =>
    Object.entries(lists[kind] ?? {}).map(([name, value]) => (value === null ? `${kind}.${name} unset` : `${kind}.${name}=${value}`)),
  ).join(', ');

/** The quantities a recorded `from` or `to` holds (a run's result is stored as JSON: read it defensively). */
function recorded(v: unknown): Resources {
  const list = (kind: Kind): Record<string, string> => {
    const raw = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[kind] : undefined;
    return typeof raw === 'object' && raw !== null
      ? Object.fromEntries(Object.entries(raw).filter((e): e is [string, string] => typeof e[1] === 'string'))
      : {};
  };
  return { limits: list('limits'), requests: list('requests') };
}

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
    const expected = describeValues({ limits: p.ifLimits, requests: p.ifRequests });
    return (
      `Set ${describeValues(p)} on container "${p.container}" of ${describeRef(ref(p))} (a rolling update of its pods): ` +
      `PATCH /apis/apps/v1/namespaces/${p.namespace}/deployments/${p.deployment} (application/strategic-merge-patch+json) ` +
      'with only the values that differ (null for one to unset); skipped when none differ' +
      (expected ? `; refused (changed_since) unless it still has ${expected}` : '')
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
      const where = `"${p.container}" of deployment ${p.namespace}/${p.deployment}`;
      const moved = KINDS.flatMap((kind) =>
        Object.entries(p[PRECONDITION[kind]] ?? {})
          .filter(([name, expected]) => expected !== undefined && !holds(expected, from[kind][name]))
          .map(([name, expected]) => {
            const now = from[kind][name];
            return `${kind}.${name}${now === undefined ? ' unset' : `=${now}`} (the reverted run left ${expected === null ? 'it unset' : expected})`;
          }),
      );
      if (moved.length > 0) {
        throw new RemediationError('changed_since', `container ${where} has ${moved.join(', ')} now; leaving it as it is`, {
          detail: { container: p.container, from, expected: { limits: p.ifLimits ?? {}, requests: p.ifRequests ?? {} } },
        });
      }
      const to: Resources = { limits: { ...from.limits }, requests: { ...from.requests } };
      const changes: Record<Kind, Record<string, string | null>> = { limits: {}, requests: {} };
      // In words, for the summary: `limits.memory=4Gi (was 1Gi)`, and the values already right.
      const set: string[] = [];
      const kept: string[] = [];
      for (const kind of KINDS) {
        for (const [name, value] of Object.entries(p[kind] ?? {})) {
          if (value === undefined) continue;
          const was = from[kind][name];
          if (holds(value, was)) {
            kept.push(value === null ? `${kind}.${name} unset` : `${kind}.${name}=${was}`);
            continue;
          }
          // A strategic merge patch null deletes the key: the resource is unset again.
          changes[kind][name] = value;
          if (value === null) delete to[kind][name];
          else to[kind][name] = value;
          set.push(value === null ? `${kind}.${name} unset (was ${was})` : `${kind}.${name}=${value} (was ${was ?? 'unset'})`);
        }
      }
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
  // Back to the recorded values of the resources this run changed (null for one it set that was unset
  // before), only while the container still has the values this run set.
  revert: (p, result) => {
    if (result['changed'] !== true) return null;
    const from = recorded(result['from']);
    const to = recorded(result['to']);
    const restore: Partial<Record<Kind, Values>> = {};
    const expect: Partial<Record<Kind, Values>> = {};
    for (const kind of KINDS) {
      for (const name of RESOURCE_NAMES) {
        const was = from[kind][name];
        const now = to[kind][name];
        if (was === now || (was !== undefined && sameQuantity(now, was))) continue;
        (restore[kind] ??= {})[name] = was ?? null;
        (expect[kind] ??= {})[name] = now ?? null;
      }
    }
    if (!restore.limits && !restore.requests) return null;
    return {
      remediation: 'kubernetes.set-resources',
      params: {
        namespace: p.namespace,
        deployment: p.deployment,
        container: p.container,
        ...(restore.limits ? { limits: restore.limits, ifLimits: expect.limits } : {}),
        ...(restore.requests ? { requests: restore.requests, ifRequests: expect.requests } : {}),
      },
    };
  },
});
