/** The gates at intake (`decideAll`), over the in-memory counters: no Redis, no PostgreSQL. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import type { TargetKind } from '../../remediations/types.js';
import { createCatalogue } from '../../remediations/catalogue.js';
import { decideAll, type IntakeGateContext } from '../../src/gates/at-intake.js';
import type { GateSubject } from '../../src/gates/counter-gate.js';
import { ESCALATE_AFTER } from '../../src/gates/escalation.js';
import { parseMatrix } from '../../src/matrix/load.js';
import type { Action, Limit } from '../../src/matrix/types.js';
import type { NewRun } from '../../src/schemas/runs.js';
import { alert } from '../support/alerts.js';
import { createFakeCounters, fakeClock, type FakeClock, type FakeCounters } from '../support/fake-counters.js';
import { testRemediations } from '../support/test-remediations.js';

const MATRIX = `
defaults: { approvalTimeout: 30m, cooldown: 0s }
rules:
  - name: plain
    matchers: ['alertname="Plain"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
  - name: slow
    matchers: ['alertname="Slow"']
    actions:
      - remediation: test.slow
        params: { key: '{{ labels.key }}', firstMs: '{{ labels.ms }}' }
  - name: cooled
    matchers: ['alertname="Cooled"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        cooldown: 10m
  - name: limited
    matchers: ['alertname="Limited"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        limit: { max: 1, per: 1h }
  - name: approve
    matchers: ['alertname="Approve"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
        approvalTimeout: 15m
        cooldown: 10m
  - name: dry
    matchers: ['alertname="Dry"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        dryRun: true
        cooldown: 10m
`;

const catalogue = createCatalogue(testRemediations);
const matrix = parseMatrix(MATRIX, 'gates-at-intake.yaml', catalogue);
const action = (rule: string): Action => {
  const found = matrix.rules.find((r) => r.name === rule)?.actions[0];
  if (!found) throw new Error(`no rule ${rule}`);
  return found;
};
const firing = (key: string, more: Record<string, string> = {}) => alert({ alertname: 'x', key, ...more });
const ALL: ReadonlySet<TargetKind> = new Set<TargetKind>(['targetRedis']);

function setup(opts: { globalLimit?: Limit; paused?: boolean; dryRun?: boolean; configured?: ReadonlySet<TargetKind> } = {}) {
  const clock: FakeClock = fakeClock();
  const counters: FakeCounters = createFakeCounters({ clock, ...(opts.globalLimit ? { globalLimit: opts.globalLimit } : {}) });
  const ctx: IntakeGateContext = {
    counters,
    paused: opts.paused ?? false,
    dryRun: opts.dryRun ?? false,
    configured: opts.configured ?? ALL,
  };
  const decide = async (rule: string, key: string, more: Record<string, string> = {}): Promise<NewRun> =>
    (await decideAll([{ action: action(rule), alert: firing(key, more) }], ctx))[0]!;
  return { clock, counters, ctx, decide };
}

/** A run that executed on `target` (test.count), holding its cooldown and its places. */
function executed(a: Action, target: string, approved = false): GateSubject {
  return {
    runId: randomUUID(),
    rule: a.rule,
    action: a.key,
    remediation: a.remediation.name,
    target,
    gates: { cooldownMs: a.cooldownMs, limit: a.limit ?? null, approvalTimeoutMs: a.approvalTimeoutMs },
    approved,
  };
}

const types = (run: NewRun) => run.events.map((e) => e.type);

