/** Response serializers made on their first use, answering as Fastify's own. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SerializerSelector, type SerializerFactory } from '@fastify/fast-json-stringify-compiler';
import { lazySerializers } from '../../src/app.js';

describe('lazy response serializers', () => {
  const route = {
    method: 'GET',
    url: '/x',
    httpStatus: '200',
    schema: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'string' } }, required: ['a'] },
  };

  it('compiles a serializer on its first use, once, and serializes as the default one', () => {
    let compiled = 0;
    const counting: SerializerFactory = (external, options) => {
      const compile = SerializerSelector()(external, options);
      return (r) => (compiled++, compile(r));
    };
    const serialize = lazySerializers(counting)({}, {})(route);
    assert.equal(compiled, 0, 'nothing compiled before the first answer');
    const reference = SerializerSelector()({}, {})(route);
    for (const doc of [{ a: 1, b: 'x', extra: true }, { a: 2 }]) assert.equal(serialize(doc), reference(doc));
    assert.equal(serialize({ a: 3, b: 'y' }), '{"a":3,"b":"y"}');
    assert.equal(compiled, 1, 'compiled once');
  });

  it('reports a document its schema cannot serialize as the default one does', () => {
    const serialize = lazySerializers()({}, {})(route);
    assert.throws(() => serialize({ b: 'no a' }), /"a" is required/);
  });
});
