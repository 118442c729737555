import { Type } from '@sinclair/typebox';
import { defineRemediation, RemediationError, type ExecutionContext } from '../../remediations/types.js';

/** Counts executions per run in the target Redis, so a test can tell how often a run really ran. */
async function countExecution(ctx: ExecutionContext, name: string): Promise<number> {
  const redis = ctx.targets.targetRedis;
  if (!redis) throw new RemediationError('target_not_configured', 'TARGET_REDIS_URL is not set');
  if (redis.status === 'wait') await redis.connect();
  return redis.incr(`${ctx.targets.settings.queuePrefix}:test:${name}:${ctx.runId}`);
}

export const executionsKey = (prefix: string, name: string, runId: string) => `${prefix}:test:${name}:${runId}`;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        reject(new RemediationError('aborted', 'aborted', { retryable: true }));
      },
      { once: true },
    );
  });

/** Hangs for `firstMs` on its first execution of a run, then completes at once: a worker dying mid-run. */
export const slow = defineRemediation({
  name: 'test.slow',
  summary: 'Test remediation: slow on its first execution',
  runbookStep: 'none',
  params: Type.Object({ key: Type.String(), firstMs: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
  requires: 'targetRedis',
  target: (p) => `test/${p.key}`,
  plan: (p) => `wait ${p.firstMs} ms on the first execution of ${p.key}`,
  async execute(p, ctx) {
    const n = await countExecution(ctx, 'slow');
    if (n === 1) await sleep(p.firstMs, ctx.signal);
    return { execution: n };
  },
});

/** Always fails with the code given; for escalation and failure paths. */
export const failing = defineRemediation({
  name: 'test.fail',
  summary: 'Test remediation: always fails',
  runbookStep: 'none',
  params: Type.Object({ key: Type.String(), retryable: Type.Boolean({ default: false }) }, { additionalProperties: false }),
  requires: 'targetRedis',
  target: (p) => `test/${p.key}`,
  plan: (p) => `fail for ${p.key}`,
  async execute(p, ctx) {
    const n = await countExecution(ctx, 'fail');
    throw new RemediationError('target_error', `failure ${n} for ${p.key}`, { retryable: p.retryable ?? false });
  },
});

/** Succeeds and counts; for gates and dry runs. */
export const counting = defineRemediation({
  name: 'test.count',
  summary: 'Test remediation: counts executions',
  runbookStep: 'none',
  params: Type.Object({ key: Type.String() }, { additionalProperties: false }),
  requires: 'targetRedis',
  target: (p) => `test/${p.key}`,
  plan: (p) => `count an execution for ${p.key}`,
  async execute(_p, ctx) {
    return { execution: await countExecution(ctx, 'count') };
  },
});

export const testRemediations = [slow, failing, counting];
