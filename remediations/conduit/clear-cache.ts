import { Type } from '@sinclair/typebox';
import { defineRemediation, type RemediationResult } from '../types.js';
import { conduitClient, segment } from './client.js';

export default defineRemediation({
  name: 'conduit.clear-cache',
  summary: "Clears one of Conduit's caches through the Admin API",
  runbookStep: 'Memory Issues: Cache Cleanup (through Conduit rather than raw Redis)',
  params: Type.Object(
    {
      cacheId: Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9_-]+$', description: 'Cache policy id, e.g. model-list' }),
    },
    { additionalProperties: false },
  ),
  requires: 'conduit',
  target: (p) => `conduit/cache/${p.cacheId}`,
  plan: (p) => `POST /api/config/caching/${p.cacheId}/clear on the Conduit Admin API: clears cache "${p.cacheId}"`,
  execute: async (p, ctx): Promise<RemediationResult> => {
    const { status, body } = await conduitClient(ctx).request('POST', `/api/config/caching/${segment(p.cacheId)}/clear`);
    ctx.log.info({ cacheId: p.cacheId }, 'conduit cache cleared');
    return { cacheId: p.cacheId, status, response: body ?? null, summary: `Cleared Conduit cache "${p.cacheId}" (HTTP ${status})` };
  },
});
