import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { newGroup, serviceEnv } from '../groups.js';
import { procStatus } from '../proc-measurements.js';
import { sleep, startChild, work, type Child } from '../processes.js';
import { AT_REST_SEC, MiB, log } from '../settings.js';
import type { AtRestResult } from './results.js';

/** A kubeconfig naming a cluster that is never contacted: the service only has to find one. */
const KUBECONFIG = `apiVersion: v1
kind: Config
clusters:
  - name: bench
    cluster: { server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true }
users:
  - name: bench
    user: { token: bench-token }
contexts:
  - name: bench
    context: { cluster: bench, user: bench, namespace: conduit }
current-context: bench
`;

/**
 * Scenario 6r: the RSS of idle service processes (ROLE=all, the default role: HTTP and worker), one
 * without any Kubernetes configuration and one with a kubeconfig, started side by side and sent
 * nothing. RSS (VmRSS) is read every second, once both are ready, for AT_REST_SEC seconds: "at rest" is the last
 * reading (V8 gives back the start-up's garbage and shrinks its young generation only after some idle
 * seconds), "after start" the reading after 2 s.
 */
export async function scenarioAtRest(): Promise<AtRestResult> {
  const group = newGroup('r');
  const home = join(work, 'home-without-kube');
  mkdirSync(home, { recursive: true });
  const kubeconfig = join(work, 'kubeconfig');
  writeFileSync(kubeconfig, KUBECONFIG);
  const started: Child[] = [];
  try {
    log(`6r memory at rest: two idle ROLE=all processes (without and with a kubeconfig), ${AT_REST_SEC} s`);
    // HOME without ~/.kube and no in-cluster variables: the first finds no Kubernetes configuration at all.
    const env = { ...serviceEnv(group, 'all'), HOME: home, KUBERNETES_SERVICE_HOST: '' };
    const plain = await startChild('svc-rest', 'service.ts', env);
    started.push(plain);
    const kube = await startChild('svc-rest-kube', 'service.ts', { ...env, KUBECONFIG: kubeconfig });
    started.push(kube);
    const samples: Record<string, number[]> = { plain: [], kube: [] };
    for (let s = 1; s <= AT_REST_SEC; s++) {
      await sleep(1000);
      samples['plain']!.push(procStatus(plain.pid, 'VmRSS') ?? plain.reportedRss);
      samples['kube']!.push(procStatus(kube.pid, 'VmRSS') ?? kube.reportedRss);
    }
    const of = (k: string) => {
      const v = samples[k]!;
      return { afterStartMiB: v[1]! / MiB, atRestMiB: v.at(-1)! / MiB, maxMiB: Math.max(...v) / MiB };
    };
    return { seconds: AT_REST_SEC, withoutKube: of('plain'), withKube: of('kube') };
  } finally {
    for (const c of started.reverse()) await c.stop();
  }
}