describe('decideAll: the gates at intake', () => {
  it('queues a run that passes every gate, with its target, plan and gate settings, after one peek', async () => {
    const { counters, decide } = setup();
    const run = await decide('cooled', 'a');
    assert.equal(run.status, 'queued');
    assert.equal(run.reason, null);
    assert.equal(run.rule, 'cooled');
    assert.equal(run.action, 'firing:0');
    assert.equal(run.phase, 'firing');
    assert.equal(run.remediation, 'test.count');
    assert.equal(run.target, 'test/a');
    assert.deepEqual(run.params, { key: 'a' });
    assert.equal(run.plan, 'count an execution for a');
    assert.deepEqual(run.gates, {
      cooldownMs: 600_000,
      limit: null,
      approvalTimeoutMs: 1_800_000,
      alertFiring: true,
      onCheckError: 'skip',
    });
    assert.equal(run.dryRun, false);
    assert.equal(run.approvalRequired, false);
    assert.equal(run.expiresAt, null);
    assert.deepEqual(run.events, [
      { type: 'created', detail: { rule: 'cooled', action: 'firing:0', alertStatus: 'firing' } },
      { type: 'queued', detail: {} },
    ]);
    assert.deepEqual(counters.calls, [{ mode: 'peek', runIds: [run.id] }]);
    assert.deepEqual(counters.keys(), [], 'intake takes nothing');
  });

  it('fails invalid params first, before the target, the kill switch and the counters', async () => {
    const { counters, decide } = setup({ paused: true, configured: new Set() });
    const run = await decide('slow', 'a', { ms: 'soon' });
    assert.equal(run.status, 'failed');
    assert.equal(run.reason, 'invalid_params');
    assert.match(run.error ?? '', /firstMs/);
    assert.equal(run.target, null);
    assert.equal(run.plan, null);
    assert.deepEqual(types(run), ['created', 'failed']);
    assert.deepEqual(counters.calls, [], 'nothing to peek at');
  });

  it('fails an unconfigured target next, before the kill switch', async () => {
    const { counters, decide } = setup({ paused: true, configured: new Set() });
    const run = await decide('slow', 'a', { ms: '10' });
    assert.equal(run.status, 'failed');
    assert.equal(run.reason, 'target_not_configured');
    assert.deepEqual(run.events.at(-1), { type: 'failed', detail: { reason: 'target_not_configured', requires: 'targetRedis' } });
    assert.deepEqual(counters.calls, []);
  });

  it('suppresses while paused, before approval and escalation', async () => {
    const { counters, decide } = setup({ paused: true });
    for (let i = 0; i < ESCALATE_AFTER; i++) await counters.recordFailure('test.count', 'test/a');
    for (const rule of ['plain', 'approve']) {
      const run = await decide(rule, 'a');
      assert.equal(run.status, 'suppressed', rule);
      assert.equal(run.reason, 'paused', rule);
      assert.equal(run.approvalRequired, false, rule);
    }
    assert.deepEqual(counters.calls, []);
  });

  it("asks for approval when the action requires it, with its timeout for the store to expire it by PostgreSQL's clock", async () => {
    const { decide } = setup();
    const run = await decide('approve', 'a');
    assert.equal(run.status, 'pending_approval');
    assert.equal(run.reason, null);
    assert.equal(run.approvalRequired, true);
    assert.equal(run.expiresAt, null, 'not computed from this process clock');
    assert.equal(run.gates.approvalTimeoutMs, 15 * 60_000);
    assert.deepEqual(run.events.at(-1), { type: 'pending_approval', detail: { reason: null } });
  });

  it('asks for approval even when a counter would stop the run: approval comes before the cooldown', async () => {
    const { counters, decide } = setup();
    assert.deepEqual(await counters.take(executed(action('approve'), 'test/a', true)), { ok: true, took: true });
    const run = await decide('approve', 'a');
    assert.equal(run.status, 'pending_approval');
    assert.equal(run.reason, null);
    const plain = await decide('cooled', 'a');
    assert.equal(plain.status, 'suppressed', 'the same cooldown stops a run that needs no approval');
    assert.equal(plain.reason, 'cooldown');
  });

  it('escalates after repeated failures: pending_approval with reason escalated, winning over the cooldown', async () => {
    const { counters, decide } = setup();
    assert.deepEqual(await counters.take(executed(action('cooled'), 'test/a')), { ok: true, took: true });
    for (let i = 0; i < ESCALATE_AFTER; i++) await counters.recordFailure('test.count', 'test/a');
    const run = await decide('cooled', 'a');
    assert.equal(run.status, 'pending_approval');
    assert.equal(run.reason, 'escalated');
    assert.equal(run.approvalRequired, true);
    assert.equal(run.gates.approvalTimeoutMs, 30 * 60_000, "the action's approval timeout (the default)");
    const required = await decide('approve', 'a');
    assert.equal(required.reason, 'escalated', 'an action that requires approval anyway says why it was escalated');
    assert.equal(required.gates.approvalTimeoutMs, 15 * 60_000);
    const elsewhere = await decide('cooled', 'b');
    assert.equal(elsewhere.status, 'queued', 'escalation is per target');
  });

  it('suppresses on the cooldown, the rate limit and the global budget, with the time until it would pass', async () => {
    const { clock, counters, decide } = setup({ globalLimit: { max: 2, perMs: 3_600_000 } });
    await counters.take(executed(action('cooled'), 'test/a'));
    clock.advance(60_000);
    const cooled = await decide('cooled', 'a');
    assert.equal(cooled.status, 'suppressed');
    assert.equal(cooled.reason, 'cooldown');
    assert.deepEqual(cooled.events.at(-1), { type: 'suppressed', detail: { reason: 'cooldown', retryInMs: 540_000 } });
    await counters.take(executed(action('limited'), 'test/b'));
    const limited = await decide('limited', 'c');
    assert.equal(limited.reason, 'rate_limit', 'the limit is per action, over its targets');
    assert.deepEqual(limited.events.at(-1)?.detail, { reason: 'rate_limit', retryInMs: 3_600_000 });
    const budget = await decide('plain', 'd');
    assert.equal(budget.status, 'suppressed');
    assert.equal(budget.reason, 'global_budget');
    assert.deepEqual(budget.events.at(-1)?.detail, { reason: 'global_budget', retryInMs: 3_540_000 });
  });

  it('marks dry runs, which skip the target check but not the counters', async () => {
    const { counters, decide } = setup({ configured: new Set() });
    const dry = await decide('dry', 'a');
    assert.equal(dry.status, 'queued', 'a dry run touches no target, so none need be configured');
    assert.equal(dry.dryRun, true);
    assert.deepEqual(dry.events.at(-1), { type: 'queued', detail: { dryRun: true } });
    await counters.take(executed(action('dry'), 'test/b'));
    const cooled = await decide('dry', 'b');
    assert.equal(cooled.status, 'suppressed');
    assert.equal(cooled.reason, 'cooldown');
  });

  it('makes every run a dry run when the service runs dry', async () => {
    const { decide } = setup({ dryRun: true, configured: new Set() });
    const run = await decide('plain', 'a');
    assert.equal(run.dryRun, true);
    assert.equal(run.status, 'queued');
    const required = await decide('approve', 'a');
    assert.equal(required.dryRun, true);
    assert.equal(required.status, 'pending_approval', 'a dry run still waits for its approval');
  });

  it('decides a batch with one peek, in order, taking nothing, so runs of one limited action all pass', async () => {
    const { counters, ctx } = setup();
    const items = [
      { action: action('limited'), alert: firing('1') },
      { action: action('slow'), alert: firing('2', { ms: 'never' }) },
      { action: action('limited'), alert: firing('3') },
      { action: action('approve'), alert: firing('4') },
      { action: action('plain'), alert: firing('5') },
    ];
    const runs = await decideAll(items, ctx);
    assert.deepEqual(
      runs.map((r) => [r.target ?? (r.params as Record<string, unknown>)['key'], r.status]),
      [
        ['test/1', 'queued'],
        ['2', 'failed'],
        ['test/3', 'queued'],
        ['test/4', 'pending_approval'],
        ['test/5', 'queued'],
      ],
    );
    assert.equal(new Set(runs.map((r) => r.id)).size, runs.length, 'every run has its own id');
    assert.deepEqual(
      counters.calls,
      [{ mode: 'peek', runIds: [runs[0]!.id, runs[2]!.id, runs[3]!.id, runs[4]!.id] }],
      'one peek, for the runs still open',
    );
    assert.deepEqual(await decideAll([], ctx), []);
  });
});
