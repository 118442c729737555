import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compileParams, compileTemplate, type TemplateScope } from '../../src/matrix/template.js';

const scope: TemplateScope = {
  labels: { alertname: 'ConduitProviderDown', provider: 'openai', by: '2' },
  annotations: { summary: 'Provider openai down' },
  alert: { fingerprint: '54e69878f8d451e8', startsAt: '2026-11-27T13:31:39.202045328Z', status: 'firing' },
};

test('renders labels, annotations and alert fields', () => {
  assert.equal(compileTemplate('{{ labels.provider }}')(scope), 'openai');
  assert.equal(compileTemplate('{{annotations.summary}}')(scope), 'Provider openai down');
  assert.equal(compileTemplate('{{ alert.fingerprint }}')(scope), '54e69878f8d451e8');
  assert.equal(compileTemplate('{{ alert.startsAt }}')(scope), '2026-11-27T13:31:39.202045328Z');
  assert.equal(compileTemplate('{{ alert.status }}')(scope), 'firing');
  assert.equal(
    compileTemplate('Provider {{ labels.provider }} disabled: {{ annotations.summary }} ({{alert.fingerprint}})')(scope),
    'Provider openai disabled: Provider openai down (54e69878f8d451e8)',
  );
});

test('a compiled template renders each alert on its own', () => {
  const render = compileTemplate('p={{ labels.provider }}');
  assert.equal(render(scope), 'p=openai');
  assert.equal(render({ ...scope, labels: { provider: 'anthropic' } }), 'p=anthropic');
});

test('a missing label or annotation renders as the empty string', () => {
  assert.equal(compileTemplate('[{{ labels.nope }}]')(scope), '[]');
  assert.equal(compileTemplate('[{{ annotations.description }}]')(scope), '[]');
});

test('a string without references renders to itself', () => {
  assert.equal(compileTemplate('cache:*')(scope), 'cache:*');
  assert.equal(compileTemplate('')(scope), '');
  assert.equal(compileTemplate('a { b } c')(scope), 'a { b } c');
});

test('unknown references are refused when the template compiles', () => {
  for (const text of [
    '{{ labels }}',
    '{{ foo.bar }}',
    '{{ alert.nope }}',
    '{{ alert }}',
    '{{ labels.a.b }}',
    '{{ }}',
    '{{ .labels.x }}',
    '{{ labels.provider | upper }}',
    'x {{ $labels.provider }}',
  ]) {
    assert.throws(() => compileTemplate(text), Error, text);
  }
  assert.throws(() => compileTemplate('{{ alert.nope }}'), /alert\.nope/);
  assert.throws(() => compileTemplate('{{ foo.bar }}'), /foo\.bar/);
});

test('unbalanced braces are refused when the template compiles', () => {
  for (const text of [
    '{{ labels.provider',
    'labels.provider }}',
    '{{ labels.provider }} }}',
    'a {{ b',
    '{{{{ labels.provider }}',
    'x }} {{ labels.provider }}',
  ]) {
    assert.throws(() => compileTemplate(text), /unbalanced|not a template reference/, text);
  }
});

test('params: every string in nested objects and arrays is rendered, other values are kept', () => {
  const render = compileParams({
    provider: '{{ labels.provider }}',
    by: 2,
    force: true,
    nothing: null,
    limits: { memory: '4Gi', note: 'for {{ labels.provider }}' },
    list: ['{{ alert.fingerprint }}', 3, { deep: '{{ annotations.summary }}' }],
  });
  assert.deepEqual(render(scope), {
    provider: 'openai',
    by: 2,
    force: true,
    nothing: null,
    limits: { memory: '4Gi', note: 'for openai' },
    list: ['54e69878f8d451e8', 3, { deep: 'Provider openai down' }],
  });
});

test('params: a rendered label stays a string, even when it looks like a number', () => {
  assert.deepEqual(compileParams({ by: '{{ labels.by }}' })(scope), { by: '2' });
});

