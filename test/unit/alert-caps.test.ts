import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  capAlert,
  cutValue,
  DEFAULT_ALERT_CAPS,
  MAX_NAME_BYTES,
  storedAlertBytes,
  TRUNCATED_KEY,
  truncationMarker,
  type AlertCaps,
} from '../../src/intake/caps.js';
import type { AlertSnapshot } from '../../src/schemas/runs.js';

const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const base = (labels: Record<string, string>, annotations: Record<string, string> = {}): AlertSnapshot => ({
  fingerprint: '0123456789abcdef',
  status: 'firing',
  startsAt: '2026-11-27T13:31:39.202045328Z',
  endsAt: '0001-01-01T00:00:00Z',
  generatorURL: 'http://prometheus:9090/graph?g0.expr=up',
  labels,
  annotations,
});
const numbered = (prefix: string, n: number, value: (i: number) => string) =>
  Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${String(i).padStart(3, '0')}`, value(i)]));

describe('capAlert: what of an alert a run stores', () => {
  it('keeps an alert within the caps as it is, the same object', () => {
    const alert = base({ alertname: 'DiskFull', pod: 'web-1' }, { summary: 'disk full' });
    const capped = capAlert(alert, DEFAULT_ALERT_CAPS);
    assert.equal(capped.truncated, false);
    assert.equal(capped.alert, alert);
  });

  it('cuts a value over MAX_LABEL_VALUE to its beginning and a marker naming the bytes dropped, within the cap', () => {
    const pod = 'p'.repeat(4 * 1024 * 1024);
    const { alert, truncated } = capAlert(base({ alertname: 'Huge', pod }), DEFAULT_ALERT_CAPS);
    assert.equal(truncated, true);
    const stored = alert.labels['pod']!;
    assert.ok(bytes(stored) <= 4096, `${bytes(stored)} bytes`);
    const m = /^(p+)…\[truncated (\d+) bytes\]$/.exec(stored);
    assert.ok(m, stored.slice(-60));
    assert.equal(m[1]!.length + Number(m[2]), pod.length, 'kept and dropped make up the value');
    assert.ok(m[1]!.length > 4000, 'as much of the value as fits is kept');
    assert.equal(alert.labels['alertname'], 'Huge');
    assert.equal(alert.labels[TRUNCATED_KEY], undefined, 'no label was dropped');
  });

  it('never splits a character: a cut multi-byte value is valid UTF-8 within the cap', () => {
    for (const ch of ['é', '€', '😀']) {
      const cut = cutValue(ch.repeat(3000), 100);
      assert.ok(bytes(cut) <= 100, `${ch}: ${bytes(cut)} bytes`);
      assert.ok(!cut.includes('\uFFFD'), `${ch}: no replacement character`);
      const head = cut.slice(0, cut.indexOf('…'));
      assert.equal(head, ch.repeat([...head].length), `${ch}: whole characters only`);
      assert.match(cut, /…\[truncated \d+ bytes\]$/);
    }
    assert.equal(cutValue('short', 100), 'short');
  });

  it('keeps MAX_LABELS labels, alertname first then by name, and marks how many were dropped', () => {
    const labels = { ...numbered('l', 64, (i) => `v${i}`), alertname: 'Many' };
    const { alert, truncated } = capAlert(base(labels), DEFAULT_ALERT_CAPS);
    assert.equal(truncated, true);
    assert.equal(Object.keys(alert.labels).length, 65, '64 labels and the marker');
    assert.equal(alert.labels['alertname'], 'Many');
    assert.equal(alert.labels[TRUNCATED_KEY], '1 label dropped');
    assert.equal(alert.labels['l063'], undefined, 'the last by name is dropped');
    assert.equal(alert.labels['l062'], 'v62');
    const five = capAlert(base({ alertname: 'A', ...numbered('x', 9, () => 'v') }), { ...DEFAULT_ALERT_CAPS, maxLabels: 5 });
    assert.deepEqual(Object.keys(five.alert.labels), ['alertname', 'x000', 'x001', 'x002', 'x003', TRUNCATED_KEY]);
    assert.equal(five.alert.labels[TRUNCATED_KEY], '5 labels dropped');
  });

  it('caps annotations the same way, with their own marker', () => {
    const { alert } = capAlert(
      base(
        { alertname: 'A' },
        numbered('a', 70, () => 'text'),
      ),
      DEFAULT_ALERT_CAPS,
    );
    assert.equal(Object.keys(alert.annotations).length, 65);
    assert.equal(alert.annotations[TRUNCATED_KEY], '6 annotations dropped');
    assert.equal(alert.labels[TRUNCATED_KEY], undefined);
  });

  it('drops a label whose name is longer than MAX_NAME_BYTES, counted in the marker', () => {
    const long = 'n'.repeat(MAX_NAME_BYTES + 1);
    const { alert } = capAlert(base({ alertname: 'A', [long]: 'v', ok: 'v' }), DEFAULT_ALERT_CAPS);
    assert.deepEqual(alert.labels, { alertname: 'A', ok: 'v', [TRUNCATED_KEY]: '1 label dropped' });
  });

  it('over MAX_ALERT_SIZE: shortens the longest annotations first, then labels, each only as much as needed', () => {
    // 64 labels and 64 annotations of 4 KiB: about 520 KiB.
    const labels = { alertname: 'Wide', ...numbered('l', 63, (i) => String(i % 10).repeat(4096)) };
    const annotations = numbered('a', 64, (i) => String(i % 10).repeat(4096 - i));
    const { alert } = capAlert(base(labels, annotations), DEFAULT_ALERT_CAPS);
    assert.ok(storedAlertBytes(alert) <= 64 * 1024, `${storedAlertBytes(alert)} bytes`);
    assert.equal(Object.keys(alert.labels).length, 64, 'no label dropped');
    assert.equal(Object.keys(alert.annotations).length, 64, 'no annotation dropped');
    for (const [k, v] of Object.entries(alert.annotations)) assert.ok(bytes(v) <= 64, `annotation ${k} shortened: ${bytes(v)} bytes`);
    const shortened = Object.values(alert.labels).filter((v) => v.includes('…[truncated'));
    assert.ok(shortened.length > 0 && shortened.length < 63, `${shortened.length} labels shortened, the others whole`);
    assert.equal(alert.labels['alertname'], 'Wide');

    // Only annotations too long: the labels stay whole, and only the longest annotation is shortened.
    const one = capAlert(base({ alertname: 'A', pod: 'web-1' }, { big: 'b'.repeat(4000), small: 's'.repeat(3000) }), {
      ...DEFAULT_ALERT_CAPS,
      maxAlertBytes: 6000,
    });
    assert.deepEqual(one.alert.labels, { alertname: 'A', pod: 'web-1' });
    assert.equal(one.alert.annotations['small'], 's'.repeat(3000));
    assert.match(one.alert.annotations['big']!, /^b+…\[truncated \d+ bytes\]$/);
    assert.ok(storedAlertBytes(one.alert) <= 6000);
    assert.ok(storedAlertBytes(one.alert) > 5800, 'cut no more than needed');
  });

  it('drops whole entries when shortening values is not enough, and caps generatorURL like a value', () => {
    const caps: AlertCaps = { maxLabels: 64, maxValueBytes: 4096, maxAlertBytes: 4096 };
    const name = (p: string, i: number) => `${p}${String(i).padStart(3, '0')}${'n'.repeat(200)}`;
    const labels = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [name('l', i), 'v'.repeat(100)]));
    const annotations = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [name('a', i), 'w'.repeat(100)]));
    const alert = { ...base({ alertname: 'Names', ...labels }, annotations), generatorURL: `http://x/${'g'.repeat(10_000)}` };
    const capped = capAlert(alert, caps).alert;
    assert.ok(storedAlertBytes(capped) <= 4096, `${storedAlertBytes(capped)} bytes`);
    assert.equal(capped.labels['alertname'], 'Names');
    assert.match(capped.annotations[TRUNCATED_KEY]!, /^\d+ annotations dropped$/);
    assert.ok(bytes(capped.generatorURL!) <= 4096);
    assert.match(capped.generatorURL!, /truncated \d+ bytes\]$/);
  });

  it('around the caps: an alert is kept as it is exactly when it fits, and every stored alert fits', () => {
    const caps: AlertCaps = { maxLabels: 4, maxValueBytes: 100, maxAlertBytes: 700 };
    // A deterministic stream of sizes around the caps, with multi-byte and escaped characters.
    let seed = 7;
    const next = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const chars = ['a', 'é', '€', '"', '\n', '😀'];
    const text = (n: number) => Array.from({ length: n }, () => chars[next(chars.length)]).join('');
    let kept = 0;
    for (let i = 0; i < 2000; i++) {
      const labels = Object.fromEntries(Array.from({ length: 1 + next(5) }, (_, j) => [`l${j}`, text(next(60))]));
      const annotations = Object.fromEntries(Array.from({ length: next(4) }, (_, j) => [`a${j}`, text(next(70))]));
      const alert = base(labels, annotations);
      const fits =
        Object.keys(labels).length <= caps.maxLabels &&
        Object.keys(annotations).length <= caps.maxLabels &&
        [...Object.values(labels), ...Object.values(annotations), alert.generatorURL!].every((v) => bytes(v) <= caps.maxValueBytes) &&
        storedAlertBytes(alert) <= caps.maxAlertBytes;
      const capped = capAlert(alert, caps);
      assert.equal(capped.truncated, !fits, `alert ${i}`);
      if (fits) assert.equal(capped.alert, alert);
      if (fits) kept++;
      assert.ok(storedAlertBytes(capped.alert) <= caps.maxAlertBytes, `alert ${i}: ${storedAlertBytes(capped.alert)} bytes`);
    }
    // Both sides of the caps were met.
    assert.ok(kept > 200 && kept < 1800, `${kept} of 2000 kept as they were`);
  });

  it('names the marker with the bytes dropped', () => {
    assert.equal(truncationMarker(4190), '…[truncated 4190 bytes]');
  });
});
