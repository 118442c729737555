/**
 * Actions that wait for another's outcome (`after`, `when`), end to end: the real service, PostgreSQL,
 * Redis and BullMQ worker. Each rule's first action ends in one final status; three dependents
 * (when succeeded, failed, finished) show which go on and which are skipped, and with what params.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import request from 'supertest';
import { approve, deliver, getRun, reject, settled, type RunBody } from '../support/api.js';
import { alertMessage, eventually, isolation, REDIS_URL, removeMatrix, startService, TOKENS, writeMatrix } from '../support/harness.js';
import { executionsKey } from '../support/test-remediations.js';
import { spawnWorker } from '../support/worker-child.js';

const DEPENDENTS = `
      - id: on-success
        remediation: test.count
        after: first
        params: { key: '{{ labels.key }}-s-{{ after.status }}' }
      - id: on-failure
        remediation: test.count
        after: first
        when: failed
        params: { key: '{{ labels.key }}-f-{{ after.reason }}' }
      - id: on-finish
        remediation: test.count
        after: first
        when: finished
        params: { key: '{{ labels.key }}-x-{{ after.status }}' }`;

/** A rule whose first action is `first` (YAML lines after `remediation:`), followed by the three dependents. */
const rule = (name: string, ...first: string[]) => `
  - name: ${name.toLowerCase()}
    matchers: ['alertname="${name}"']
    actions:
      - id: first
${first.map((l) => `        ${l}`).join('\n')}${DEPENDENTS}`;

const KEY = "params: { key: '{{ labels.key }}' }";
const episode = (name: string, approval: string) => `
  - name: ${name.toLowerCase()}
    matchers: ['alertname="${name}"']
    actions:
      - id: act
        remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: ${approval}
    onResolved:
      - id: check
        remediation: test.count
        after: firing.act
        params: { key: '{{ labels.key }}-r-{{ after.status }}-{{ after.result.execution }}' }
      - remediation: test.count
        after: check
        when: finished
        params: { key: '{{ labels.key }}-r2-{{ after.status }}' }`;

const MATRIX = `
defaults: { cooldown: 0 }
rules:${rule('Ok', 'remediation: test.count', KEY)}${rule('Fail', 'remediation: test.fail', KEY)}${rule(
  'Gated',
  'remediation: test.count',
  KEY,
  'approval: required',
)}${rule('Expiring', 'remediation: test.count', KEY, 'approval: required', 'approvalTimeout: 1s')}${rule(
  'Limited',
  'remediation: test.count',
  KEY,
  'limit: { max: 1, per: 1h }',
)}${rule('Dry', 'remediation: test.count', KEY, 'dryRun: true')}
  - name: chain
    matchers: ['alertname="Chain"']
    actions:
      - id: a
        remediation: test.fail
        params: { key: '{{ labels.key }}-a' }
      - id: b
        remediation: test.count
        after: a
        params: { key: '{{ labels.key }}-b' }
      - id: c
        remediation: test.count
        after: b
        when: finished
        params: { key: '{{ labels.key }}-c-{{ after.reason }}' }
      - id: d
        remediation: test.count
        after: b
        params: { key: '{{ labels.key }}-d' }${episode('Episode', 'auto')}${episode('EpisodeGated', 'required')}
  - name: plain
    matchers: ['alertname="Plain"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
  - name: checked
    matchers: ['alertname="Checked"']
    actions:
      - id: first
        remediation: test.count
        params: { key: '{{ labels.key }}' }
      - remediation: test.count
        after: first
        params: { key: '{{ labels.key }}-c' }
        check: { query: 'test_ready{execution="{{ after.result.execution }}",status="{{ after.status }}"} > 0' }
`;

const keyOf = (run: RunBody) => String((run.params as Record<string, unknown>)['key']);

