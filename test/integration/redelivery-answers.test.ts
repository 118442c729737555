/**
 * Re-deliveries answered from the intake's recent answers: without a PostgreSQL lookup while that
 * cannot be stale, with the lookup as soon as it could be (the run's job taken or gone).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import request from 'supertest';
import { deliver, getRun, settled } from '../support/api.js';
import { alertMessage, isolation, REDIS_URL, startService, TOKENS, type TestService } from '../support/harness.js';

const MATRIX = `
defaults: { cooldown: 0s }
rules:
  - name: x
    matchers: ['alertname="X"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.k }}' }
`;

/** Counts the statements that look runs up by dedup key (alone, or with the insert) from now on. */
function countLookups(svc: TestService): { readonly n: number } {
  const runs = svc.services.runs;
  const counter = { n: 0 };
  const { findByKeys, insertOrFind } = runs;
  runs.findByKeys = (keys) => {
    counter.n++;
    return findByKeys(keys);
  };
  runs.insertOrFind = (decided) => {
    counter.n++;
    return insertOrFind(decided);
  };
  return counter;
}

const alertOf = (k: string) => alertMessage([{ labels: { alertname: 'X', k } }]);

describe('re-deliveries of queued runs (ROLE=api: nothing executes)', (s) => {
  const iso = isolation('answers_api');
  after(() => iso.drop());
  const svc = startService(s, () => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX,
    env: { ROLE: 'api', TARGET_REDIS_URL: REDIS_URL },
  }));

  it('answers re-deliveries of runs whose job still waits without looking them up, in one Redis check per batch', async () => {
    const messages = ['a1', 'a2', 'a3'].map(alertOf);
    const first = (await Promise.all(messages.map((m) => deliver(svc, m)))).flat();
    assert.deepEqual(
      first.map((r) => [r.status, r.duplicate]),
      messages.map(() => ['queued', false]),
    );
    const lookups = countLookups(svc);
    const again = (await Promise.all(messages.map((m) => deliver(svc, m)))).flat();
    assert.deepEqual(
      again.map((r) => [r.id, r.status, r.duplicate]),
      first.map((r) => [r.id, 'queued', true]),
    );
    assert.equal(lookups.n, 0, 'no PostgreSQL lookup for answers still true');
  });

  it('looks a re-delivery up again when its job is gone, and puts the job back', async () => {
    const message = alertOf('b1');
    const [run] = await deliver(svc, message);
    const { queue } = svc.services.queue;
    await (await queue.getJob(run!.id))!.remove();
    assert.equal(await queue.getJob(run!.id), undefined);
    const lookups = countLookups(svc);
    const [again] = await deliver(svc, message);
    assert.deepEqual([again!.id, again!.status, again!.duplicate], [run!.id, 'queued', true]);
    assert.equal(lookups.n, 1);
    assert.ok(await queue.getJob(run!.id), 'the job is back');
  });

  it('creates the new runs of a message that re-delivers some alerts along with new ones', async () => {
    const known = alertOf('c1');
    const [old] = await deliver(svc, known);
    const mixed = alertMessage([{ labels: { alertname: 'X', k: 'c1' } }, { labels: { alertname: 'X', k: 'c2' } }]);
    const runs = await deliver(svc, mixed);
    assert.equal(runs.length, 2);
    assert.deepEqual([runs[0]!.id, runs[0]!.duplicate], [old!.id, true]);
    assert.equal(runs[1]!.duplicate, false);
    assert.equal(runs[1]!.status, 'queued');
    assert.notEqual(runs[1]!.id, old!.id);
  });

  it('while paused, another replica answers a known alert with its run and stores a new one suppressed', async (t) => {
    const known = alertOf('e1');
    const [old] = await deliver(svc, known);
    const admin = { Authorization: `Bearer ${TOKENS.admin}` };
    await request(svc.url).post('/api/control/pause').set(admin).send({ reason: 'test' }).expect(200);
    try {
      const other = await startService(t, {
        databaseUrl: iso.databaseUrl,
        prefix: iso.prefix,
        matrix: MATRIX,
        env: { ROLE: 'api', TARGET_REDIS_URL: REDIS_URL },
      });
      const mixed = alertMessage([{ labels: { alertname: 'X', k: 'e1' } }, { labels: { alertname: 'X', k: 'e2' } }]);
      const runs = await deliver(other, mixed);
      assert.deepEqual(
        runs.map((r) => [r.status, r.duplicate]),
        [
          ['queued', true],
          ['suppressed', false],
        ],
      );
      assert.equal(runs[0]!.id, old!.id);
      assert.equal((await getRun(other, runs[1]!.id)).reason, 'paused');
    } finally {
      await request(svc.url).post('/api/control/resume').set(admin).send({}).expect(200);
    }
  });
});

describe('re-deliveries of runs that moved on (ROLE=all)', (s) => {
  const iso = isolation('answers_all');
  after(() => iso.drop());
  const svc = startService(s, () => ({
    databaseUrl: iso.databaseUrl,
    prefix: iso.prefix,
    matrix: MATRIX,
    env: { TARGET_REDIS_URL: REDIS_URL },
  }));

  it('answers the status a run reached after the first answer, then the final status from memory', async () => {
    const message = alertOf('d1');
    const [run] = await deliver(svc, message);
    assert.equal(run!.status, 'queued');
    await settled(svc, run!.id, 'succeeded');
    const lookups = countLookups(svc);
    const [again] = await deliver(svc, message);
    assert.deepEqual([again!.id, again!.status, again!.duplicate], [run!.id, 'succeeded', true]);
    assert.equal(lookups.n, 1, 'the queued answer was checked, found taken, and looked up');
    const [third] = await deliver(svc, message);
    assert.deepEqual([third!.id, third!.status, third!.duplicate], [run!.id, 'succeeded', true]);
    assert.equal(lookups.n, 1, 'a final status is answered from memory');
  });
});
