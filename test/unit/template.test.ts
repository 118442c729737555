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
