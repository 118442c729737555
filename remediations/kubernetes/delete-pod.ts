import { Type, type Static } from '@sinclair/typebox';
import { defineRemediation, RemediationError, type RemediationResult } from '../types.js';
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
  execute: async (p, ctx): Promise<RemediationResult> => {
    checkParams(params, p);
    const kube = await kubeClients(ctx);
    const target = ref(p);
    const names = { name: p.pod, namespace: p.namespace };
    let uid: string | undefined;
    let controller = '';
    try {
      const pod = await kube.request(target, (o) => kube.core.readNamespacedPod(names, o));
      const owner = pod.metadata?.ownerReferences?.find((r) => r.controller);
      if (!owner) {
        throw new RemediationError(
          'refused',
          `${describeRef(target)} has no controller: deleting it would not restart it, it would only remove it`,
        );
      }
      uid = pod.metadata?.uid;
      controller = `${owner.kind} ${owner.name}`;
      // The UID precondition keeps a retried run from deleting the replacement a StatefulSet gave the same name.
      const body = uid === undefined ? undefined : { preconditions: { uid } };
      await kube.request(target, (o) => kube.core.deleteNamespacedPod({ ...names, ...(body ? { body } : {}) }, o));
    } catch (err) {
      if (isGone(err)) return { deleted: false, summary: `Pod ${p.namespace}/${p.pod} was already gone; nothing deleted` };
      if (err instanceof RemediationError && err.code === 'conflict' && uid !== undefined) {
        const summary = `Pod ${p.namespace}/${p.pod} had already been replaced by a new pod of that name; nothing deleted`;
        return { deleted: false, replaced: true, summary };
      }
      throw err;
    }
    ctx.log.info({ runId: ctx.runId, pod: describeRef(target), uid }, 'deleted pod');
    return { deleted: true, uid, summary: `Deleted pod ${p.namespace}/${p.pod} (controlled by ${controller})` };
  },
});
