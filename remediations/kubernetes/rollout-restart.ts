import { Type, type Static } from '@sinclair/typebox';
import { defineRemediation, RemediationError, type RemediationResult } from '../types.js';
import { DnsLabel, DnsSubdomain } from '../validation.js';
import { checkParams, describeRef, FIELD_MANAGER, kubeClients, STRATEGIC_MERGE_PATCH, retryOnConflict, rfc3339 } from './client.js';

export const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

/**
 * A restart requested this recently is still rolling out: a second one (a retried run whose first
 * attempt did get through) would only start another rollout on top of it.
 */
const RECENT_RESTART_MS = 60_000;

const params = Type.Object({ namespace: DnsLabel, deployment: DnsSubdomain }, { additionalProperties: false });
type Params = Static<typeof params>;

const ref = (p: Params) => ({ kind: 'Deployment', namespace: p.namespace, name: p.deployment });

export default defineRemediation({
  name: 'kubernetes.rollout-restart',
  summary: 'Restarts every pod of a Deployment with a rolling update, as `kubectl rollout restart` does',
  runbookStep: 'Restart Connection Pool (kubectl rollout restart deployment conduit-api -n conduit)',
  params,
  requires: 'kubernetes',
  target: (p) => `kubernetes/${p.namespace}/deployment/${p.deployment}`,
  plan: (p) =>
    `Rolling restart of ${describeRef(ref(p))}: PATCH /apis/apps/v1/namespaces/${p.namespace}/deployments/${p.deployment} ` +
    `(application/strategic-merge-patch+json) setting spec.template.metadata.annotations["${RESTARTED_AT}"] to the current time; ` +
    `refused when the deployment is paused, skipped when it was restarted less than ${RECENT_RESTART_MS / 1000}s ago`,
  execute: async (p, ctx): Promise<RemediationResult> => {
    checkParams(params, p);
    const kube = await kubeClients(ctx);
    const target = ref(p);
    const names = { name: p.deployment, namespace: p.namespace };
    return retryOnConflict(ctx, async () => {
      const deployment = await kube.request(target, (o) => kube.apps.readNamespacedDeployment(names, o));
      if (deployment.spec?.paused) {
        // kubectl refuses too: a paused deployment would not roll, the restart would only wait for a resume.
        throw new RemediationError('refused', `${describeRef(target)} is paused; resume its rollout before restarting it`);
      }
      const previous = deployment.spec?.template?.metadata?.annotations?.[RESTARTED_AT];
      const now = ctx.now();
      const age = previous === undefined ? Infinity : now.getTime() - Date.parse(previous);
      if (age >= 0 && age < RECENT_RESTART_MS) {
        const summary =
          `Deployment ${p.namespace}/${p.deployment} was already restarted at ${previous}, less than ${RECENT_RESTART_MS / 1000}s ago; ` +
          'no new restart was started';
        return { restarted: false, restartedAt: previous, summary };
      }
      const restartedAt = rfc3339(now);
      const body = { spec: { template: { metadata: { annotations: { [RESTARTED_AT]: restartedAt } } } } };
      await kube.request(
        target,
        (o) => kube.apps.patchNamespacedDeployment({ ...names, body, fieldManager: FIELD_MANAGER }, o),
        STRATEGIC_MERGE_PATCH,
      );
      ctx.log.info({ runId: ctx.runId, deployment: describeRef(target), restartedAt }, 'restarted deployment');
      return {
        restarted: true,
        restartedAt,
        ...(previous === undefined ? {} : { previousRestartAt: previous }),
        summary: `Started a rolling restart of deployment ${p.namespace}/${p.deployment} (restartedAt ${restartedAt})`,
      };
    });
  },
});
