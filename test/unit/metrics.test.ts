import assert from 'node:assert/strict';
import { test } from 'node:test';
import { boundedLabel } from '../../src/metrics.js';

test('a bounded label keeps its first values apart and counts every later one as other', () => {
  const label = boundedLabel(2);
  assert.deepEqual(['a', 'b', 'a', 'c', 'b', 'd'].map(label), ['a', 'b', 'a', 'other', 'b', 'other']);
});
