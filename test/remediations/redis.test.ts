import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import { Redis } from 'ioredis';
import flushCache, { literalPrefix, refusal } from '../../remediations/redis/flush-cache.js';
import { RemediationError, type ExecutionContext } from '../../remediations/types.js';
import { executionContext } from '../support/context.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
const id = randomBytes(4).toString('hex');
// Every key of this file contains `id`, so concurrent tests on the same server are never touched.
const queuePrefix = `remtest${id}`;
const cachePattern = `cache:${id}:*`;
const CACHE_KEYS = 1200;
const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });

async function ourKeys(): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `*${id}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys.sort();
}

async function seed(): Promise<void> {
  const pairs: string[] = [];
  for (let i = 0; i < CACHE_KEYS; i += 1) pairs.push(`cache:${id}:${i}`, 'v');
  for (let i = 0; i < 50; i += 1) pairs.push(`session:${id}:${i}`, 'v');
  pairs.push(`${queuePrefix}:bull:x`, 'v', `${queuePrefix}:bull:y:meta`, 'v', `${queuePrefix}:limiter`, 'v', `cachex:${id}`, 'v');
  await redis.mset(...pairs);
}

function context(targetRedis: Redis | undefined, signal?: AbortSignal): ExecutionContext {
  const ctx = executionContext(targetRedis ? { targetRedis } : {}, signal ? { signal } : {});
  ctx.targets.settings = { archiveTables: [], queuePrefix };
  return ctx;
}

const isCode = (code: string) => (err: unknown) => err instanceof RemediationError && err.code === code;

before(() => redis.connect());
beforeEach(async () => {
  const keys = await ourKeys();
  if (keys.length > 0) await redis.unlink(keys);
  await seed();
});
after(async () => {
  const keys = await ourKeys();
  if (keys.length > 0) await redis.unlink(keys);
  await redis.quit();
});

describe('redis.flush-cache', () => {
  test('deletes exactly the keys matching the pattern, over many batches', { timeout: 20_000 }, async () => {
    const before = await ourKeys();
    const result = await flushCache.execute({ pattern: cachePattern, batchSize: 100 }, context(redis));
    assert.equal(result.deleted, CACHE_KEYS);
    assert.ok((result.scanned as number) >= CACHE_KEYS);
    assert.ok((result.batches as number) > 1, `one batch only: ${JSON.stringify(result)}`);
    assert.equal(result.summary, `Unlinked 1200 keys matching "${cachePattern}" in ${result.batches as number} batches`);
    const expected = before.filter((k) => !k.startsWith(`cache:${id}:`));
    assert.deepEqual(await ourKeys(), expected);
    assert.equal(expected.length, 54);

    const again = await flushCache.execute({ pattern: cachePattern, batchSize: 100 }, context(redis));
    assert.equal(again.deleted, 0);
    assert.equal(again.summary, `Unlinked no keys: none matching "${cachePattern}" was left`);
  });

  test('refuses broad patterns and any pattern that could reach the queue prefix, deleting nothing', async () => {
    const before = await ourKeys();
    const refused = [
      '*',
      '**',
      '?*',
      `${queuePrefix}*`,
      `${queuePrefix}:bull:*`,
      `${queuePrefix.slice(0, 3)}*`,
      `${queuePrefix.slice(0, 6)}*`,
      '*:bull:*',
      `?${queuePrefix.slice(1)}:*`,
      `[r]${queuePrefix.slice(1)}*`,
      `\\${queuePrefix}*`,
      'ca*',
    ];
    for (const pattern of refused) {
      await assert.rejects(flushCache.execute({ pattern, batchSize: 100 }, context(redis)), isCode('refused'), pattern);
    }
    assert.deepEqual(await ourKeys(), before);
  });

  test('refuses a client with a keyPrefix, whose UNLINK would not hit the keys SCAN found', async () => {
    const prefixed = new Redis(REDIS_URL, { keyPrefix: 'cache:', lazyConnect: true });
    try {
      await assert.rejects(flushCache.execute({ pattern: cachePattern }, context(prefixed)), isCode('refused'));
    } finally {
      prefixed.disconnect();
    }
    assert.equal((await ourKeys()).length, CACHE_KEYS + 54);
  });

  test('stops between batches when the signal fires, and a rerun finishes the job', { timeout: 20_000 }, async () => {
    const client = new Redis(REDIS_URL);
    const controller = new AbortController();
    const unlink = client.unlink.bind(client) as (keys: string[]) => Promise<number>;
    (client as unknown as { unlink: unknown }).unlink = (keys: string[]) => {
      controller.abort('test');
      return unlink(keys);
    };
    try {
      await assert.rejects(
        flushCache.execute({ pattern: cachePattern, batchSize: 100 }, context(client, controller.signal)),
        (err: unknown) => {
          const deleted = err instanceof RemediationError ? (err.detail?.deleted as number) : -1;
          return isCode('aborted')(err) && deleted > 0 && deleted < CACHE_KEYS;
        },
      );
      const left = (await ourKeys()).filter((k) => k.startsWith(`cache:${id}:`)).length;
      assert.ok(left > 0 && left < CACHE_KEYS, `left ${left}`);
      const rerun = await flushCache.execute({ pattern: cachePattern, batchSize: 100 }, context(redis));
      assert.equal(rerun.deleted, left);
      assert.equal((await ourKeys()).length, 54);
    } finally {
      client.disconnect();
    }
  });

  test('a missing target is target_not_configured', async () => {
    await assert.rejects(flushCache.execute({ pattern: cachePattern }, context(undefined)), isCode('target_not_configured'));
  });

  test('the params schema rejects whitespace and unknown fields; batchSize defaults to 500', () => {
    assert.equal(Value.Check(flushCache.params, { pattern: 'cache:a b*' }), false);
    assert.equal(Value.Check(flushCache.params, { pattern: 'cache:*', extra: 1 }), false);
    assert.deepEqual(Value.Default(flushCache.params, { pattern: 'cache:*' }), { pattern: 'cache:*', batchSize: 500 });
  });

  test('target and plan name the pattern and the change', () => {
    assert.equal(flushCache.target({ pattern: 'cache:*' }), 'redis/cache:*');
    const plan = flushCache.plan({ pattern: 'cache:models:*', batchSize: 250 });
    for (const part of ['"cache:models:*"', 'SCAN MATCH cache:models:*', 'COUNT 250', 'UNLINK']) assert.ok(plan.includes(part), plan);
    assert.ok(flushCache.plan({ pattern: 'cache:*' }).includes('COUNT 500'));
  });
});

describe('the queue-prefix rule', () => {
  test('the literal prefix stops at the first glob metacharacter', () => {
    assert.equal(literalPrefix('cache:*'), 'cache:');
    assert.equal(literalPrefix('cache:?x'), 'cache:');
    assert.equal(literalPrefix('cache:[ab]*'), 'cache:');
    assert.equal(literalPrefix('cache\\*x'), 'cache');
    assert.equal(literalPrefix('cache:exact'), 'cache:exact');
  });

  test('refuses every pattern that could match a key starting with the prefix, and allows disjoint ones', () => {
    for (const pattern of [
      '*',
      'remed*',
      'remediator*',
      'remediator:bull:*',
      'remediatorx*',
      '?emediator:*',
      '[r]emediator*',
      'remediator',
    ]) {
      assert.ok(refusal(pattern, 'remediator'), pattern);
    }
    for (const pattern of ['cache:*', 'session:*', 'remx:*', 'rem3diator:*', 'cache:remediator:*']) {
      assert.equal(refusal(pattern, 'remediator'), undefined, pattern);
    }
    assert.ok(refusal('cache:*', ''), 'an empty queue prefix owns every key');
  });
});
