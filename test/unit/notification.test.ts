import assert from 'node:assert/strict';
import { test } from 'node:test';
import { notificationText } from '../../src/notify/notifier.js';
import type { Run } from '../../src/schemas/runs.js';

const ID = '3f2a9c1e-7b4d-4e8a-9c0f-1a2b3c4d5e6f';
const URL_ = 'https://remediator.example';

function run(over: Partial<Run> = {}): Run {
  return {
    id: ID,
    rule: 'provider-down',
    action: 'resolved:0',
    phase: 'resolved',
    remediation: 'conduit.enable-provider',
    target: 'conduit/provider/openai',
    params: { provider: 'openai' },
    status: 'pending_approval',
    reason: null,
    alert: {
      fingerprint: '54e69878f8d451e8',
      status: 'resolved',
      startsAt: '2026-11-27T13:31:39.202045328Z',
      labels: { alertname: 'ConduitProviderDown', provider: 'openai' },
      annotations: {},
    },
    approval: { required: true, expiresAt: '2026-11-27T14:01:47.000Z', decidedBy: null, decidedAt: null, comment: null },
    dryRun: false,
    gates: { cooldownMs: 600_000, limit: null, approvalTimeoutMs: 1_800_000 },
    attempts: 0,
    leaseUntil: null,
    after: null,
    verification: null,
    verifyUntil: null,
    revertOf: null,
    revertDue: null,
    plan: 'Set isEnabled=true on Conduit provider "openai"',
    result: null,
    error: null,
    createdAt: '2026-11-27T13:31:47.000Z',
    updatedAt: '2026-11-27T13:31:47.000Z',
    ...over,
  };
}

const APPROVE = `curl -X POST -H "Authorization: Bearer $REMEDIATOR_TOKEN" -H 'Content-Type: application/json' -d '{}' ${URL_}/api/runs/${ID}/approve`;

test('pending approval: run id, remediation, target, plan and the exact approve command', () => {
  const text = notificationText(run(), 'pending_approval', URL_);
  assert.ok(text.includes(ID), text);
  assert.ok(text.includes('conduit.enable-provider'), text);
  assert.ok(text.includes('conduit/provider/openai'), text);
  assert.ok(text.includes('Set isEnabled=true on Conduit provider "openai"'), text);
  assert.ok(text.includes('provider-down'), 'the rule is named');
  assert.ok(text.includes('ConduitProviderDown'), 'the alert is named');
  assert.ok(text.includes('2026-11-27T14:01:47.000Z'), 'the expiry is given');
  const lines = text.split('\n');
  const approve = lines.find((l) => l.includes('/approve'));
  assert.ok(approve, text);
  assert.equal(approve.replace(/^Approve:\s*/, ''), APPROVE);
  const reject = lines.find((l) => l.includes('/reject'));
  assert.ok(reject);
  assert.ok(reject.endsWith(`${URL_}/api/runs/${ID}/reject`), reject);
});

test('the approve command POSTs JSON with the bearer token to <publicUrl>/api/runs/<id>/approve', () => {
  const text = notificationText(run(), 'pending_approval', 'http://localhost:8080');
  const approve = text.split('\n').find((l) => l.includes('/approve'))!;
  assert.match(approve, /curl -X POST /);
  assert.match(approve, /-H "Authorization: Bearer \$REMEDIATOR_TOKEN"/);
  assert.match(approve, /-H 'Content-Type: application\/json'/);
  assert.match(approve, /-d '\{\}'/);
  assert.ok(approve.endsWith(` http://localhost:8080/api/runs/${ID}/approve`), approve);
});

test('escalated runs also carry the approve command', () => {
  const text = notificationText(run({ reason: 'escalated' }), 'escalated', URL_);
  assert.match(text, /escalated/);
  assert.ok(text.includes(APPROVE), text);
});

test('expired and failed runs carry no approve command; a failure carries its error', () => {
  const expired = notificationText(run({ status: 'expired' }), 'expired', URL_);
  assert.ok(expired.includes(ID));
  assert.match(expired, /expired/);
  assert.ok(!expired.includes('/approve'), expired);

  const failed = notificationText(run({ status: 'failed', error: 'Conduit Admin API answered 500' }), 'failed', URL_);
  assert.ok(failed.includes(ID));
  assert.ok(failed.includes('conduit/provider/openai'));
  assert.ok(failed.includes('Conduit Admin API answered 500'), failed);
  assert.ok(!failed.includes('curl'), failed);
});

test('a run without target or plan still reads', () => {
  const text = notificationText(run({ target: null, plan: null }), 'pending_approval', URL_);
  assert.ok(text.includes(ID));
  assert.ok(text.includes('conduit.enable-provider'));
  assert.ok(!text.includes('null'), text);
  assert.ok(text.includes(APPROVE));
});
