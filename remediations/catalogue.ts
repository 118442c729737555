import renewCertificate from './cert-manager/renew-certificate.js';
import clearCache from './conduit/clear-cache.js';
import disableKey from './conduit/disable-key.js';
import disableProvider from './conduit/disable-provider.js';
import enableProvider from './conduit/enable-provider.js';
import testProvider from './conduit/test-provider.js';
import deletePod from './kubernetes/delete-pod.js';
import patchHpa from './kubernetes/patch-hpa.js';
import rolloutRestart from './kubernetes/rollout-restart.js';
import scaleDeployment from './kubernetes/scale-deployment.js';
import setResources from './kubernetes/set-resources.js';
import notifyWebhook from './notify/webhook.js';
import archiveOldData from './postgres/archive-old-data.js';
import killIdleConnections from './postgres/kill-idle-connections.js';
import flushCache from './redis/flush-cache.js';
import type { Remediation } from './types.js';

/** Every remediation the matrix may name. Adding one: its module, and one line here. */
export const remediations: readonly Remediation[] = [
  disableProvider,
  enableProvider,
  testProvider,
  disableKey,
  clearCache,
  notifyWebhook,
  killIdleConnections,
  archiveOldData,
  flushCache,
  scaleDeployment,
  patchHpa,
  rolloutRestart,
  setResources,
  deletePod,
  renewCertificate,
];

export function createCatalogue(list: readonly Remediation[] = remediations): ReadonlyMap<string, Remediation> {
  const map = new Map<string, Remediation>();
  for (const r of list) {
    if (map.has(r.name)) throw new Error(`remediation ${r.name} is in the catalogue twice`);
    map.set(r.name, r);
  }
  return map;
}