describe('actions that wait for their predecessor', (s) => {
  const iso = isolation('chains');
  const env = { TARGET_REDIS_URL: REDIS_URL, SWEEP_INTERVAL: '200ms' };
  const svc = startService(s, () => ({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env }));
  const redis = new Redis(REDIS_URL);
  after(async () => {
    redis.disconnect();
    await iso.drop();
  });

  const fire = (alertname: string, key: string, extra: Record<string, string> = {}, status: 'firing' | 'resolved' = 'firing') =>
    deliver(svc, alertMessage([{ labels: { alertname, key, ...extra }, status }]));
  /** The runs of one delivery by action id (`first`, `on-success`...), read back with their timelines. */
  const byId = async (runs: Array<{ id: string }>): Promise<Map<string, RunBody>> => {
    const out = new Map<string, RunBody>();
    for (const r of runs) {
      const run = await getRun(svc, r.id);
      out.set(run.action, run);
    }
    return out;
  };
  const final = (id: string) =>
    eventually(
      async () => {
        const run = await getRun(svc, id);
        return ['waiting', 'queued', 'running', 'pending_approval'].includes(run.status) ? undefined : run;
      },
      15_000,
      `run ${id} final`,
    );
  const executions = async (id: string) => Number((await redis.get(executionsKey(iso.prefix, 'count', id))) ?? 0);

  /** Waits for the three dependents and checks which went on (and ran once) and which were skipped. */
  async function expectDependents(
    ids: Array<{ id: string }>,
    expected: { success: string; failure: string; finish: string },
    firstStatus: string,
  ) {
    const [, s1, f1, x1] = ids;
    const [success, failure, finish] = await Promise.all([final(s1!.id), final(f1!.id), final(x1!.id)]);
    const got = (run: RunBody) => (run.status === 'skipped' ? `skipped:${run.reason}` : `${run.status}:${String(keyOf(run))}`);
    assert.deepEqual(
      { success: got(success), failure: got(failure), finish: got(finish) },
      expected,
      `dependents of a ${firstStatus} predecessor`,
    );
    for (const run of [success, failure, finish]) {
      assert.equal(await executions(run.id), run.status === 'succeeded' ? 1 : 0, `${run.action} executed once or never`);
      const moved = run.events.find((e) => e.type === 'predecessor_finished');
      assert.ok(moved, `${run.action} has the predecessor's outcome in its timeline`);
      assert.equal((moved.detail as Record<string, unknown>)['status'], firstStatus);
      assert.equal(run.after?.runId, ids[0]!.id, 'the dependent names its predecessor');
    }
    const first = await getRun(svc, ids[0]!.id);
    assert.deepEqual(first.dependents, [s1!.id, f1!.id, x1!.id], 'the predecessor names its dependents');
  }

  it('a succeeded predecessor lets `succeeded` and `finished` go on with its outcome in their params; `failed` is skipped', async () => {
    const runs = await fire('Ok', 'ok1');
    assert.deepEqual(
      runs.map((r) => r.status),
      ['queued', 'waiting', 'waiting', 'waiting'],
    );
    await settled(svc, runs[0]!.id, 'succeeded');
    await expectDependents(
      runs,
      { success: 'succeeded:ok1-s-succeeded', failure: 'skipped:predecessor_succeeded', finish: 'succeeded:ok1-x-succeeded' },
      'succeeded',
    );
  });

  it('a failed predecessor lets `failed` and `finished` go on; `succeeded` is skipped predecessor_failed', async () => {
    const runs = await fire('Fail', 'f1');
    await settled(svc, runs[0]!.id, 'failed');
    await expectDependents(
      runs,
      { success: 'skipped:predecessor_failed', failure: 'succeeded:f1-f-target_error', finish: 'succeeded:f1-x-failed' },
      'failed',
    );
  });

  it('a rejected predecessor: only `finished` goes on', async () => {
    const runs = await fire('Gated', 'g1');
    assert.equal(runs[0]!.status, 'pending_approval');
    await new Promise((r) => setTimeout(r, 500));
    for (const dep of runs.slice(1)) assert.equal((await getRun(svc, dep.id)).status, 'waiting', 'dependents wait for the decision');
    await reject(svc, runs[0]!.id).expect(200);
    await expectDependents(
      runs,
      { success: 'skipped:predecessor_rejected', failure: 'skipped:predecessor_rejected', finish: 'succeeded:g1-x-rejected' },
      'rejected',
    );
  });

  it('an approved predecessor moves its dependents once it has executed', async () => {
    const runs = await fire('Gated', 'g2');
    await approve(svc, runs[0]!.id).expect(200);
    await expectDependents(
      runs,
      { success: 'succeeded:g2-s-succeeded', failure: 'skipped:predecessor_succeeded', finish: 'succeeded:g2-x-succeeded' },
      'succeeded',
    );
  });

  it('an expired predecessor (the sweeper expires it): only `finished` goes on', async () => {
    const runs = await fire('Expiring', 'e1');
    await settled(svc, runs[0]!.id, 'expired', 10_000);
    await expectDependents(
      runs,
      { success: 'skipped:predecessor_expired', failure: 'skipped:predecessor_expired', finish: 'succeeded:e1-x-expired' },
      'expired',
    );
  });

  it('a predecessor suppressed at intake moves its dependents in the same delivery', async () => {
    const firstRuns = await fire('Limited', 'l1');
    await settled(svc, firstRuns[0]!.id, 'succeeded');
    // Another episode of the same target: its first action is over the limit.
    const runs = await deliver(
      svc,
      alertMessage([{ labels: { alertname: 'Limited', key: 'l1' }, startsAt: '2026-11-27T14:00:00.000000000Z' }]),
    );
    assert.equal(runs[0]!.status, 'suppressed');
    await expectDependents(
      runs,
      { success: 'skipped:predecessor_suppressed', failure: 'skipped:predecessor_suppressed', finish: 'succeeded:l1-x-suppressed' },
      'suppressed',
    );
  });

  it('a dry-run predecessor counts as succeeded, so the chain shows in full', async () => {
    const runs = await fire('Dry', 'd1');
    await settled(svc, runs[0]!.id, 'dry_run');
    await expectDependents(
      runs,
      { success: 'succeeded:d1-s-dry_run', failure: 'skipped:predecessor_dry_run', finish: 'succeeded:d1-x-dry_run' },
      'dry_run',
    );
    assert.equal(await executions(runs[0]!.id), 0, 'the dry run executed nothing');
  });

  it('a skipped predecessor skips its `succeeded` dependents and lets `finished` ones go on, down a chain', async () => {
    const runs = await fire('Chain', 'c1');
    const [a, b, c, d] = runs;
    await settled(svc, a!.id, 'failed');
    const chain = await byId(runs);
    assert.equal(chain.size, 4);
    const [rb, rc, rd] = await Promise.all([final(b!.id), final(c!.id), final(d!.id)]);
    assert.deepEqual([rb.status, rb.reason], ['skipped', 'predecessor_failed']);
    assert.deepEqual([rc.status, keyOf(rc)], ['succeeded', 'c1-c-predecessor_failed']);
    assert.deepEqual([rd.status, rd.reason], ['skipped', 'predecessor_skipped']);
  });

  it('onResolved `firing.<id>` reads the firing run of the same episode', async () => {
    const [act] = await fire('Episode', 'ep1');
    await settled(svc, act!.id, 'succeeded');
    const resolved = await fire('Episode', 'ep1', {}, 'resolved');
    assert.deepEqual(
      resolved.map((r) => r.status),
      ['waiting', 'waiting'],
    );
    const [check, next] = await Promise.all([final(resolved[0]!.id), final(resolved[1]!.id)]);
    assert.deepEqual([check.status, keyOf(check)], ['succeeded', 'ep1-r-succeeded-1']);
    assert.equal(check.after?.runId, act!.id);
    assert.deepEqual([next.status, keyOf(next)], ['succeeded', 'ep1-r2-succeeded']);
  });

  it('onResolved `firing.<id>` without a firing run in the episode is skipped no_predecessor, and so is not executed', async () => {
    const resolved = await fire('Episode', 'ep2', {}, 'resolved');
    const [check, next] = await Promise.all([final(resolved[0]!.id), final(resolved[1]!.id)]);
    assert.deepEqual([check.status, check.reason, check.after?.runId], ['skipped', 'no_predecessor', null]);
    assert.equal(await executions(check.id), 0);
    assert.deepEqual([next.status, keyOf(next)], ['succeeded', 'ep2-r2-skipped']);
  });

  it('a resolution cancels the firing runs still waiting, and the onResolved dependent of a cancelled run is skipped', async () => {
    const firing = await fire('Gated', 'g3');
    const resolvedGated = await fire('Gated', 'g3', {}, 'resolved');
    assert.deepEqual(resolvedGated, []);
    for (const r of firing) {
      const run = await getRun(svc, r.id);
      assert.deepEqual([run.status, run.reason], ['cancelled', 'alert_resolved'], `${run.action} cancelled`);
    }
    const [act] = await fire('EpisodeGated', 'ep3');
    assert.equal(act!.status, 'pending_approval');
    const resolved = await fire('EpisodeGated', 'ep3', {}, 'resolved');
    assert.equal((await getRun(svc, act!.id)).status, 'cancelled');
    const check = await final(resolved[0]!.id);
    assert.deepEqual([check.status, check.reason], ['skipped', 'predecessor_cancelled']);
  });

  it("a dependent's check query is rendered again with its predecessor's outcome when it moves on", async () => {
    const runs = await fire('Checked', 'q1');
    const waiting = await getRun(svc, runs[1]!.id);
    // Stored while waiting: the predecessor's fields render empty (unless it finished within the delivery).
    if (waiting.status === 'waiting') assert.equal(waiting.gates.checkQuery, 'test_ready{execution="",status=""} > 0');
    const first = await final(runs[0]!.id);
    assert.equal(first.status, 'succeeded');
    const execution = (first.result as Record<string, unknown>)['execution'];
    assert.ok(execution !== undefined && execution !== '', 'the predecessor reports its execution');
    const dependent = await final(runs[1]!.id);
    assert.equal(dependent.gates.checkQuery, `test_ready{execution="${String(execution)}",status="succeeded"} > 0`);
  });

  it('a waiting run shows in the listing by status, with its predecessor', async () => {
    const runs = await fire('Gated', 'g4');
    const { body } = await request(svc.url)
      .get('/api/runs?status=waiting&rule=gated&limit=50')
      .set('Authorization', `Bearer ${TOKENS.viewer}`)
      .expect(200);
    const listed = (body.runs as RunBody[]).filter((r) => runs.some((x) => x.id === r.id));
    assert.equal(listed.length, 3);
    for (const r of listed) assert.equal(r.after?.runId, runs[0]!.id);
  });

  it('simulation shows which runs would wait and what each `when` needs; the metrics count waiting and skipped runs', async () => {
    const simulate = (message: object) =>
      request(svc.url).post('/api/simulate').set('Authorization', `Bearer ${TOKENS.viewer}`).send(message).expect(200);
    const firing = (await simulate(alertMessage([{ labels: { alertname: 'Ok', key: 'sim1' } }]))).body.alerts[0].actions;
    assert.deepEqual(
      firing.map((a: { outcome: string }) => a.outcome),
      ['would_queue', 'would_wait', 'would_wait', 'would_wait'],
    );
    assert.equal(firing[0].after, null);
    assert.deepEqual(firing[2].after, {
      ref: 'first',
      when: 'failed',
      needs: 'first failed',
      predecessor: { action: 'firing:0', createdByThisMessage: true, runId: null, status: null },
    });
    const lonely = (await simulate(alertMessage([{ labels: { alertname: 'Episode', key: 'sim2' }, status: 'resolved' }]))).body.alerts[0];
    assert.deepEqual(lonely.actions[0].after.predecessor, {
      action: 'firing:0',
      createdByThisMessage: false,
      runId: null,
      status: null,
      wouldSkip: 'no_predecessor',
    });
    const [act] = await fire('Episode', 'sim3');
    const known = (await simulate(alertMessage([{ labels: { alertname: 'Episode', key: 'sim3' }, status: 'resolved' }]))).body.alerts[0];
    assert.equal(known.actions[0].after.predecessor.runId, act!.id);
    assert.equal((await getRun(svc, act!.id)).dependents?.length, 0, 'the simulation created nothing');

    const runs = await fire('Ok', 'sim4');
    await final(runs[2]!.id);
    const metrics = (await request(svc.url).get('/metrics').expect(200)).text;
    assert.match(metrics, /remediator_runs_total\{rule="ok",remediation="test.count",status="waiting"\} [1-9]/);
    assert.match(metrics, /remediator_runs_total\{rule="ok",remediation="test.count",status="skipped"\} [1-9]/);
  });

  it('looks for the dependents of a finished run only when its rule has an action that waits for another', async () => {
    const runs = svc.services.runs;
    const original = runs.readyDependents;
    const asked: string[] = [];
    runs.readyDependents = (scope) => {
      asked.push(...(scope.predecessors ?? []));
      return original(scope);
    };
    try {
      const [plain] = await fire('Plain', 'p1');
      const [first] = await fire('Ok', 'p2');
      assert.equal((await final(plain!.id)).status, 'succeeded');
      assert.equal((await final(first!.id)).status, 'succeeded');
      assert.ok(asked.includes(first!.id), "the chained rule's run looked for its dependents");
      assert.ok(!asked.includes(plain!.id), "the plain rule's run did not");
    } finally {
      runs.readyDependents = original;
    }
  });

  it('moves on a dependent the finisher missed: the sweeper finds waiting runs whose predecessor is final', async () => {
    const runs = await fire('Gated', 'g5');
    // The decision lands without releasing its dependents, as when its replica dies right after the UPDATE.
    await svc.services.runs.transition(runs[0]!.id, ['pending_approval'], 'rejected', { type: 'rejected' }, { reason: 'rejected' });
    const finish = await final(runs[3]!.id);
    assert.deepEqual([finish.status, keyOf(finish)], ['succeeded', 'g5-x-rejected']);
  });
});

