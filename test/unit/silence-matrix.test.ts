/**
 * `silence` on a matrix action: loaded as milliseconds, refused at its file:line:col when it is no duration,
 * 0 or on an onResolved action, and kept with the run's gates at intake. Also the matchers a silence gets
 * from an alert's labels, and how a run's silences still open are read back from its timeline.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCatalogue } from '../../remediations/catalogue.js';
import { openSilences, silenceMatchers } from '../../src/alertmanager/silences.js';
import { ConfigError } from '../../src/errors.js';
import { decideAll } from '../../src/gates/at-intake.js';
import { parseMatrix } from '../../src/matrix/load.js';
import type { RunEvent } from '../../src/schemas/runs.js';
import { alert } from '../support/alerts.js';
import { createFakeCounters, fakeClock } from '../support/fake-counters.js';
import { testRemediations } from '../support/test-remediations.js';

const FILE = 'silence.yaml';
const catalogue = createCatalogue(testRemediations);
const parse = (text: string) => parseMatrix(text, FILE, catalogue);

/** 1-based line:column of the value of the first `key:` in `text`. */
function valueAt(text: string, key: string): string {
  const found = text.indexOf(`${key}: `);
  assert.ok(found >= 0, `fixture has no ${key}`);
  const index = found + key.length + 2;
  const before = text.slice(0, index).split('\n');
  return `${before.length}:${before[before.length - 1]!.length + 1}`;
}

function refused(text: string): ConfigError {
  try {
    parse(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  return assert.fail('expected the matrix to be refused');
}

/** A rule with one firing action of test.count (plus `extra` lines), and `resolved` as its onResolved actions. */
const matrix = (extra: string, resolved = '') => `rules:
  - name: silenced
    matchers: ['alertname="Silenced"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.key }}' }${extra}
${resolved}`;

describe('silence in the matrix', () => {
  it('is the action silenceMs, in milliseconds; without it the action silences nothing', () => {
    const m = parse(
      matrix(
        '\n        silence: 30m\n      - remediation: test.count\n        params: { key: b }\n      - remediation: test.count\n        params: { key: c }\n        silence: 1h30m',
      ),
    );
    const [thirty, none, ninety] = m.rules[0]!.actions;
    assert.equal(thirty!.silenceMs, 30 * 60_000);
    assert.equal(none!.silenceMs, undefined);
    assert.equal(ninety!.silenceMs, 90 * 60_000);
  });

  it('refuses what is not a duration at its line and column', () => {
    for (const bad of ['30 minutes', '5x', '1m1h', 'true', '30', '-5m']) {
      const text = matrix(`\n        silence: ${bad}`);
      const err = refused(text);
      assert.equal(err.variable, `${FILE}:${valueAt(text, 'silence')}`, `${bad}: ${err.message}`);
      assert.equal(err.variable, `${FILE}:7:18`, 'line 7, where silence is, column 18, where its value starts');
      assert.match(err.message, /rules\[0\]\.actions\[0\]\.silence/, err.message);
    }
  });

  it('refuses 0, which would silence nothing', () => {
    for (const zero of ['0', '0s']) {
      const text = matrix(`\n        silence: ${zero}`);
      const err = refused(text);
      assert.equal(err.variable, `${FILE}:${valueAt(text, 'silence')}`);
      assert.match(err.message, /actions\[0\]\.silence: must be more than 0/, err.message);
    }
  });

  it('refuses silence on an onResolved action: a resolved alert has nothing to silence', () => {
    const text = matrix('', '    onResolved:\n      - remediation: test.count\n        params: { key: r }\n        silence: 10m\n');
    const err = refused(text);
    assert.equal(err.variable, `${FILE}:${valueAt(text, 'silence')}`);
    assert.match(err.message, /rules\[0\]\.onResolved\[0\]\.silence: .*firing actions/, err.message);
  });

  it('is kept with the run at intake (gates.silenceMs), and absent from a run whose action has none', async () => {
    const m = parse(matrix('\n        silence: 45m\n      - remediation: test.count\n        params: { key: plain }'));
    const counters = createFakeCounters({ clock: fakeClock() });
    const ctx = { counters, paused: false, dryRun: false, configured: new Set(['targetRedis'] as const) };
    const labels = { alertname: 'Silenced', key: 'k' };
    const [silenced, plain] = await decideAll(
      m.rules[0]!.actions.map((action) => ({ action, alert: alert(labels) })),
      ctx,
    );
    assert.equal(silenced!.status, 'queued');
    assert.equal(silenced!.gates.silenceMs, 45 * 60_000);
    assert.equal(plain!.status, 'queued');
    assert.equal('silenceMs' in plain!.gates, false, JSON.stringify(plain!.gates));
  });
});

describe('the silence of a run', () => {
  it('matches every label of the alert, equal and not regex, sorted by name; empty values are left out', () => {
    assert.deepEqual(silenceMatchers({ severity: 'critical', alertname: 'Down', provider: 'openai "eu"', empty: '' }), [
      { name: 'alertname', value: 'Down', isRegex: false, isEqual: true },
      { name: 'provider', value: 'openai "eu"', isRegex: false, isEqual: true },
      { name: 'severity', value: 'critical', isRegex: false, isEqual: true },
    ]);
  });

  it('is found again in the timeline: created and not expired since', () => {
    const ev = (type: string, detail: Record<string, unknown>): RunEvent => ({ at: '2026-11-27T12:00:00.000Z', type, detail });
    const events = [
      ev('started', { attempt: 1 }),
      ev('silenced', { silenceId: 'a', alertmanager: 'http://am1:9093', endsAt: '2026-11-27T12:30:00.000Z' }),
      ev('silence_failed', { errors: ['x'] }),
      ev('silenced', { silenceId: 'b', alertmanager: 'http://am2:9093', endsAt: '2026-11-27T12:31:00.000Z' }),
      ev('silence_expired', { silenceId: 'a', reason: 'not_started' }),
      ev('silence_expire_failed', { silenceId: 'b', reason: 'failed' }),
    ];
    assert.deepEqual(openSilences(events), [{ id: 'b', alertmanager: 'http://am2:9093', endsAt: '2026-11-27T12:31:00.000Z' }]);
    assert.deepEqual(openSilences([...events, ev('silence_expired', { silenceId: 'b', reason: 'failed' })]), []);
    assert.deepEqual(openSilences([]), []);
  });
});
