/**
 * Putting alert values into PromQL without letting them change the query.
 *
 * PromQL string literals (promql/parser/lex.go, util/strutil/quote.go) come in three kinds:
 * - `"..."` and `'...'`: Go-style escapes `\a \b \f \n \r \t \v \\`, `\NNN` (octal), `\xNN` (one byte),
 *   `\uNNNN`, `\UNNNNNNNN`, and the literal's own quote (`\"` only inside `"..."`, `\'` only inside `'...'`:
 *   the other one is an "unknown escape sequence"); a raw line feed ends the literal with an error, and so does
 *   U+FFFD (the lexer takes it for invalid UTF-8 even when it is properly encoded);
 * - `` `...` ``: raw, no escapes at all, so nothing put inside can be made safe.
 * Outside literals, `#` starts a comment that runs to the end of the line.
 *
 * `promqlString` escapes a value for either quoted kind, and `checkTemplatePlacement` makes sure every
 * `{{ ... }}` reference of a query template sits inside one: together, whatever a label value holds, it is
 * read back by Prometheus as exactly that value and never as PromQL. Inside a regular expression matcher
 * (`=~`, `!~`) the value is still a regular expression: escaping keeps the query's structure, not the meaning
 * of regex metacharacters.
 */

/** `{{ ... }}` references, found exactly as src/matrix/template.ts finds them. */
const REF = /\{\{\s*([^}]*?)\s*\}\}/g;

function hex(code: number, digits: number): string {
  return code.toString(16).toUpperCase().padStart(digits, '0');
}

/**
 * The contents of a PromQL string literal reading back as `value`, valid between `"` and `"` and between
 * `'` and `'` alike: backslash as `\\`, both quotes as `\x22` and `\x27` (PromQL accepts `\"` only in
 * double-quoted and `\'` only in single-quoted literals), line feed, carriage return and tab as `\n`, `\r`,
 * `\t`, other control characters as `\xNN` (C0, DEL) or `\uNNNN` (C1, U+2028, U+2029), and U+FFFD as `\uFFFD`,
 * which is also what a lone surrogate (not representable in UTF-8) becomes. Everything else is kept as it is.
 */
export function promqlString(value: string): string {
  let out = '';
  for (const char of value) {
    const code = char.codePointAt(0) ?? 0;
    if (char === '\\') out += '\\\\';
    else if (char === '"') out += '\\x22';
    else if (char === "'") out += '\\x27';
    else if (char === '\n') out += '\\n';
    else if (char === '\r') out += '\\r';
    else if (char === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${hex(code, 2)}`;
    else if ((code >= 0x80 && code <= 0x9f) || code === 0x2028 || code === 0x2029) out += `\\u${hex(code, 4)}`;
    else if (code === 0xfffd || (code >= 0xd800 && code <= 0xdfff)) out += '\\uFFFD';
    else out += char;
  }
  return out;
}

/** Escapes naming one character: `\a \b \f \n \r \t \v \\` (and the literal's own quote). */
const SIMPLE_ESCAPES = 'abfnrtv\\';
/** Numeric escapes: digits still to come after the character following the backslash, and their base. */
const ESCAPE_DIGITS: Readonly<Record<string, number>> = { x: 2, u: 4, U: 8, 0: 2, 1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2 };
const ESCAPE_BASE: Readonly<Record<string, number>> = { x: 16, u: 16, U: 16, 0: 8, 1: 8, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8, 7: 8 };

type State = 'code' | 'comment' | 'double' | 'single' | 'raw';
const quoteOf: Readonly<Record<State, string>> = { code: '', comment: '', double: '"', single: "'", raw: '`' };

function position(text: string, index: number): string {
  const before = text.slice(0, index);
  const line = before.split('\n').length;
  const column = index - (before.lastIndexOf('\n') + 1) + 1;
  return `line ${line}, column ${column}`;
}

/**
 * Checks that every `{{ ... }}` reference of a PromQL query template is inside a `"..."` or `'...'` string
 * literal, where `promqlString` makes any value safe. Returns what is wrong with the first reference that is
 * not (outside literals, in a comment, in a `` `...` `` raw string, inside an escape sequence, or in a literal
 * that is not closed), or undefined when every reference is well placed (and when there is none).
 */
export function checkTemplatePlacement(query: string): string | undefined {
  const refs = [...query.matchAll(REF)].map((m) => ({ start: m.index, end: m.index + m[0].length, text: m[0] }));
  if (refs.length === 0) return undefined;
  const refAt = new Map(refs.map((ref) => [ref.start, ref]));

  let state: State = 'code';
  let opened = 0; // where the current literal started
  let afterBackslash = false; // the next character is the one naming an escape
  let digitsLeft = 0; // digits still to come of a numeric escape (\NNN, \xNN, \uNNNN, \UNNNNNNNN)
  let escapeBase = 0; // their base: 8 or 16
  let escapeAt = 0; // where the escape's backslash is
  let i = 0;
  while (i < query.length) {
    const ref = refAt.get(i);
    if (ref) {
      const where = `"${ref.text}" (${position(query, ref.start)})`;
      if (state === 'code') {
        return `${where} is outside any string literal: a value there would become PromQL; put it inside "..." (e.g. label="${ref.text}")`;
      }
      if (state === 'comment') return `${where} is inside a comment; put it inside a "..." string literal`;
      if (state === 'raw') return `${where} is inside a \`...\` raw string, which cannot escape a value; use "..." instead`;
      if (afterBackslash || digitsLeft > 0) return `${where} is inside an escape sequence: the value would be read as part of it`;
      i = ref.end;
      continue;
    }
    const char = query[i] ?? '';
    switch (state) {
      case 'code':
        if (char === '"' || char === "'" || char === '`') {
          state = char === '"' ? 'double' : char === "'" ? 'single' : 'raw';
          opened = i;
        } else if (char === '#') state = 'comment';
        break;
      case 'comment':
        if (char === '\n') state = 'code';
        break;
      case 'raw':
        if (char === '`') state = 'code';
        break;
      case 'double':
      case 'single':
        if (char === '\n') return `the string literal at ${position(query, opened)} is not closed before the end of its line`;
        if (afterBackslash) {
          afterBackslash = false;
          escapeBase = ESCAPE_BASE[char] ?? 0;
          digitsLeft = ESCAPE_DIGITS[char] ?? 0;
          if (escapeBase === 0 && !SIMPLE_ESCAPES.includes(char) && char !== quoteOf[state]) {
            return `the escape sequence at ${position(query, i - 1)} is not one PromQL knows`;
          }
        } else if (digitsLeft > 0) {
          if (!(parseInt(char, escapeBase) >= 0)) return `the escape sequence at ${position(query, escapeAt)} is not complete`;
          digitsLeft -= 1;
        } else if (char === '\\') {
          afterBackslash = true;
          escapeAt = i;
        } else if (char === quoteOf[state]) state = 'code';
        break;
    }
    i += 1;
  }
  if (state === 'double' || state === 'single' || state === 'raw') {
    return `the string literal at ${position(query, opened)} is never closed`;
  }
  return undefined;
}
