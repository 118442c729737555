import { Type } from '@sinclair/typebox';
import { count } from '../summary.js';
import { defineRemediation, RemediationError, type RemediationResult } from '../types.js';
import { conduitClient, ProviderRef, segment } from './client.js';

/** What Conduit says about the outcome (`message`, and `errorDetails` where a version sends it), bounded for a run record. */
function conduitSays(answer: Record<string, unknown>): string | undefined {
  const parts = [answer.message, answer.errorDetails]
    .filter((v): v is string => typeof v === 'string')
    .map((v) => v.trim())
    .filter((v, i, all) => v !== '' && all.indexOf(v) === i);
  return parts.length > 0 ? parts.join(': ').slice(0, 200) : undefined;
}

export default defineRemediation({
  name: 'conduit.test-provider',
  summary: 'Asks Conduit to test its connection to one provider; fails the run when the test fails',
  runbookStep: 'Provider Issues: Force health check',
  params: Type.Object({ provider: ProviderRef }, { additionalProperties: false }),
  requires: 'conduit',
  target: (p) => `conduit/provider/${p.provider.toLowerCase()}`,
  plan: (p) =>
    `POST /api/ProviderCredentials/test/{id} for Conduit provider "${p.provider}" (matched by name, case-insensitive, or id); ` +
    'changes nothing; fails with test_failed when Conduit answers that the test failed',
  execute: async (p, ctx): Promise<RemediationResult> => {
    const conduit = conduitClient(ctx);
    const provider = await conduit.resolveProvider(p.provider);
    const { body } = await conduit.request('POST', `/api/ProviderCredentials/test/${segment(provider.id)}`);
    const answer = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : { message: body };
    // Conduit has named the outcome `success` and, in older versions, `isSuccessful`.
    const success = answer.success ?? answer.isSuccessful;
    const ids = { providerId: provider.id, providerName: provider.providerName };
    const test = `Conduit's connection test of provider "${provider.providerName}" (id ${provider.id})`;
    ctx.log.info({ ...ids, success }, 'provider connection tested');
    if (success === false) {
      const said = conduitSays(answer);
      // Conduit did answer: asking again at once would get the same answer, so it is not retried.
      throw new RemediationError('test_failed', `${test} failed${said === undefined ? '' : `: ${said}`}`, {
        detail: { ...ids, answer },
      });
    }
    const models = typeof answer.modelCount === 'number' ? `; it listed ${count(answer.modelCount, 'model')}` : '';
    const summary =
      success === true
        ? `${test} succeeded${models}`
        : `Conduit ran the connection test of provider "${provider.providerName}" (id ${provider.id}), but its answer did not say whether it succeeded`;
    return { ...answer, ...ids, summary };
  },
});
