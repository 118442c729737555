import { Type } from '@sinclair/typebox';
import { defineRemediation } from '../types.js';
import { conduitClient, ProviderRef, segment } from './client.js';

export default defineRemediation({
  name: 'conduit.test-provider',
  summary: 'Asks Conduit to test its connection to one provider and records the answer',
  runbookStep: 'Provider Issues: Force health check',
  params: Type.Object({ provider: ProviderRef }, { additionalProperties: false }),
  requires: 'conduit',
  target: (p) => `conduit/provider/${p.provider.toLowerCase()}`,
  plan: (p) =>
    `POST /api/ProviderCredentials/test/{id} for Conduit provider "${p.provider}" (matched by name, case-insensitive, or id); changes nothing`,
  execute: async (p, ctx) => {
    const conduit = conduitClient(ctx);
    const provider = await conduit.resolveProvider(p.provider);
    const { body } = await conduit.request('POST', `/api/ProviderCredentials/test/${segment(provider.id)}`);
    const answer = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : { message: body };
    // Conduit has named the outcome `success` and, in older versions, `isSuccessful`.
    const success = answer.success ?? answer.isSuccessful;
    ctx.log.info({ providerId: provider.id, providerName: provider.providerName, success }, 'provider connection tested');
    return { ...answer, providerId: provider.id, providerName: provider.providerName };
  },
});
