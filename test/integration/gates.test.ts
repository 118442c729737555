import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import request from 'supertest';
import { approve, deliver, getRun, reject, settled } from '../support/api.js';
import { answersWithCode } from '../support/assertions.js';
import { alertMessage, eventually, isolation, REDIS_URL, startService, TOKENS } from '../support/harness.js';
import { startNotifySink, type NotifySink } from '../support/notify-sink.js';
import { newRun } from '../support/runs.js';
import { executionsKey } from '../support/test-remediations.js';

const MATRIX = `
defaults: { approvalTimeout: 30m, cooldown: 0s }
rules:
  - name: approve
    matchers: ['alertname="NeedsApproval"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
    onResolved:
      - remediation: test.count
        params: { key: 'resolved-{{ labels.key }}' }
  - name: expiring
    matchers: ['alertname="Expiring"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        approval: required
        approvalTimeout: 1s
  - name: cooldown
    matchers: ['alertname="Cooldown"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        cooldown: 3s
  - name: limited
    matchers: ['alertname="Limited"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        limit: { max: 3, per: 1h }
  - name: failing
    matchers: ['alertname="Failing"']
    actions:
      - remediation: test.fail
        params: { key: '{{ labels.key }}' }
  - name: dry
    matchers: ['alertname="Dry"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
        dryRun: true
  - name: plain
    matchers: ['alertname="Plain"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }
`;