test('params: renders fresh objects each time', () => {
  const render = compileParams({ limits: { memory: '{{ labels.provider }}' } });
  const a = render(scope);
  (a['limits'] as Record<string, unknown>)['memory'] = 'changed';
  assert.deepEqual(render(scope), { limits: { memory: 'openai' } });
});

test('params: a bad reference anywhere in the tree fails at compile time', () => {
  assert.throws(() => compileParams({ a: { b: ['ok', '{{ labels }}'] } }), /labels/);
  assert.throws(() => compileParams({ a: '{{ labels.x' }), /unbalanced/);
});

test('a reference named like an Object property renders empty when the alert lacks it', () => {
  const render = compileTemplate('[{{ labels.constructor }}][{{ annotations.toString }}]');
  assert.equal(render({ labels: {}, annotations: {}, alert: { fingerprint: 'f', startsAt: 's', status: 'firing' } }), '[][]');
});

const AFTER = { after: true } as const;
const withAfter = (after: TemplateScope['after']): TemplateScope => ({ ...scope, after });

test('after: a reference to the predecessor is refused unless the action has after', () => {
  for (const text of [
    '{{ after.status }}',
    '{{ after.reason }}',
    '{{ after.error }}',
    '{{ after.result.summary }}',
    '{{ after.result.a.b }}',
    'x {{ labels.provider }} {{after.status}}',
    '{{ after }}',
    '{{ after.nope }}',
  ]) {
    assert.throws(() => compileTemplate(text), /needs `after`/, text);
    assert.throws(() => compileTemplate(text, {}), /needs `after`/, text);
    assert.throws(() => compileTemplate(text, { after: false }), /needs `after`/, text);
  }
  assert.throws(() => compileTemplate('{{ after.result.summary }}'), /"\{\{ after\.result\.summary \}\}" needs `after`/);
  assert.throws(() => compileParams({ a: { b: ['ok', '{{ after.status }}'] } }), /after\.status.*needs `after`/);
  assert.throws(() => compileParams({ text: '{{ after.result.summary }}' }, { after: false }), /needs `after`/);
});

test('after: only status, reason, error and result.X are predecessor fields', () => {
  for (const text of [
    '{{ after }}',
    '{{ after.result }}',
    '{{ after.nope }}',
    '{{ after.status.x }}',
    '{{ after.result. }}',
    '{{ after.result..x }}',
    '{{ after.result.a-b }}',
    '{{ after.result.0 }}',
    '{{ after.results.x }}',
  ]) {
    assert.throws(() => compileTemplate(text, AFTER), /is not a predecessor field/, text);
  }
  assert.throws(() => compileTemplate('{{ foo.bar }}', AFTER), /not a template reference.*after\.status/);
  assert.throws(() => compileTemplate('{{ after.status', AFTER), /unbalanced/);
});

test('after: status, reason, error and result fields render as text', () => {
  const outcome = withAfter({
    status: 'failed',
    reason: 'test_failed',
    error: 'connection test failed',
    result: { summary: 'Tested provider openai.', count: 3, zero: 0, ok: true, no: false, empty: '', nothing: null },
  });
  assert.equal(compileTemplate('{{ after.status }}', AFTER)(outcome), 'failed');
  assert.equal(compileTemplate('{{after.reason}}', AFTER)(outcome), 'test_failed');
  assert.equal(compileTemplate('{{ after.error }}', AFTER)(outcome), 'connection test failed');
  assert.equal(compileTemplate('{{ after.result.summary }}', AFTER)(outcome), 'Tested provider openai.');
  assert.equal(compileTemplate('{{ after.result.count }}', AFTER)(outcome), '3');
  assert.equal(compileTemplate('{{ after.result.zero }}', AFTER)(outcome), '0');
  assert.equal(compileTemplate('{{ after.result.ok }}/{{ after.result.no }}', AFTER)(outcome), 'true/false');
  assert.equal(compileTemplate('[{{ after.result.empty }}]', AFTER)(outcome), '[]');
  assert.equal(compileTemplate('[{{ after.result.nothing }}]', AFTER)(outcome), '[]');
  assert.equal(
    compileTemplate('{{ labels.provider }}: {{ after.status }} ({{ after.reason }}) {{ after.result.summary }}', AFTER)(outcome),
    'openai: failed (test_failed) Tested provider openai.',
  );
});

