import { Type } from '@sinclair/typebox';
import { count } from '../summary.js';
import { defineRemediation, RemediationError, throwIfAborted, type RemediationResult } from '../types.js';

const DEFAULT_BATCH_SIZE = 500;
/** Shorter literal prefixes (`c*`, `ca*`) reach too much of a shared cache to run unattended. */
export const MIN_LITERAL_PREFIX = 4;
// Redis glob syntax: `*`, `?`, `[...]`, and `\` escaping the next character.
const GLOB_META = /[*?[\\]/;

const Params = Type.Object(
  {
    // Printable ASCII without spaces: what a cache key pattern in a matrix looks like.
    pattern: Type.String({ minLength: 1, maxLength: 256, pattern: '^[!-~]+$' }),
    batchSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000, default: DEFAULT_BATCH_SIZE })),
  },
  { additionalProperties: false },
);

/** The characters every key matching `pattern` starts with: everything before the first glob metacharacter. */
export function literalPrefix(pattern: string): string {
  const at = pattern.search(GLOB_META);
  return at === -1 ? pattern : pattern.slice(0, at);
}

/**
 * Why `pattern` must not run, or `undefined` when it may.
 *
 * Soundness: every key a glob matches begins with the glob's literal prefix L, because the
 * characters before the first metacharacter match only themselves (stopping at `\` too only
 * shortens L, which keeps this true). If some key K matched and also began with the queue
 * prefix Q, then L and Q would both be prefixes of K, so one of them would be a prefix of the
 * other. Refusing whenever L is a prefix of Q or Q is a prefix of L therefore refuses every
 * pattern that could match a key of the service, whatever follows L. `remed*`, `?emediator:*`,
 * `[r]emediator*`, `*` and `*:bull:*` all have an L that is a prefix of `remediator`. An empty
 * Q (a misconfiguration) is a prefix of everything and so refuses every pattern.
 */
export function refusal(pattern: string, queuePrefix: string): string | undefined {
  const literal = literalPrefix(pattern);
  if (literal.length < MIN_LITERAL_PREFIX) {
    return `pattern ${JSON.stringify(pattern)} must start with at least ${MIN_LITERAL_PREFIX} literal characters (like "cache:")`;
  }
  if (queuePrefix.startsWith(literal) || literal.startsWith(queuePrefix)) {
    return `pattern ${JSON.stringify(pattern)} could match the remediator's own keys (prefix ${JSON.stringify(queuePrefix)})`;
  }
  return undefined;
}

function redisFailure(err: unknown): RemediationError {
  if (err instanceof RemediationError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (message.startsWith('NOPERM')) return new RemediationError('unauthorized', `Redis ACL: ${message}`, { cause: err });
  return new RemediationError('target_error', `Redis: ${message}`, { retryable: true, cause: err });
}

export default defineRemediation({
  name: 'redis.flush-cache',
  summary: "Deletes the cache keys matching a pattern with SCAN and UNLINK, never touching the service's own keys.",
  runbookStep: 'Memory Issues / Cache Cleanup',
  params: Params,
  requires: 'targetRedis',
  target: (p) => `redis/${p.pattern}`,
  plan: (p) =>
    `Delete the keys matching ${JSON.stringify(p.pattern)} on the target Redis: SCAN MATCH ${p.pattern} ` +
    `COUNT ${p.batchSize ?? DEFAULT_BATCH_SIZE}, then UNLINK each batch found; no KEYS, FLUSHDB or FLUSHALL.`,
  async execute(p, ctx): Promise<RemediationResult> {
    const batchSize = p.batchSize ?? DEFAULT_BATCH_SIZE;
    const refused = refusal(p.pattern, ctx.targets.settings.queuePrefix);
    if (refused) throw new RemediationError('refused', refused);
    const redis = ctx.targets.targetRedis;
    if (!redis) throw new RemediationError('target_not_configured', 'TARGET_REDIS_URL is not configured');
    // ioredis prefixes UNLINK's keys but not SCAN's MATCH nor its results: we would delete other keys than we found.
    if (redis.options.keyPrefix)
      throw new RemediationError('refused', 'the target Redis client has a keyPrefix; SCAN and UNLINK would disagree');

    let cursor = '0';
    let scanned = 0;
    let deleted = 0;
    let batches = 0;
    try {
      do {
        throwIfAborted(ctx.signal);
        const [next, keys] = await redis.scan(cursor, 'MATCH', p.pattern, 'COUNT', batchSize);
        // SCAN may return a key twice; UNLINK's count is what was actually removed.
        scanned += keys.length;
        if (keys.length > 0) {
          deleted += await redis.unlink(keys);
          batches += 1;
        }
        cursor = next;
      } while (cursor !== '0');
    } catch (err) {
      const failure = redisFailure(err);
      ctx.log.warn({ pattern: p.pattern, deleted, scanned, code: failure.code }, 'cache flush stopped');
      throw new RemediationError(failure.code, failure.message, {
        retryable: failure.retryable,
        detail: { ...failure.detail, deleted, scanned },
        cause: failure.cause ?? err,
      });
    }
    ctx.log.info({ pattern: p.pattern, deleted, scanned, batches }, 'flushed cache keys');
    const summary =
      deleted === 0
        ? `Unlinked no keys: none matching ${JSON.stringify(p.pattern)} was left`
        : `Unlinked ${count(deleted, 'key')} matching ${JSON.stringify(p.pattern)} in ${count(batches, 'batch', 'batches')}`;
    return { deleted, scanned, batches, summary };
  },
});
