import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, parseDuration } from '../../src/kernel/duration.js';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

test('parses Prometheus-style durations to milliseconds', () => {
  const cases: Array<[string, number]> = [
    ['30s', 30 * S],
    ['5m', 5 * M],
    ['1h30m', H + 30 * M],
    ['1d', D],
    ['90d', 90 * D],
    ['250ms', 250],
    ['1m30s', M + 30 * S],
    ['1s500ms', 1500],
    ['2h0m5s', 2 * H + 5 * S],
    ['1w', 7 * D],
    ['1y', 365 * D],
    ['0s', 0],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

test('a bare 0 is the zero duration', () => {
  assert.equal(parseDuration('0'), 0);
});

test('rejects what is not a duration', () => {
  for (const text of ['', '5', '5x', '1m1h', '30s5m', '1h1h', '-1s', '+1s', ' 5m', '5m ', '1.5h', 'ms', 's', '5M', '1h 30m', '00']) {
    assert.equal(parseDuration(text), undefined, JSON.stringify(text));
  }
});

test('formats milliseconds back to a duration that parses to the same value', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(H + 30 * M), '1h30m');
  assert.equal(formatDuration(90 * D), '90d');
  assert.equal(formatDuration(250), '250ms');
  for (const ms of [250, 30 * S, 5 * M, H + 30 * M, D + H + M + S + 1, 90 * D]) {
    assert.equal(parseDuration(formatDuration(ms)), ms, String(ms));
  }
});