describe('chains across replicas and a killed worker', () => {
  const iso = isolation('chains_replicas');
  const matrix = `
defaults: { cooldown: 0 }
rules:${rule('Ok', 'remediation: test.count', KEY)}
  - name: slow
    matchers: ['alertname="Slow"']
    actions:
      - id: first
        remediation: test.slow
        params: { key: '{{ labels.key }}', firstMs: 60000 }
      - remediation: test.count
        after: first
        params: { key: '{{ labels.key }}-after-{{ after.result.execution }}' }
`;
  const redis = new Redis(REDIS_URL);
  after(async () => {
    redis.disconnect();
    await iso.drop();
  });

  it('a predecessor finishing on either of two replicas moves each dependent exactly once (20 episodes)', async (t) => {
    // Both replicas run workers and sweepers; a short sweep interval makes the sweepers race the finishers.
    const env = { TARGET_REDIS_URL: REDIS_URL, SWEEP_INTERVAL: '20ms' };
    const a = await startService(t, { databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix, env });
    const b = await startService(t, { databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix, env });
    const deliveries = await Promise.all(
      Array.from({ length: 20 }, (_, i) => deliver(i % 2 === 0 ? a : b, alertMessage([{ labels: { alertname: 'Ok', key: `r${i}` } }]))),
    );
    const dependents = deliveries.flatMap((runs) => [runs[1]!, runs[3]!]);
    const skippedOnes = deliveries.map((runs) => runs[2]!);
    await eventually(
      async () => {
        const { rows } = await a.services.pool.query<{ n: string }>(
          `SELECT count(*) AS n FROM runs WHERE status IN ('waiting', 'queued', 'running')`,
        );
        return rows[0]!.n === '0';
      },
      30_000,
      'every chain to settle',
    );
    for (const dep of dependents) {
      const run = await getRun(a, dep.id);
      assert.equal(run.status, 'succeeded', `${run.id} ${run.action}`);
      assert.equal(await redis.get(executionsKey(iso.prefix, 'count', dep.id)), '1', 'executed exactly once');
      assert.equal(run.events.filter((e) => e.type === 'predecessor_finished').length, 1, 'moved on exactly once');
    }
    for (const dep of skippedOnes) {
      const run = await getRun(b, dep.id);
      assert.deepEqual([run.status, run.reason], ['skipped', 'predecessor_succeeded']);
      assert.equal(run.events.filter((e) => e.type === 'skipped').length, 1);
    }
  });

  it('the predecessor of a dependent outlives its worker: after the takeover completes it, the dependent moves on', async (t) => {
    // The lease of a running run is the remediation timeout plus a margin: short here, so the takeover is quick.
    const env = { TARGET_REDIS_URL: REDIS_URL, STALLED_INTERVAL: '1s', REMEDIATION_TIMEOUT: '3s', SWEEP_INTERVAL: '200ms' };
    const api = await startService(t, { databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix, env: { ...env, ROLE: 'api' } });
    const matrixPath = writeMatrix(matrix);
    const child = await spawnWorker({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrixPath, env });
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
      removeMatrix(matrixPath);
    });
    const [first, dependent] = await deliver(api, alertMessage([{ labels: { alertname: 'Slow', key: 'k1' } }]));
    await eventually(async () => (await redis.get(executionsKey(iso.prefix, 'slow', first!.id))) === '1', 10_000, 'the first execution');
    assert.equal((await getRun(api, dependent!.id)).status, 'waiting');
    child.kill('SIGKILL');
    await once(child, 'exit');

    await startService(t, { databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix, env: { ...env, ROLE: 'worker' } });
    await settled(api, first!.id, 'succeeded', 20_000);
    const run = await settled(api, dependent!.id, 'succeeded', 10_000);
    assert.equal(keyOf(run), 'k1-after-2', 'rendered from the outcome of the execution that completed');
    assert.equal(await redis.get(executionsKey(iso.prefix, 'count', dependent!.id)), '1');
  });
});
