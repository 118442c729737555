import assert from 'node:assert/strict';
import { test } from 'node:test';
import { matchesAll, parseMatcher } from '../../src/matrix/matchers.js';

const labels = { alertname: 'ConduitProviderDown', severity: 'critical', provider: 'openai' };

test('= and != compare the whole value', () => {
  assert.equal(parseMatcher('alertname="ConduitProviderDown"').test(labels), true);
  assert.equal(parseMatcher('alertname="ConduitProvider"').test(labels), false);
  assert.equal(parseMatcher('alertname!="ConduitProviderDown"').test(labels), false);
  assert.equal(parseMatcher('alertname!="HighErrorRate"').test(labels), true);
  // Equality is case-sensitive, as in Alertmanager.
  assert.equal(parseMatcher('severity="Critical"').test(labels), false);
});

test('the parsed matcher keeps its name, operator and unquoted value', () => {
  const m = parseMatcher('severity=~"critical|high"');
  assert.equal(m.name, 'severity');
  assert.equal(m.op, '=~');
  assert.equal(m.value, 'critical|high');
  const n = parseMatcher('  provider != "openai"  ');
  assert.deepEqual([n.name, n.op, n.value], ['provider', '!=', 'openai']);
});

test('regex matchers are anchored at both ends', () => {
  assert.equal(parseMatcher('severity=~"crit"').test(labels), false);
  assert.equal(parseMatcher('severity=~"itical"').test(labels), false);
  assert.equal(parseMatcher('severity=~"crit.*"').test(labels), true);
  assert.equal(parseMatcher('severity!~"crit"').test(labels), true);
  assert.equal(parseMatcher('severity!~"crit.*"').test(labels), false);
});

test('an alternation is anchored as a whole: each branch must match the whole value', () => {
  const m = parseMatcher('severity=~"critical|high"');
  assert.equal(m.test({ severity: 'critical' }), true);
  assert.equal(m.test({ severity: 'high' }), true);
  assert.equal(m.test({ severity: 'highest' }), false);
  assert.equal(m.test({ severity: 'not-critical' }), false);
  assert.equal(m.test({ severity: 'medium' }), false);
  const not = parseMatcher('severity!~"critical|high"');
  assert.equal(not.test({ severity: 'high' }), false);
  assert.equal(not.test({ severity: 'highest' }), true);
});

test('a missing label equals the empty string', () => {
  assert.equal(parseMatcher('foo=""').test(labels), true);
  assert.equal(parseMatcher('foo=""').test({ foo: 'bar' }), false);
  assert.equal(parseMatcher('foo!=""').test(labels), false, 'foo!="" requires the label');
  assert.equal(parseMatcher('foo!=""').test({ foo: 'bar' }), true);
  assert.equal(parseMatcher('foo="bar"').test(labels), false);
  assert.equal(parseMatcher('foo!="bar"').test(labels), true);
  assert.equal(parseMatcher('foo=~".*"').test(labels), true);
  assert.equal(parseMatcher('foo=~".+"').test(labels), false);
  assert.equal(parseMatcher('foo!~".+"').test(labels), true);
  assert.equal(parseMatcher('foo=~"bar|"').test(labels), true);
});

test('values may be unquoted', () => {
  const m = parseMatcher('severity=critical');
  assert.equal(m.value, 'critical');
  assert.equal(m.test(labels), true);
  assert.equal(parseMatcher('severity!=critical').test(labels), false);
  assert.equal(parseMatcher('severity=~crit.*').test(labels), true);
  assert.equal(parseMatcher('foo=').test(labels), true, 'an empty unquoted value is the empty string');
});

test('an unquoted value with a special character is refused', () => {
  assert.throws(() => parseMatcher('summary=a,b'), /quote it/);
  assert.throws(() => parseMatcher('summary=a{b}'), /quote it/);
});

test('escaped quotes and backslashes in quoted values', () => {
  const m = parseMatcher(String.raw`summary="say \"hi\""`);
  assert.equal(m.value, 'say "hi"');
  assert.equal(m.test({ summary: 'say "hi"' }), true);
  assert.equal(m.test({ summary: String.raw`say \"hi\"` }), false);
  const b = parseMatcher(String.raw`path="C:\\temp"`);
  assert.equal(b.value, String.raw`C:\temp`);
  assert.equal(b.test({ path: String.raw`C:\temp` }), true);
  const re = parseMatcher(String.raw`instance=~"db\\.example"`);
  assert.equal(re.test({ instance: 'db.example' }), true);
  assert.equal(re.test({ instance: 'dbxexample' }), false, 'the escaped dot is a literal dot');
  assert.equal(parseMatcher('summary="a,b {c}"').value, 'a,b {c}', 'special characters are fine inside quotes');
});

test('an invalid regex is refused, naming the matcher', () => {
  assert.throws(
    () => parseMatcher('severity=~"(crit"'),
    (err: Error) => {
      assert.match(err.message, /invalid regex/);
      assert.ok(err.message.includes('severity=~"(crit"'), err.message);
      return true;
    },
  );
  assert.throws(() => parseMatcher('severity!~"[a-"'), /invalid regex/);
});

test('malformed matchers are refused with a message saying what a matcher is', () => {
  for (const text of ['severity', 'severity critical', '="critical"', '1abc="x"', 'sev-erity="x"', 'severity=="x"', '']) {
    assert.throws(
      () => parseMatcher(text),
      (err: Error) => {
        assert.match(err.message, /is not a matcher|not a valid quoted string|quote it/, `${text}: ${err.message}`);
        return true;
      },
      text,
    );
  }
  assert.throws(() => parseMatcher('severity="critical'), /no closing quote/);
  assert.throws(() => parseMatcher('severity="'), /no closing quote/);
  assert.throws(() => parseMatcher('severity="crit"ical"'), /text after its closing quote/);
});

test('quoted values unescape as Alertmanager does: \\" \\\\ \\n, other backslashes kept for regexes', () => {
  const digits = parseMatcher('instance=~"db\\d+"');
  assert.equal(digits.value, 'db\\d+');
  assert.equal(digits.test({ instance: 'db12' }), true);
  assert.equal(digits.test({ instance: 'dbx' }), false);
  assert.equal(parseMatcher('a="say \\"hi\\""').value, 'say "hi"');
  assert.equal(parseMatcher('a="back\\\\slash"').value, 'back\\slash');
  assert.equal(parseMatcher('instance=~"db\\-1"').test({ instance: 'db-1' }), true);
});

test('a label named like an Object property is missing unless the alert has it', () => {
  assert.equal(parseMatcher('constructor=""').test({}), true);
  assert.equal(parseMatcher('toString!=""').test({}), false);
  assert.equal(parseMatcher('constructor="x"').test({ constructor: 'x' }), true);
});

test('matchesAll needs every matcher to hold', () => {
  const ms = ['alertname="ConduitProviderDown"', 'severity=~"critical|high"'].map(parseMatcher);
  assert.equal(matchesAll(ms, labels), true);
  assert.equal(matchesAll(ms, { ...labels, severity: 'low' }), false);
  assert.equal(matchesAll(ms, { ...labels, alertname: 'HighErrorRate' }), false);
  assert.equal(matchesAll([], labels), true);
});
