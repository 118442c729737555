/**
 * Values in PromQL string literals (src/prometheus/promql.ts). The same values are run through a real
 * Prometheus in test/integration/prometheus-client.test.ts; here they are read back by `unquote`, which follows
 * Prometheus' lexer (promql/parser/lex.go) and util/strutil.Unquote.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileTemplate, type TemplateScope } from '../../src/matrix/template.js';
import { checkTemplatePlacement, promqlString } from '../../src/prometheus/promql.js';

/** Reads a PromQL `"..."` or `'...'` literal as Prometheus does; throws where Prometheus reports a parse error. */
function unquote(literal: string): string {
  const quote = literal[0];
  if ((quote !== '"' && quote !== "'") || literal.length < 2 || literal.at(-1) !== quote) throw new Error('not a quoted literal');
  const body = literal.slice(1, -1);
  let out = '';
  let i = 0;
  const take = (n: number, base: number): number => {
    const digits = body.slice(i, i + n);
    if (digits.length !== n || [...digits].some((d) => !(parseInt(d, base) >= 0))) throw new Error(`bad escape at ${i}`);
    i += n;
    return parseInt(digits, base);
  };
  while (i < body.length) {
    const char = String.fromCodePoint(body.codePointAt(i) ?? 0);
    i += char.length;
    if (char === quote) throw new Error(`unescaped ${quote} at ${i - 1}: the literal ends there`);
    if (char === '\n') throw new Error('unterminated quoted string');
    if (char === '\uFFFD' || /[\uD800-\uDFFF]/u.test(char)) throw new Error('invalid UTF-8 rune');
    if (char !== '\\') {
      out += char;
      continue;
    }
    const e = body[i] ?? '';
    i += 1;
    const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\' };
    if (e in simple) out += simple[e];
    else if (e === quote) out += quote;
    else if (e === 'x') {
      const byte = take(2, 16);
      if (byte >= 0x80) throw new Error('a \\x escape above 7F is a raw byte, not a character');
      out += String.fromCharCode(byte);
    } else if (e === 'u') out += String.fromCodePoint(take(4, 16));
    else if (e === 'U') out += String.fromCodePoint(take(8, 16));
    else if (/[0-7]/.test(e)) {
      i -= 1;
      out += String.fromCharCode(take(3, 8));
    } else throw new Error(`unknown escape sequence \\${e}`);
  }
  return out;
}

/** Values an alert's labels could carry to break out of a literal or confuse a reader. */
const HOSTILE = [
  'x"} or vector(1) or {a="',
  "x'} or vector(1) or {a='",
  '\\',
  'ends with a backslash\\',
  '\\\\',
  '\\"',
  "\\'",
  '"',
  "'",
  '`',
  'it\'s "quoted"',
  'line\nbreak',
  'tab\there',
  'carriage\rreturn',
  'nul\u0000byte',
  'bell\u0007 del\u007f',
  'next line\u0085 line separator\u2028 paragraph\u2029',
  'replacement \uFFFD character',
  'lone \uD800 surrogate',
  '{{ labels.case }}',
  '} or vector(1) #',
  '=~".*"',
  'héllo 日本 🎉',
  '',
];

