import { Type, type Static } from '@sinclair/typebox';
import { defineRemediation, RemediationError } from '../types.js';
import { DnsLabel, DnsSubdomain } from '../validation.js';
import { checkParams, describeRef, kubeClients } from './client.js';

const params = Type.Object({ namespace: DnsLabel, pod: DnsSubdomain }, { additionalProperties: false });
type Params = Static<typeof params>;

const ref = (p: Params) => ({ kind: 'Pod', namespace: p.namespace, name: p.pod });

/** A missing object means the work is already done; anything else is a real failure. */
const isGone = (err: unknown) => err instanceof RemediationError && err.code === 'not_found';

export default defineRemediation({
  name: 'kubernetes.delete-pod',
  summary: 'Deletes one pod so that its controller (Deployment, StatefulSet...) starts a fresh one',
  runbookStep: 'Restart affected pods (kubectl delete pod -n conduit conduit-api-xxxx)',
  params,
  requires: 'kubernetes',
  target: (p) => `kubernetes/${p.namespace}/pod/${p.pod}`,
  plan: (p) =>
    `Delete ${describeRef(ref(p))} (graceful, with a UID precondition): DELETE /api/v1/namespaces/${p.namespace}/pods/${p.pod}; ` +
    'refused when no controller owns it (nothing would start it again), a no-op when it is already gone',
  execute: async (p, ctx) => {
    checkParams(params, p);
    const kube = await kubeClients(ctx);
    const target = ref(p);
    const names = { name: p.pod, namespace: p.namespace };
    let uid: string | undefined;
    try {
      const pod = await kube.request(target, (o) => kube.core.readNamespacedPod(names, o));
      if (!pod.metadata?.ownerReferences?.some((owner) => owner.controller)) {
        throw new RemediationError(
          'refused',
          `${describeRef(target)} has no controller: deleting it would not restart it, it would only remove it`,
        );
      }
      uid = pod.metadata.uid;
      // The UID precondition keeps a retried run from deleting the replacement a StatefulSet gave the same name.
      const body = uid === undefined ? undefined : { preconditions: { uid } };
      await kube.request(target, (o) => kube.core.deleteNamespacedPod({ ...names, ...(body ? { body } : {}) }, o));
    } catch (err) {
      if (isGone(err)) return { deleted: false };
      if (err instanceof RemediationError && err.code === 'conflict' && uid !== undefined) return { deleted: false, replaced: true };
      throw err;
    }
    ctx.log.info({ runId: ctx.runId, pod: describeRef(target), uid }, 'deleted pod');
    return { deleted: true, uid };
  },
});
