import { Type } from '@sinclair/typebox';
import { defineRemediation, RemediationError, throwIfAborted, type Remediation, type RemediationResult } from '../types.js';
import { conduitClient, ProviderRef, segment, type ConduitClient, type ConduitProvider } from './client.js';

const Params = Type.Object(
  {
    provider: ProviderRef,
    /** Set by a revert: act only if the provider is still in this state, as the reverted run left it. */
    ifEnabled: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/**
 * `conduit.disable-provider` and `conduit.enable-provider` differ only in the state they set.
 * Conduit's PUT overwrites `baseUrl` from the body (a missing one becomes null) and defaults a
 * missing `isEnabled` to true, so the body is always the whole object just read, one field flipped.
 */
export function providerSwitch(enabled: boolean): Remediation {
  const verb = enabled ? 'enable' : 'disable';
  const state = enabled ? 'enabled' : 'disabled';
  const named = (p: ConduitProvider) => `Conduit provider "${p.providerName}" (id ${p.id})`;
  return defineRemediation({
    name: `conduit.${verb}-provider`,
    summary: `${enabled ? 'Enables' : 'Disables'} one Conduit provider through the Admin API, keeping its other settings`,
    runbookStep: enabled
      ? 'Provider Issues: re-enable the provider once it is healthy (inverse of "Disable unhealthy provider")'
      : 'Provider Issues: Disable unhealthy provider',
    params: Params,
    requires: 'conduit',
    target: (p) => `conduit/provider/${p.provider.toLowerCase()}`,
    plan: (p) =>
      `Set isEnabled=${enabled} on Conduit provider "${p.provider}" (matched by name, case-insensitive, or id) ` +
      `with PUT /api/ProviderCredentials/{id}, sending its providerName and baseUrl back unchanged; ` +
      `no change if it is already ${state}` +
      (p.ifEnabled !== undefined ? `; refused (changed_since) unless it is still ${p.ifEnabled ? 'enabled' : 'disabled'}` : ''),
    execute: async (p, ctx): Promise<RemediationResult> => {
      const conduit = conduitClient(ctx);
      const provider = await conduit.resolveProvider(p.provider);
      const ids = { providerId: provider.id, providerName: provider.providerName };
      if (p.ifEnabled !== undefined && provider.isEnabled !== p.ifEnabled) {
        throw new RemediationError(
          'changed_since',
          `${named(provider)} is ${provider.isEnabled ? 'enabled' : 'disabled'} now, not as the reverted run left it; leaving it as it is`,
          { detail: { ...ids, isEnabled: provider.isEnabled } },
        );
      }
      if (provider.isEnabled === enabled) {
        ctx.log.info({ ...ids, isEnabled: enabled }, `provider already ${state}`);
        return {
          changed: false,
          ...ids,
          isEnabled: enabled,
          baseUrl: provider.baseUrl,
          summary: `${named(provider)} was already ${state}; nothing changed`,
        };
      }
      throwIfAborted(ctx.signal);
      const path = `/api/ProviderCredentials/${segment(provider.id)}`;
      // `id` too: older Conduit versions reject a PUT whose body id does not match the route.
      await conduit.request('PUT', path, {
        id: provider.id,
        providerName: provider.providerName,
        baseUrl: provider.baseUrl,
        isEnabled: enabled,
      });
      const after = await readBack(conduit, path, provider);
      if (after.isEnabled !== enabled) {
        throw new RemediationError('conflict', `Conduit provider "${provider.providerName}" is still not ${state} after the update`, {
          retryable: true,
          detail: { ...ids, isEnabled: after.isEnabled },
        });
      }
      ctx.log.info({ ...ids, isEnabled: enabled }, `provider ${state}`);
      return {
        changed: true,
        ...ids,
        isEnabled: after.isEnabled,
        baseUrl: after.baseUrl,
        summary: `${enabled ? 'Enabled' : 'Disabled'} ${named(provider)}`,
      };
    },
    // The inverse switch, only when this run changed the state, and only while the state is still the one it set.
    revert: (_p, result) =>
      result['changed'] === true
        ? {
            remediation: `conduit.${enabled ? 'disable' : 'enable'}-provider`,
            params: { provider: String(result['providerId']), ifEnabled: enabled },
          }
        : null,
  });
}

/** Reads the provider again, so the run records what Conduit now holds rather than what was sent. */
async function readBack(conduit: ConduitClient, path: string, before: ConduitProvider): Promise<ConduitProvider> {
  const { body } = await conduit.request('GET', path);
  if (typeof body !== 'object' || body === null) {
    throw new RemediationError('target_error', `Conduit Admin API: GET ${path} did not answer a provider`, {
      retryable: true,
      detail: { providerId: before.id },
    });
  }
  return body as ConduitProvider;
}

export default providerSwitch(false);