describe('safety gates across two replicas', (s) => {
  const iso = isolation('gates');
  let sink: NotifySink;
  let redis: Redis;
  let db: pg.Pool;
  const env = () => ({ TARGET_REDIS_URL: REDIS_URL, NOTIFY_WEBHOOK_URL: sink.url });

  before(async () => {
    sink = await startNotifySink();
    redis = new Redis(REDIS_URL);
    db = new pg.Pool({ connectionString: iso.databaseUrl, max: 2 });
  });
  // Two replicas of one deployment, started after the sink and closed before it.
  const a = startService(s, () => ({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: env() }));
  const b = startService(s, () => ({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: env() }));
  after(async () => {
    redis.disconnect();
    await db.end();
    await sink.close();
    await iso.drop();
  });

  const fire = (alertname: string, key: string, extra: { startsAt?: string; status?: 'firing' | 'resolved' } = {}) =>
    alertMessage([{ labels: { alertname, key }, ...extra }]);
  const run = (id: string) => getRun(a, id);
  const executions = async (id: string) => Number((await redis.get(executionsKey(iso.prefix, 'count', id))) ?? 0);

  it('lets exactly one of 20 concurrent approvals over two replicas win, and executes once', async () => {
    const [pending] = await deliver(a, fire('NeedsApproval', 'race'));
    assert.equal(pending!.status, 'pending_approval');
    const tokens = [TOKENS.approver, TOKENS.alice];
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => approve(i % 2 ? a : b, pending!.id, { token: tokens[i % 2]!, comment: `try ${i}` })),
    );
    const codes = answers.map((r) => r.status).sort();
    assert.deepEqual(codes, [200, ...Array(19).fill(409)]);
    const winner = answers.find((r) => r.status === 200)!.body;
    assert.ok(['bob', 'alice'].includes(winner.approval.decidedBy));
    const done = await settled(a, pending!.id, 'succeeded');
    assert.equal(await executions(pending!.id), 1);
    assert.equal(done.approval.decidedBy, winner.approval.decidedBy);
    assert.match(done.approval.comment!, /^try \d+$/);
    assert.equal(done.events.filter((e: { type: string }) => e.type === 'approved').length, 1);
    const late = await approve(a, pending!.id);
    assert.equal(late.status, 409);
  });

  it('notifies on-call of a pending approval with the exact command to approve it', async () => {
    const [pending] = await deliver(a, fire('NeedsApproval', 'notify'));
    const message = await eventually(async () => sink.messages.find((m) => m.text.includes(pending!.id)), 5000, 'the notification');
    assert.match(message.text, new RegExp(`curl -X POST .*/api/runs/${pending!.id}/approve`));
    assert.match(message.text, /needs approval/);
  });

  it('expires a pending approval at expiresAt with no request, refuses a late approval, and never runs it', async () => {
    const [pending] = await deliver(b, fire('Expiring', 'exp'));
    assert.equal(pending!.status, 'pending_approval');
    const expired = await settled(a, pending!.id, 'expired');
    assert.ok(Date.parse(expired.updatedAt) >= Date.parse(expired.approval.expiresAt!));
    const late = await approve(a, pending!.id);
    answersWithCode(late, 409, 'CONFLICT');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await executions(pending!.id), 0);
    assert.equal((await run(pending!.id)).status, 'expired');
  });

  it('cancels a pending run when its alert resolves, and creates the onResolved run', async () => {
    const startsAt = '2026-11-27T10:00:00.000000001Z';
    const [pending] = await deliver(a, fire('NeedsApproval', 'res', { startsAt }));
    const runs = await deliver(b, fire('NeedsApproval', 'res', { startsAt, status: 'resolved' }));
    const cancelled = await run(pending!.id);
    assert.equal(cancelled.status, 'cancelled');
    assert.equal(cancelled.reason, 'alert_resolved');
    assert.equal(runs.length, 1);
    assert.equal(runs[0]!.rule, 'approve');
    const onResolved = await settled(a, runs[0]!.id, 'succeeded');
    assert.deepEqual(onResolved.params, { key: 'resolved-res' });
    assert.equal(await executions(pending!.id), 0);
    const late = await approve(a, pending!.id);
    assert.equal(late.status, 409);
  });

  it('suppresses a second episode inside the cooldown, and runs one after it', async () => {
    const [first] = await deliver(a, fire('Cooldown', 'cd', { startsAt: '2026-11-27T11:00:00Z' }));
    await settled(a, first!.id, 'succeeded');
    const [second] = await deliver(b, fire('Cooldown', 'cd', { startsAt: '2026-11-27T11:05:00Z' }));
    assert.equal(second!.status, 'suppressed');
    assert.equal((await run(second!.id)).reason, 'cooldown');
    const other = await deliver(a, fire('Cooldown', 'other-target', { startsAt: '2026-11-27T11:05:00Z' }));
    assert.equal(other[0]!.status, 'queued', 'the cooldown is per target');
    await new Promise((r) => setTimeout(r, 3200));
    const [third] = await deliver(a, fire('Cooldown', 'cd', { startsAt: '2026-11-27T11:10:00Z' }));
    assert.equal(third!.status, 'queued');
    await settled(a, third!.id, 'succeeded');
    // Counters are per process: the replica that suppressed it counts it.
    const metrics = await request(b.url).get('/metrics').expect(200);
    assert.match(metrics.text, /remediator_suppressed_total\{remediation="test.count",reason="cooldown"\} [1-9]/);
  });

  it('executes exactly 3 of 10 targets delivered concurrently through two replicas under limit 3 per hour', async () => {
    const bodies = Array.from({ length: 10 }, (_, i) => fire('Limited', `t${i}`));
    const delivered = (await Promise.all(bodies.map((m, i) => deliver(i % 2 ? a : b, m)))).flat();
    const ids = delivered.map((r) => r.id);
    const final = await eventually(
      async () => {
        const all = await Promise.all(ids.map(run));
        return all.every((r) => ['succeeded', 'suppressed'].includes(r.status)) ? all : undefined;
      },
      15_000,
      'all limited runs to settle',
    );
    const ran = final.filter((r) => r.status === 'succeeded');
    const stopped = final.filter((r) => r.status === 'suppressed');
    assert.equal(ran.length, 3);
    assert.equal(stopped.length, 7);
    assert.ok(stopped.every((r) => r.reason === 'rate_limit'));
    const counts = await Promise.all(ids.map(executions));
    assert.equal(
      counts.reduce((s, n) => s + n, 0),
      3,
    );
  });

  it('records a dry run with its plan and touches nothing', async () => {
    const [dry] = await deliver(a, fire('Dry', 'dry'));
    const done = await settled(a, dry!.id, 'dry_run');
    assert.equal(done.plan, 'count an execution for dry');
    assert.equal(await executions(dry!.id), 0);
  });

  it('escalates after three failures in a row: the fourth run waits for approval', async () => {
    for (let i = 0; i < 3; i++) {
      const [r] = await deliver(a, fire('Failing', 'esc', { startsAt: `2026-11-27T12:0${i}:00Z` }));
      assert.equal(r!.status, 'queued');
      await settled(a, r!.id, 'failed');
    }
    const [fourth] = await deliver(b, fire('Failing', 'esc', { startsAt: '2026-11-27T12:09:00Z' }));
    assert.equal(fourth!.status, 'pending_approval');
    assert.equal((await run(fourth!.id)).reason, 'escalated');
    const [elsewhere] = await deliver(b, fire('Failing', 'other', { startsAt: '2026-11-27T12:09:00Z' }));
    assert.equal(elsewhere!.status, 'queued', 'escalation is per target');
    await eventually(
      async () => sink.messages.some((m) => m.text.includes(fourth!.id) && /escalated/.test(m.text)),
      5000,
      'escalation notice',
    );
  });

  it('a run its worker lost (stalled too often) counts towards escalation like a failure', async () => {
    const { runs, executor } = a.services;
    for (let i = 0; i < 3; i++) {
      // Running, as a worker left it: its job was given up by BullMQ, which is when the worker abandons it.
      const lost = { ...newRun(`lost${i}`), target: 'test/lost', params: { key: 'lost' } };
      await runs.insert([lost]);
      await runs.transition(lost.id, ['queued'], 'running', { type: 'started' }, { incrementAttempts: true, leaseMs: 60_000 });
      await executor.abandon(lost.id, 'job stalled more than allowable limit');
      const after = await run(lost.id);
      assert.deepEqual([after.status, after.reason], ['failed', 'worker_lost']);
      assert.equal(
        after.events.some((e) => e.type === 'escalation_armed'),
        i === 2,
        `escalation armed at the third lost run only (run ${i + 1})`,
      );
    }
    const [next] = await deliver(a, fire('Plain', 'lost'));
    assert.deepEqual([next!.status, (await run(next!.id)).reason], ['pending_approval', 'escalated']);
  });

  it('checks roles: viewers cannot approve or pause, no token is 401', async () => {
    const [pending] = await deliver(a, fire('NeedsApproval', 'roles'));
    await approve(a, pending!.id, { token: null }).expect(401);
    const forbidden = await approve(a, pending!.id, { token: TOKENS.viewer }).expect(403);
    answersWithCode(forbidden, 403, 'FORBIDDEN');
    await reject(a, pending!.id, { token: TOKENS.viewer }).expect(403);
    await request(a.url).post('/api/control/pause').set('Authorization', `Bearer ${TOKENS.approver}`).send({}).expect(403);
    await approve(a, '00000000-0000-4000-8000-000000000000').expect(404);
    const rejected = await reject(a, pending!.id, { reason: 'not now' }).expect(200);
    assert.equal(rejected.body.status, 'rejected');
    assert.equal(rejected.body.approval.decidedBy, 'bob');
    assert.equal(rejected.body.approval.comment, 'not now');
    await approve(a, pending!.id).expect(409);
  });

  it('simulates a message without writing anything', async () => {
    const count = async () => Number((await db.query('SELECT count(*) AS n FROM runs')).rows[0].n);
    const before = await count();
    const res = await request(a.url)
      .post('/api/simulate')
      .set('Authorization', `Bearer ${TOKENS.viewer}`)
      .send(
        alertMessage([
          { labels: { alertname: 'NeedsApproval', key: 'sim' } },
          { labels: { alertname: 'Cooldown', key: 'cd' } },
          { labels: { alertname: 'Nothing' } },
        ]),
      )
      .expect(200);
    assert.equal(res.body.alerts.length, 3);
    const [approval, cooldown, nothing] = res.body.alerts;
    assert.equal(approval.actions[0].outcome, 'would_wait_for_approval');
    assert.equal(approval.actions[0].plan, 'count an execution for sim');
    assert.equal(cooldown.actions[0].remediation, 'test.count');
    assert.equal(nothing.matched, false);
    assert.equal(await count(), before);
    const dup = await request(a.url)
      .post('/api/simulate')
      .set('Authorization', `Bearer ${TOKENS.viewer}`)
      .send(fire('Dry', 'dry'))
      .expect(200);
    assert.equal(dup.body.alerts[0].actions[0].outcome, 'duplicate');
  });
});

