import { hash, timingSafeEqual } from 'node:crypto';
import type { ApiToken, Role } from './config.js';

const RANK: Record<Role, number> = { viewer: 1, approver: 2, admin: 3 };
// One-shot: no Hash object per request.
const digest = (s: string) => hash('sha256', s, 'buffer');

function bearer(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

/**
 * Bearer-token checks. Tokens are compared as SHA-256 digests with timingSafeEqual, and every
 * token is compared, so neither the length nor the position of a match leaks through timing.
 */
export function createAuth(webhookToken: string, apiTokens: readonly ApiToken[]) {
  const webhookDigest = digest(webhookToken);
  const api = apiTokens.map((t) => ({ name: t.name, role: t.role, digest: digest(t.token) }));

  return {
    webhook(header: string | undefined): boolean {
      const token = bearer(header);
      return token !== undefined && timingSafeEqual(digest(token), webhookDigest);
    },
    /** The caller's name and role, or undefined for a missing or unknown token. */
    api(header: string | undefined): { name: string; role: Role } | undefined {
      const token = bearer(header);
      if (token === undefined) return undefined;
      const d = digest(token);
      let found: { name: string; role: Role } | undefined;
      for (const t of api) if (timingSafeEqual(d, t.digest) && !found) found = { name: t.name, role: t.role };
      return found;
    },
    allows(role: Role, needed: Role): boolean {
      return RANK[role] >= RANK[needed];
    },
  };
}

export type Auth = ReturnType<typeof createAuth>;
