import { Type, type Static } from '@sinclair/typebox';
import { defineRemediation, type RemediationResult } from '../types.js';
import { DnsLabel, DnsSubdomain } from '../validation.js';
import { checkParams, describeRef, FIELD_MANAGER, kubeClients, retryOnConflict, rfc3339 } from '../kubernetes/client.js';

const params = Type.Object({ namespace: DnsLabel, certificate: DnsSubdomain }, { additionalProperties: false });
type Params = Static<typeof params>;

const CERTIFICATES = { group: 'cert-manager.io', version: 'v1', plural: 'certificates' } as const;

interface Condition {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

interface Certificate {
  metadata?: { generation?: number; resourceVersion?: string };
  status?: { conditions?: Condition[] };
}

/**
 * cmctl's `apiutil.SetCertificateCondition`: replace the condition of that type in place (keeping
 * its lastTransitionTime when the status does not change), or append it.
 */
export function setCondition(conditions: Condition[], next: Condition): Condition[] {
  const at = conditions.findIndex((c) => c.type === next.type);
  if (at < 0) return [...conditions, next];
  const previous = conditions[at];
  const kept =
    previous?.status === next.status && previous.lastTransitionTime ? { ...next, lastTransitionTime: previous.lastTransitionTime } : next;
  return conditions.map((c, i) => (i === at ? kept : c));
}

const ref = (p: Params) => ({ kind: 'Certificate', namespace: p.namespace, name: p.certificate });

export default defineRemediation({
  name: 'cert-manager.renew-certificate',
  summary: 'Triggers re-issuance of a cert-manager Certificate, as `cmctl renew` does',
  runbookStep: 'Renew Certificates (instead of kubectl delete certificate conduit-tls -n conduit)',
  params,
  requires: 'kubernetes',
  target: (p) => `kubernetes/${p.namespace}/certificate/${p.certificate}`,
  plan: (p) =>
    `Trigger re-issuance of ${describeRef(ref(p))}: set its Issuing condition to True (reason ManuallyTriggered) with ` +
    `PUT /apis/cert-manager.io/v1/namespaces/${p.namespace}/certificates/${p.certificate}/status (application/json, ` +
    'the object as read, so a concurrent change is a conflict, not an overwrite); skipped when it is already issuing',
  execute: async (p, ctx): Promise<RemediationResult> => {
    checkParams(params, p);
    const kube = await kubeClients(ctx);
    const target = ref(p);
    const names = { ...CERTIFICATES, namespace: p.namespace, name: p.certificate };
    return retryOnConflict(ctx, async () => {
      const crt = (await kube.request(target, (o) => kube.custom.getNamespacedCustomObject(names, o))) as Certificate;
      const conditions = crt.status?.conditions ?? [];
      const issuing = conditions.find((c) => c.type === 'Issuing' && c.status === 'True');
      // cert-manager is already issuing: a second trigger would change nothing but the timestamps.
      const certificate = `certificate ${p.namespace}/${p.certificate}`;
      if (issuing) {
        const since = issuing.lastTransitionTime ? ` (Issuing since ${issuing.lastTransitionTime})` : '';
        const summary = `Certificate ${p.namespace}/${p.certificate} was already being issued${since}; nothing triggered`;
        return { triggered: false, issuingSince: issuing.lastTransitionTime ?? null, summary };
      }
      const condition: Condition = {
        type: 'Issuing',
        status: 'True',
        reason: 'ManuallyTriggered',
        message: 'Certificate re-issuance manually triggered',
        lastTransitionTime: rfc3339(ctx.now()),
        ...(crt.metadata?.generation === undefined ? {} : { observedGeneration: crt.metadata.generation }),
      };
      const body = { ...crt, status: { ...crt.status, conditions: setCondition(conditions, condition) } };
      await kube.request(target, (o) =>
        kube.custom.replaceNamespacedCustomObjectStatus({ ...names, body, fieldManager: FIELD_MANAGER }, o),
      );
      ctx.log.info({ runId: ctx.runId, certificate: describeRef(target) }, 'triggered certificate re-issuance');
      const summary = `Triggered re-issuance of ${certificate}: set its Issuing condition to True (reason ManuallyTriggered)`;
      return { triggered: true, issuingSince: condition.lastTransitionTime, summary };
    });
  },
});