describe('kill switch and global budget', (s) => {
  const iso = isolation('pause');
  let redis: Redis;
  const MATRIX_GLOBAL = `${MATRIX}\nlimits: { global: { max: 2, per: 1h } }\n`;
  const options = (role: 'api' | 'worker') => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX_GLOBAL,
    env: { TARGET_REDIS_URL: REDIS_URL, ROLE: role },
  });

  const api = startService(s, options('api'));
  before(async () => {
    redis = new Redis(REDIS_URL);
  });
  after(async () => {
    redis.disconnect();
    await iso.drop();
  });

  const status = (id: string) => getRun(api, id);
  const admin = `Bearer ${TOKENS.admin}`;

  it('suppresses new runs while paused, holds queued jobs, and runs them after resume', async (t) => {
    const [queued] = await deliver(api, alertMessage([{ labels: { alertname: 'Plain', key: 'before-pause' } }]));
    assert.equal(queued!.status, 'queued');
    const paused = await request(api.url)
      .post('/api/control/pause')
      .set('Authorization', admin)
      .send({ reason: 'incident 42' })
      .expect(200);
    assert.equal(paused.body.paused, true);
    assert.equal(paused.body.reason, 'incident 42');
    assert.equal(paused.body.changedBy, 'root');
    const [during] = await deliver(api, alertMessage([{ labels: { alertname: 'Plain', key: 'during-pause' } }]));
    assert.equal(during!.status, 'suppressed');
    assert.equal((await status(during!.id)).reason, 'paused');

    // Closed by t.after once this test is done.
    await startService(t, options('worker'));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await status(queued!.id)).status, 'queued', 'nothing runs while paused');
    assert.equal(await redis.get(executionsKey(iso.prefix, 'count', queued!.id)), null);
    const control = await request(api.url).get('/api/control').set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
    assert.deepEqual({ paused: control.body.paused, dryRun: control.body.dryRun }, { paused: true, dryRun: false });
    const metrics = await request(api.url).get('/metrics').expect(200);
    assert.match(metrics.text, /remediator_paused 1/);

    await request(api.url).post('/api/control/resume').set('Authorization', admin).send({}).expect(200);
    await settled(api, queued!.id, 'succeeded', 10_000);
    assert.equal((await status(during!.id)).status, 'suppressed');
  });

  it('keeps the pause across a restart', async (t) => {
    await request(api.url).post('/api/control/pause').set('Authorization', admin).send({}).expect(200);
    const again = await startService(t, options('api'));
    const control = await request(again.url).get('/api/control').set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200);
    assert.equal(control.body.paused, true);
    await again.close();
    await request(api.url).post('/api/control/resume').set('Authorization', admin).send({}).expect(200);
  });

  it('suppresses runs once the global budget is spent', async (t) => {
    await startService(t, options('worker'));
    // The first test executed one run already: one more fits in the budget of 2.
    const [one] = await deliver(api, alertMessage([{ labels: { alertname: 'Plain', key: 'g1' } }]));
    await settled(api, one!.id, 'succeeded', 10_000);
    const [two] = await deliver(api, alertMessage([{ labels: { alertname: 'Plain', key: 'g2' } }]));
    assert.equal(two!.status, 'suppressed');
    assert.equal((await status(two!.id)).reason, 'global_budget');
  });
});