test('after: null reason and error render as the empty string', () => {
  const outcome = withAfter({ status: 'succeeded', reason: null, error: null, result: { summary: 'ok' } });
  assert.equal(compileTemplate('[{{ after.status }}][{{ after.reason }}][{{ after.error }}]', AFTER)(outcome), '[succeeded][][]');
});

test('after: a dotted result path reaches nested fields; objects and arrays render as JSON', () => {
  const outcome = withAfter({
    status: 'succeeded',
    reason: null,
    error: null,
    result: { a: { b: 'deep', c: { d: 7 } }, list: [1, 'two'], obj: { x: 1, y: [true] } },
  });
  assert.equal(compileTemplate('{{ after.result.a.b }}', AFTER)(outcome), 'deep');
  assert.equal(compileTemplate('{{ after.result.a.c.d }}', AFTER)(outcome), '7');
  assert.equal(compileTemplate('{{ after.result.a.c }}', AFTER)(outcome), '{"d":7}');
  assert.equal(compileTemplate('{{ after.result.list }}', AFTER)(outcome), '[1,"two"]');
  assert.equal(compileTemplate('{{ after.result.obj }}', AFTER)(outcome), '{"x":1,"y":[true]}');
});

test('after: a missing predecessor scope, result or field renders as the empty string', () => {
  const refs = '[{{ after.status }}][{{ after.reason }}][{{ after.error }}][{{ after.result.summary }}][{{ after.result.a.b }}]';
  const render = compileTemplate(refs, AFTER);
  assert.equal(render(scope), '[][][][][]');
  assert.equal(render(withAfter(undefined)), '[][][][][]');
  assert.equal(
    render(withAfter({ status: 'skipped', reason: 'predecessor_failed', error: null, result: null })),
    '[skipped][predecessor_failed][][][]',
  );
  assert.equal(render(withAfter({ status: 'succeeded', reason: null, error: null, result: {} })), '[succeeded][][][][]');
  const through = withAfter({ status: 'succeeded', reason: null, error: null, result: { a: 'text', summary: null } });
  assert.equal(render(through), '[succeeded][][][][]');
  assert.equal(
    compileTemplate('[{{ after.result.a.b }}]', AFTER)(withAfter({ status: 'succeeded', reason: null, error: null, result: { a: null } })),
    '[]',
  );
  assert.equal(
    compileTemplate(
      '[{{ after.result.a.b.c }}]',
      AFTER,
    )(withAfter({ status: 'succeeded', reason: null, error: null, result: { a: { b: 5 } } })),
    '[]',
  );
});

test('after: a result field named like an Object property renders empty when the result lacks it', () => {
  const render = compileTemplate('[{{ after.result.constructor }}][{{ after.result.a.toString }}][{{ after.result.__proto__ }}]', AFTER);
  assert.equal(render(withAfter({ status: 'succeeded', reason: null, error: null, result: { a: {} } })), '[][][]');
});

test('after: params render the predecessor outcome in nested strings, keeping other values', () => {
  const render = compileParams(
    { text: 'Provider {{ labels.provider }} disabled ({{ after.result.summary }})', n: 2, meta: { s: ['{{ after.status }}'] } },
    AFTER,
  );
  const outcome = withAfter({ status: 'succeeded', reason: null, error: null, result: { summary: 'Disabled provider openai.' } });
  assert.deepEqual(render(outcome), { text: 'Provider openai disabled (Disabled provider openai.)', n: 2, meta: { s: ['succeeded'] } });
  assert.deepEqual(render(scope), { text: 'Provider openai disabled ()', n: 2, meta: { s: [''] } });
});

test('after: the option keeps labels, annotations and alert references working', () => {
  assert.equal(
    compileTemplate('{{ labels.provider }} {{ annotations.summary }} {{ alert.status }}', AFTER)(scope),
    'openai Provider openai down firing',
  );
  assert.equal(compileTemplate('plain', AFTER)(scope), 'plain');
});