describe('promqlString', () => {
  it('leaves ordinary text as it is', () => {
    assert.equal(promqlString('openai'), 'openai');
    assert.equal(promqlString('conduit-api-7d9f/pod_1:8080'), 'conduit-api-7d9f/pod_1:8080');
    assert.equal(promqlString('héllo 日本 🎉'), 'héllo 日本 🎉');
    assert.equal(promqlString('.*|a+'), '.*|a+');
    assert.equal(promqlString(''), '');
  });

  it('escapes backslashes, quotes of both kinds and control characters', () => {
    assert.equal(promqlString('\\'), '\\\\');
    assert.equal(promqlString('a\\'), 'a\\\\');
    assert.equal(promqlString('"'), '\\x22');
    assert.equal(promqlString("'"), '\\x27');
    assert.equal(promqlString('x"} or vector(1) or {a="'), 'x\\x22} or vector(1) or {a=\\x22');
    assert.equal(promqlString('a\nb\tc\rd'), 'a\\nb\\tc\\rd');
    assert.equal(promqlString('\u0000\u001b\u007f'), '\\x00\\x1B\\x7F');
    assert.equal(promqlString('\u0085\u2028\u2029'), '\\u0085\\u2028\\u2029');
    assert.equal(promqlString('\uFFFD'), '\\uFFFD');
    assert.equal(promqlString('\uD800'), '\\uFFFD');
  });

  it('writes no quote, line feed or U+FFFD as it is, and no backslash that does not start an escape', () => {
    for (const value of HOSTILE) {
      const escaped = promqlString(value);
      assert.doesNotMatch(escaped, /["'\n\uFFFD\uD800-\uDFFF]/u, JSON.stringify(value));
      assert.doesNotMatch(escaped.replace(/\\(\\|x[0-9A-F]{2}|u[0-9A-F]{4}|[nrt])/g, ''), /\\/, JSON.stringify(value));
    }
  });

  it('reads back as the value itself, between double and between single quotes', () => {
    for (const value of HOSTILE) {
      const expected = value.replace(/[\uD800-\uDFFF]/gu, '\uFFFD');
      assert.equal(unquote(`"${promqlString(value)}"`), expected, JSON.stringify(value));
      assert.equal(unquote(`'${promqlString(value)}'`), expected, JSON.stringify(value));
    }
  });

  it('reads back as the value for every character of the Basic Multilingual Plane and some beyond', () => {
    let all = '';
    for (let code = 0; code <= 0xffff; code++) if (code < 0xd800 || code > 0xdfff) all += String.fromCharCode(code);
    all += '\u{1F389}\u{10FFFF}\u{E0001}';
    assert.equal(unquote(`"${promqlString(all)}"`), all);
    assert.equal(unquote(`'${promqlString(all)}'`), all);
  });

  it('is needed: the same values unescaped break out of the literal or fail to parse', () => {
    for (const value of ['x"} or vector(1) or {a="', 'a\\', 'line\nbreak', '\\"']) {
      assert.throws(() => {
        if (unquote(`"${value}"`) !== value) throw new Error('read back as another value');
      }, JSON.stringify(value));
    }
  });
});

describe('checkTemplatePlacement', () => {
  it('accepts a query without references', () => {
    assert.equal(checkTemplatePlacement('up == 0'), undefined);
    assert.equal(checkTemplatePlacement('sum by (job) (rate(http_requests_total{code=~"5.."}[5m]))'), undefined);
  });

  it('accepts references inside "..." and \'...\' literals', () => {
    const ok = [
      'up{pod="{{ labels.pod }}"}',
      "up{pod='{{ labels.pod }}'}",
      'up{pod="{{labels.pod}}", namespace="{{ labels.namespace }}"} == 0',
      'up{instance=~"{{ labels.host }}:.*"}',
      'label_replace(up, "dst", "{{ labels.x }}-$1", "instance", "(.*)")',
      'up{a="prefix-{{ labels.a }}-{{ labels.b }}-suffix"}',
      'up{a="it\'s {{ labels.a }}"}',
      'up{a=\'say "{{ labels.a }}"\'}',
      'up{a="x\\"} {{ labels.b }} {b=\\""}',
      'up{a="\\\\{{ labels.a }}"}',
      'up{a="\\n{{ labels.a }}\\x41{{ labels.b }}\\u00e9{{ labels.c }}\\101{{ labels.d }}"}',
      'up{a=\'x"} {{ labels.b }} {b="\'}',
      '# a comment with a quote: it\'s "\nup{a="{{ labels.a }}"}',
      'sum(\n  up{pod="{{ labels.pod }}"}\n) by (job)',
      'up{a=`raw`, b="{{ labels.b }}"}',
    ];
    for (const query of ok) assert.equal(checkTemplatePlacement(query), undefined, query);
  });

  it('refuses a reference outside any literal, naming it and where it is', () => {
    const message = checkTemplatePlacement('up{pod={{ labels.pod }}}');
    assert.match(message ?? '', /"\{\{ labels\.pod \}\}" \(line 1, column 8\) is outside any string literal/);
    assert.match(checkTemplatePlacement('sum by ({{ labels.by }}) (up)') ?? '', /outside any string literal/);
    assert.match(checkTemplatePlacement('up{a="x"} > {{ labels.threshold }}') ?? '', /outside any string literal/);
    assert.match(checkTemplatePlacement('rate(x[{{ labels.window }}])') ?? '', /outside any string literal/);
    assert.match(checkTemplatePlacement('{{ labels.metric }}') ?? '', /outside any string literal/);
    assert.match(
      checkTemplatePlacement('up{a="ok {{ labels.a }}"}\n  or {{ labels.b }}') ?? '',
      /\{\{ labels\.b \}\}" \(line 2, column 6\)/,
    );
  });

  it('refuses a reference after a string that an escaped backslash closes', () => {
    assert.match(checkTemplatePlacement('up{a="x\\\\"} {{ labels.b }} {b=""}') ?? '', /outside any string literal/);
    assert.match(checkTemplatePlacement("up{a='x\\\\'} {{ labels.b }} {b=''}") ?? '', /outside any string literal/);
  });

  it('refuses a reference in a `...` raw string, which cannot be escaped', () => {
    assert.match(checkTemplatePlacement('up{pod=`{{ labels.pod }}`}') ?? '', /raw string, which cannot escape a value/);
    assert.equal(checkTemplatePlacement('up{a=`"`, b="{{ labels.b }}"}'), undefined);
    assert.match(checkTemplatePlacement('up{a=`x"`, b={{ labels.b }}}') ?? '', /outside any string literal/);
  });

  it('refuses a reference in a comment', () => {
    assert.match(checkTemplatePlacement('up # {{ labels.pod }}') ?? '', /inside a comment/);
    assert.match(checkTemplatePlacement('up # "\n{{ labels.pod }}') ?? '', /outside any string literal/);
  });

  it('refuses a reference that would become part of an escape sequence', () => {
    assert.match(checkTemplatePlacement('up{a="\\{{ labels.a }}"}') ?? '', /inside an escape sequence/);
    assert.match(checkTemplatePlacement('up{a="\\x4{{ labels.a }}"}') ?? '', /inside an escape sequence/);
    assert.match(checkTemplatePlacement('up{a="\\u00{{ labels.a }}"}') ?? '', /inside an escape sequence/);
    assert.match(checkTemplatePlacement('up{a="\\1{{ labels.a }}"}') ?? '', /inside an escape sequence/);
  });

  it('refuses literals Prometheus would not read: unknown or short escapes, unclosed or broken by a line feed', () => {
    assert.match(checkTemplatePlacement('up{a="\\d{{ labels.a }}"}') ?? '', /escape sequence at line 1, column 7 is not one PromQL knows/);
    assert.match(checkTemplatePlacement('up{a="\\\'{{ labels.a }}"}') ?? '', /not one PromQL knows/);
    assert.match(checkTemplatePlacement('up{a="\\xZZ{{ labels.a }}"}') ?? '', /escape sequence at line 1, column 7 is not complete/);
    assert.match(checkTemplatePlacement('up{a="{{ labels.a }}') ?? '', /string literal at line 1, column 6 is never closed/);
    assert.match(checkTemplatePlacement('up{a="{{ labels.a }}\n"}') ?? '', /not closed before the end of its line/);
  });

  it('together with promqlString, keeps every hostile value inside its literal', () => {
    const templates = ['m{case="{{ labels.case }}"}', "m{case='{{ labels.case }}'}", 'm{case="<{{ labels.case }}>"}'];
    for (const template of templates) {
      assert.equal(checkTemplatePlacement(template), undefined);
      const render = compileTemplate(template);
      for (const value of HOSTILE) {
        const scope: TemplateScope = {
          labels: { case: promqlString(value) },
          annotations: {},
          alert: { fingerprint: '0', startsAt: '2026-01-01T00:00:00Z', status: 'firing' },
        };
        const query = render(scope);
        const literal = /^m\{case=(.*)\}$/s.exec(query)?.[1] ?? '';
        const expected = value.replace(/[\uD800-\uDFFF]/gu, '\uFFFD');
        assert.equal(unquote(literal), template.includes('<') ? `<${expected}>` : expected, `${template} with ${JSON.stringify(value)}`);
      }
    }
  });
});
