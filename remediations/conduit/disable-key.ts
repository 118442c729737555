import { Type } from '@sinclair/typebox';
import { defineRemediation, RemediationError, throwIfAborted, type RemediationResult } from '../types.js';
import { conduitClient, segment } from './client.js';

export default defineRemediation({
  name: 'conduit.disable-key',
  summary: "Disables one of a Conduit provider's API keys, so Conduit stops routing requests through it",
  runbookStep: 'Provider Issues: Disable unhealthy provider (one failing key rather than the whole provider)',
  params: Type.Object(
    {
      providerId: Type.Integer({ minimum: 1 }),
      keyId: Type.Integer({ minimum: 1 }),
      reason: Type.String({ minLength: 1, maxLength: 500 }),
    },
    { additionalProperties: false },
  ),
  requires: 'conduit',
  target: (p) => `conduit/key/${p.keyId}`,
  plan: (p) =>
    `Check that key ${p.keyId} belongs to Conduit provider ${p.providerId}, then POST /api/provider-errors/keys/${p.keyId}/disable ` +
    `with reason ${JSON.stringify(p.reason)}; no change if the key is already disabled`,
  execute: async (p, ctx): Promise<RemediationResult> => {
    const conduit = conduitClient(ctx);
    // The disable endpoint takes any key id: reading it through its provider first refuses a key
    // id that an alert label got wrong, before a healthy provider loses a key.
    const key = await conduit
      .request('GET', `/api/ProviderCredentials/${segment(p.providerId)}/keys/${segment(p.keyId)}`)
      .catch((err: unknown) => {
        if (err instanceof RemediationError && err.code === 'not_found') {
          throw new RemediationError('not_found', `Conduit provider ${p.providerId} has no key ${p.keyId}`, {
            detail: { providerId: p.providerId, keyId: p.keyId },
          });
        }
        throw err;
      });
    const current = key.body as { isEnabled?: unknown; keyName?: unknown } | undefined;
    const keyName = typeof current?.keyName === 'string' ? current.keyName : undefined;
    const which = `${p.keyId}${keyName === undefined ? '' : ` ("${keyName}")`} of Conduit provider ${p.providerId}`;
    if (current?.isEnabled === false) {
      return {
        changed: false,
        providerId: p.providerId,
        keyId: p.keyId,
        keyName,
        isEnabled: false,
        summary: `Key ${which} was already disabled; nothing changed`,
      };
    }
    throwIfAborted(ctx.signal);
    // Conduit binds the body as `[FromBody] string reason`: a JSON string, not an object.
    const { body } = await conduit.request('POST', `/api/provider-errors/keys/${segment(p.keyId)}/disable`, p.reason);
    ctx.log.info({ providerId: p.providerId, keyId: p.keyId }, 'conduit provider key disabled');
    return {
      changed: true,
      providerId: p.providerId,
      keyId: p.keyId,
      keyName,
      isEnabled: false,
      response: body ?? null,
      summary: `Disabled key ${which}`,
    };
  },
});
