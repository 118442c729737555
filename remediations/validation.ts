import { Type } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../src/kernel/duration.js';

/** A Kubernetes object name (RFC 1123 subdomain: lowercase alphanumerics, `-` and `.`, at most 253). */
export const DnsSubdomain = Type.String({
  minLength: 1,
  maxLength: 253,
  pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$',
});

/** A Kubernetes namespace or container name (RFC 1123 label, at most 63). */
export const DnsLabel = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' });

/** A Prometheus-style duration (`30s`, `5m`, `90d`). */
export const Duration = Type.String({ minLength: 1, maxLength: 32, pattern: DURATION_PATTERN });

/**
 * A PostgreSQL database name as PostgreSQL allows it (`conduit-prod`, `Conduit`, `billing.eu`): 1 to 63
 * characters, and at most 63 bytes in UTF-8 (NAMEDATALEN - 1, checked again where it is used, since a
 * schema counts characters). No control characters (NUL, line breaks, C1): such a name could forge a log
 * line or a notice. It never reaches SQL as text: compared as a bound parameter, quoted as an identifier.
 */
export const DatabaseName = Type.String({ minLength: 1, maxLength: 63, pattern: '^[^\\x00-\\x1f\\x7f-\\x9f]+$' });

/** PostgreSQL's limit on an identifier, in bytes. */
export const MAX_IDENTIFIER_BYTES = 63;

/** Whether `name` passes `DatabaseName` and fits PostgreSQL's 63 bytes. */
export function isDatabaseName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    Buffer.byteLength(name, 'utf8') <= MAX_IDENTIFIER_BYTES &&
    !/[\x00-\x1f\x7f-\x9f]/.test(name)
  );
}

/** A PostgreSQL identifier we are willing to put into SQL: plain lowercase letters, digits and `_`. */
export const SqlIdentifier = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z_][a-z0-9_]*$' });
