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

/** A PostgreSQL identifier we are willing to put into SQL: plain lowercase letters, digits and `_`. */
export const SqlIdentifier = Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z_][a-z0-9_]*$' });
