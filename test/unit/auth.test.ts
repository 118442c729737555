import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createAuth } from '../../src/auth.js';
import type { Role } from '../../src/config.js';

const WEBHOOK = 'webhook-token-0123456789abcdef';
const auth = createAuth(WEBHOOK, [
  { name: 'vic', role: 'viewer', token: 'viewer-token-0123456789' },
  { name: 'ann', role: 'approver', token: 'approver-token-0123456789' },
  { name: 'root', role: 'admin', token: 'admin-token-0123456789' },
]);

test('webhook: the right bearer token is accepted', () => {
  assert.equal(auth.webhook(`Bearer ${WEBHOOK}`), true);
  assert.equal(auth.webhook(`Bearer   ${WEBHOOK}  `), true, 'extra spaces are tolerated');
});

test('webhook: "Bearer" is case-insensitive', () => {
  assert.equal(auth.webhook(`bearer ${WEBHOOK}`), true);
  assert.equal(auth.webhook(`BEARER ${WEBHOOK}`), true);
});

test('webhook: wrong, missing or malformed credentials are refused', () => {
  for (const header of [
    undefined,
    '',
    'Bearer',
    'Bearer ',
    WEBHOOK,
    `Basic ${WEBHOOK}`,
    `Bearer ${WEBHOOK}x`,
    `Bearer ${WEBHOOK.slice(0, -1)}`,
    `Bearer ${WEBHOOK.toUpperCase()}`,
    `Bearer ${WEBHOOK} extra`,
    `Bearer${WEBHOOK}`,
    'Bearer admin-token-0123456789',
  ]) {
    assert.equal(auth.webhook(header), false, JSON.stringify(header));
  }
});

test('api: each token resolves to its name and role', () => {
  assert.deepEqual(auth.api('Bearer viewer-token-0123456789'), { name: 'vic', role: 'viewer' });
  assert.deepEqual(auth.api('Bearer approver-token-0123456789'), { name: 'ann', role: 'approver' });
  assert.deepEqual(auth.api('bearer admin-token-0123456789'), { name: 'root', role: 'admin' });
});

test('api: unknown, missing or malformed tokens are refused', () => {
  for (const header of [
    undefined,
    '',
    'Bearer',
    'admin-token-0123456789',
    'Basic admin-token-0123456789',
    'Bearer admin-token-012345678',
    `Bearer ${WEBHOOK}`,
    'Bearer admin-token-0123456789 admin',
  ]) {
    assert.equal(auth.api(header), undefined, JSON.stringify(header));
  }
});

test('roles are ordered viewer < approver < admin', () => {
  const roles: Role[] = ['viewer', 'approver', 'admin'];
  for (const [i, role] of roles.entries()) {
    for (const [j, needed] of roles.entries()) {
      assert.equal(auth.allows(role, needed), i >= j, `${role} for ${needed}`);
    }
  }
});

test('with no API tokens nothing is accepted', () => {
  const none = createAuth(WEBHOOK, []);
  assert.equal(none.api(`Bearer ${WEBHOOK}`), undefined);
  assert.equal(none.webhook(`Bearer ${WEBHOOK}`), true);
});
