import type { TSchema } from '@sinclair/typebox';

const INTEGER = /^-?\d+$/;
const NUMBER = /^-?\d+(\.\d+)?$/;

/**
 * Turns the strings a template or an environment variable produces into the numbers and booleans
 * a schema asks for, strictly: `"2"` becomes 2, while `"2.5"`, `"1e3"` or `"0x10"` for an integer stay
 * strings so that validation refuses them instead of reading something else.
 */
export function convertStrict(schema: TSchema, value: unknown): unknown {
  const s = schema as { type?: string; properties?: Record<string, TSchema>; anyOf?: TSchema[] };
  if (typeof value === 'string') {
    if (s.type === 'integer' && INTEGER.test(value)) return Number(value);
    if (s.type === 'number' && NUMBER.test(value)) return Number(value);
    if (s.type === 'boolean' && (value === 'true' || value === 'false')) return value === 'true';
    return value;
  }
  if (s.type === 'object' && s.properties && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = s.properties[k] ? convertStrict(s.properties[k], v) : v;
    return out;
  }
  return value;
}
