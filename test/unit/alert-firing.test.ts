/** The re-check before acting (`createFiringGate`) over a scripted Alertmanager check, and its place among the gates at execution. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCatalogue } from '../../remediations/catalogue.js';
import { AlertmanagerUnavailable, type AlertAnswer, type AlertCheck, type AlertRef } from '../../src/alertmanager/check.js';
import { createFiringGate, type FiringVerdict } from '../../src/gates/alert-firing.js';
import { createExecutionGates } from '../../src/gates/at-execution.js';
import type { Run } from '../../src/schemas/runs.js';
import { stored } from '../support/runs.js';
import { createFakeCounters, fakeClock } from '../support/fake-counters.js';
import { testRemediations } from '../support/test-remediations.js';

/** A queued firing run of test.count, with `gates` over the defaults. */
const run = (over: Partial<Run> = {}, gates: Partial<Run['gates']> = {}): Run => {
  const base = stored(over);
  return { ...base, gates: { ...base.gates, ...gates } };
};

/** A check that answers from `script` in turn (an answer, or a failure), recording what it was asked. */
function scripted(script: Array<AlertAnswer | Error>) {
  const asked: AlertRef[] = [];
  const check: AlertCheck = {
    urls: ['http://am:9093'],
    async isFiring(ref) {
      asked.push(ref);
      const next = script.shift() ?? new AlertmanagerUnavailable(['http://am:9093: ECONNREFUSED']);
      if (next instanceof Error) throw next;
      return next;
    },
  };
  return { check, asked };
}

function gate(check: AlertCheck | undefined, timeoutMs = 5000) {
  const events: Array<{ type: string; detail: Record<string, unknown> }> = [];
  const confirm = createFiringGate({
    check,
    timeoutMs,
    shutdown: new AbortController().signal,
    async addEvent(_id, type, detail) {
      events.push({ type, detail });
    },
  });
  return { confirm, events };
}

const FIRING: AlertAnswer = { firing: true, source: 'http://am:9093', state: 'active' };
const GONE: AlertAnswer = { firing: false, source: 'http://am:9093', state: null };
const down = () => new AlertmanagerUnavailable(['http://am:9093: ECONNREFUSED']);

describe('the re-check that the alert still fires', () => {
  it('asks with the run alert episode and records the answer', async () => {
    const { check, asked } = scripted([FIRING]);
    const { confirm, events } = gate(check);
    const r = run();
    assert.deepEqual(await confirm(r), { kind: 'firing' });
    assert.deepEqual(asked, [{ fingerprint: r.alert.fingerprint, startsAt: r.alert.startsAt, labels: r.alert.labels }]);
    assert.deepEqual(events, [
      { type: 'alert_checked', detail: { firing: true, state: 'active', alertmanager: 'http://am:9093', attempt: 1 } },
    ]);
  });

  it('answers resolved when Alertmanager no longer lists the episode', async () => {
    const { confirm, events } = gate(scripted([GONE]).check);
    assert.deepEqual(await confirm(run()), { kind: 'resolved' });
    assert.equal(events[0]!.detail['firing'], false);
  });

  it('is not asked without ALERTMANAGER_URL, for onResolved runs, or with check.alertFiring false', async () => {
    const { check, asked } = scripted([FIRING, FIRING, FIRING]);
    assert.deepEqual(await gate(undefined).confirm(run()), { kind: 'unchecked' });
    assert.deepEqual(await gate(check).confirm(run({ phase: 'resolved' })), { kind: 'unchecked' });
    assert.deepEqual(await gate(check).confirm(run({}, { alertFiring: false })), { kind: 'unchecked' });
    assert.deepEqual(asked, []);
  });

  it('retries while no Alertmanager answers and takes the answer that comes in time', async () => {
    const { check, asked } = scripted([down(), FIRING]);
    const { confirm, events } = gate(check, 5000);
    assert.deepEqual(await confirm(run()), { kind: 'firing' });
    assert.equal(asked.length, 2);
    assert.deepEqual(
      events.map((e) => e.type),
      ['alert_check_failed', 'alert_checked'],
    );
    assert.deepEqual(events[0]!.detail['errors'], ['http://am:9093: ECONNREFUSED']);
  });

  it('gives up after CHECK_TIMEOUT: skip by default, proceed when the action says so', async () => {
    const started = Date.now();
    const skip = gate(scripted([]).check, 1500);
    assert.deepEqual(await skip.confirm(run()), { kind: 'unavailable', proceed: false });
    assert.ok(Date.now() - started >= 1500, 'retried for the whole timeout');
    const last = skip.events.at(-1)!;
    assert.equal(last.type, 'alert_check_failed');
    assert.equal(last.detail['then'], 'skip');
    assert.ok(skip.events.length >= 2, 'retried at least once');
    const proceed = gate(scripted([]).check, 100);
    assert.deepEqual(await proceed.confirm(run({}, { onCheckError: 'proceed' })), { kind: 'unavailable', proceed: true });
    assert.equal(proceed.events.at(-1)!.detail['then'], 'proceed');
  });

  it('sits among the gates at execution: after the kill switch, before the counters are taken', async () => {
    const counters = createFakeCounters({ clock: fakeClock() });
    const verdicts: FiringVerdict[] = [];
    const gates = createExecutionGates({
      counters,
      queue: { executedResult: async () => undefined },
      catalogue: createCatalogue(testRemediations),
      configured: new Set(['targetRedis']),
      confirmFiring: async () => verdicts.shift() ?? { kind: 'firing' },
    });
    const found = (r: Run, paused = false) => ({ run: r, episodeResolved: false, paused, leaseLeftMs: 0 });
    verdicts.push({ kind: 'resolved' });
    assert.deepEqual(await gates(found(run())), { kind: 'cancel', reason: 'alert_resolved', resolveEpisode: true });
    verdicts.push({ kind: 'unavailable', proceed: false });
    assert.deepEqual(await gates(found(run())), { kind: 'skip', reason: 'check_unavailable' });
    assert.deepEqual(counters.calls, [], 'nothing taken for a run that does not act');
    verdicts.push({ kind: 'unavailable', proceed: true });
    assert.equal((await gates(found(run()))).kind, 'execute');
    verdicts.push({ kind: 'resolved' });
    assert.deepEqual(await gates(found(run(), true)), { kind: 'paused' }, 'the kill switch comes first');
  });
});
