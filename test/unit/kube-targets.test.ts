/**
 * The Kubernetes target: which configuration applies is decided at start (a kubeconfig that is not
 * YAML stops it), the configuration itself is loaded on the first Kubernetes run.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { kubeClients } from '../../remediations/kubernetes/client.js';
import { RemediationError, type KubeConfigSource } from '../../remediations/types.js';
import { loadConfig } from '../../src/config.js';
import { buildTargets } from '../../src/targets.js';
import { executionContext } from '../support/context.js';

const dir = mkdtempSync(join(tmpdir(), 'remediator-kube-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const KUBECONFIG = `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: 'https://127.0.0.1:1' } }]
users: [{ name: u, user: { token: not-a-real-token } }]
contexts: [{ name: x, context: { cluster: c, user: u, namespace: conduit } }]
current-context: x
`;

function configWith(kubeconfig: string) {
  const file = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, kubeconfig);
  return loadConfig({
    KUBECONFIG: file,
    WEBHOOK_TOKEN: 'webhook-token-0123456789abcdef',
    API_TOKENS: 'alice:admin:alice-token-0123456789',
    TOKENS_FILE: join(dir, 'no-tokens.env'),
  }).config;
}

describe('the Kubernetes target', () => {
  it('is configured at start from KUBECONFIG, and loaded once, on the first use', async () => {
    const built = await buildTargets(configWith(KUBECONFIG));
    try {
      assert.ok(built.configured.has('kubernetes'));
      const source = built.targets.kubernetes as KubeConfigSource;
      assert.equal(source.lazy, true);
      const kube = await kubeClients(executionContext({ kubernetes: source }));
      assert.ok(kube.apps && kube.core && kube.custom);
      const [a, b] = await Promise.all([source.load(), source.load()]);
      assert.equal(a, b, 'loaded once');
      assert.equal(a.getCurrentCluster()?.server, 'https://127.0.0.1:1');
    } finally {
      await built.close();
    }
  });

  it('a kubeconfig that is not a YAML mapping stops the start, naming the file', async () => {
    await assert.rejects(buildTargets(configWith('- just\n- a list\n')), /kubeconfig .* is not a YAML mapping/);
    await assert.rejects(buildTargets(configWith('key: [unclosed\n')));
  });

  it('a kubeconfig client-node cannot load fails each Kubernetes run target_not_configured, saying why', async () => {
    const built = await buildTargets(configWith('apiVersion: v1\nkind: Config\nclusters: [{ name: c }]\n'));
    try {
      const ctx = executionContext({ kubernetes: built.targets.kubernetes! });
      for (let i = 0; i < 2; i++) {
        await assert.rejects(kubeClients(ctx), (err: RemediationError) => {
          assert.equal(err.code, 'target_not_configured');
          assert.match(err.message, /^the Kubernetes configuration could not be loaded: /);
          return true;
        });
      }
    } finally {
      await built.close();
    }
  });
});
