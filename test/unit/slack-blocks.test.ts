/**
 * Approval notices as Block Kit: the escaped notice, Approve (primary, confirmed) and Reject buttons
 * whose value is the run id and nothing from the alert, the commands below them, the plain text
 * unchanged; the notifier sends them only for one run needing approval, when interactive; the
 * message a decision leaves; SLACK_SIGNING_SECRET and SLACK_APPROVERS as the service reads them.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { RemediationError } from '../../remediations/types.js';
import { ConfigError } from '../../src/errors.js';
import { notifyTarget, type MessageTarget, type NotifyMessage } from '../../src/notify/client.js';
import { alreadyDecided, approvalNotice, createNotifier, decisionNotice, notificationText } from '../../src/notify/notifier.js';
import { SLACK_BODY_LIMIT, slackSignatureRefusal } from '../../src/routes/slack.js';
import type { Run } from '../../src/schemas/runs.js';
import { APPROVE_ACTION, REJECT_ACTION, SECTION_MAX, sections, type Block, type Button } from '../../src/slack/blocks.js';
import { parseSlackConfig } from '../../src/slack/config.js';
import type { RunStore } from '../../src/store/runs.js';
import { memoryLog } from '../support/context.js';
import { startNotifySink } from '../support/notify-sink.js';
import { hostileRun } from '../support/runs.js';
import { blockActions, interactionBody, SIGNING_SECRET, slackSignature } from '../support/slack.js';

const PUBLIC_URL = 'https://remediator.example.test';
const PHISH = '<!channel> <https://evil.example/login|Approve here>';
const FORGED = 'openai\nApprove: curl -X POST https://evil.example/api/runs/x/approve';

/** Every text a block shows: sections, contexts, buttons and their confirm dialogs. */
function texts(blocks: readonly Block[]): string[] {
  return blocks.flatMap((b): string[] => {
    if (b.type === 'section') return [b.text.text];
    if (b.type === 'context') return b.elements.map((e) => e.text);
    return b.elements.flatMap((e) => [
      e.text.text,
      ...(e.confirm ? [e.confirm.title.text, e.confirm.text.text, e.confirm.confirm.text] : []),
    ]);
  });
}

const buttons = (blocks: readonly Block[]): Button[] => blocks.flatMap((b) => (b.type === 'actions' ? b.elements : []));

function assertEscaped(text: string): void {
  assert.ok(!/[<>]/.test(text), `an unescaped < or > in:\n${text}`);
  assert.ok(!/&(?!amp;|lt;|gt;)/.test(text), `an unescaped & in:\n${text}`);
}

describe('an approval notice as Block Kit', () => {
  it('shows the escaped notice, then Approve and Reject, then the commands; its text is the plain notice', () => {
    const run = hostileRun(PHISH);
    const context = [`Still firing: ${PHISH}`];
    const message = approvalNotice(run, 'pending_approval', PUBLIC_URL, context);
    assert.equal(message.text, notificationText(run, 'pending_approval', PUBLIC_URL, context));
    const blocks = message.blocks!;
    assert.deepEqual(
      blocks.map((b) => b.type),
      ['section', 'actions', 'section'],
    );
    for (const text of texts(blocks)) assertEscaped(text);
    const notice = (blocks[0] as { text: { text: string } }).text.text;
    assert.ok(notice.startsWith('[conduit-remediator] conduit.enable-provider on conduit/provider/&lt;!channel&gt;'), notice);
    assert.ok(notice.includes('Still firing: &lt;!channel&gt; &lt;https://evil.example/login|Approve here&gt;'), notice);
    assert.ok(!notice.includes('curl'), 'the commands are below the buttons, not in the notice');
    const commands = (blocks[2] as { block_id?: string; text: { text: string } }).text.text.split('\n');
    assert.deepEqual(commands, message.text.split('\n').slice(-2));
    assert.match(commands[0]!, new RegExp(`^Approve: curl .* ${PUBLIC_URL}/api/runs/${run.id}/approve$`));
    assert.match(commands[1]!, new RegExp(`^Reject: {2}curl .* ${PUBLIC_URL}/api/runs/${run.id}/reject$`));
  });

  it('gives both buttons the run id as their value, and puts no alert data in values, action ids or block ids', () => {
    for (const value of [PHISH, FORGED, 'a & b', 'remediator_approve']) {
      const run = hostileRun(value);
      const blocks = approvalNotice(run, 'escalated', PUBLIC_URL, [`Predecessor: ${value}`]).blocks!;
      const [approve, reject] = buttons(blocks);
      assert.equal(buttons(blocks).length, 2);
      assert.deepEqual([approve!.action_id, approve!.value, approve!.style], [APPROVE_ACTION, run.id, 'primary']);
      assert.deepEqual([reject!.action_id, reject!.value, reject!.style], [REJECT_ACTION, run.id, undefined]);
      assert.equal(approve!.text.text, 'Approve');
      assert.equal(reject!.text.text, 'Reject');
      assert.ok(approve!.confirm, 'Approve asks for confirmation');
      assert.equal(approve!.confirm.text.text, `Run ${run.id} is queued and executed once approved.`);
      const ids = [
        ...blocks.map((b) => b.block_id ?? ''),
        ...buttons(blocks).flatMap((b) => [b.action_id, b.value, b.confirm?.text.text ?? '', b.confirm?.title.text ?? '']),
      ];
      for (const id of ids) {
        for (const part of ['evil', 'openai', '<', '&', 'provider', 'ConduitProviderDown']) {
          assert.ok(!id.includes(part), `"${part}" of the alert in "${id}"`);
        }
      }
      assert.deepEqual(
        blocks.filter((b) => b.block_id).map((b) => b.block_id),
        [`decide:${run.id}`, `commands:${run.id}`],
      );
    }
  });

  it('has no buttons (plain text alone) for a run id that is not a UUID', () => {
    const message = approvalNotice(hostileRun('openai', { id: 'x/../evil' }), 'pending_approval', PUBLIC_URL);
    assert.equal(message.blocks, undefined);
    assert.ok(!message.text.includes('curl'), message.text);
  });

  it("keeps every section within Slack's 3000 characters, cut outside the entities", () => {
    const long = '<'.repeat(5000);
    const message = approvalNotice(hostileRun(long), 'pending_approval', PUBLIC_URL, [long, long]);
    for (const block of message.blocks!) if (block.type === 'section') assert.ok(block.text.text.length <= SECTION_MAX);
    for (const text of texts(message.blocks!)) {
      assertEscaped(text.replace(/…/g, ''));
      assert.ok(!/&(l|lt|g|gt|a|am|amp)?…/.test(text), 'an entity cut in half');
    }
    const split = sections(['a'.repeat(2000), 'b'.repeat(2000), 'c'.repeat(10)]);
    assert.deepEqual(
      split.map((b) => (b as { text: { text: string } }).text.text.length),
      [2000, 2011],
    );
  });

  it('a click on a typical notice comes back within the route body limit', () => {
    const run = hostileRun('openai-eastus-2', {
      target: `conduit/provider/${'openai-eastus-2-'.repeat(8)}`,
      plan: `Set isEnabled=true on Conduit provider "openai-eastus-2" ${'and wait for the health check '.repeat(6)}`,
    });
    const message = approvalNotice(run, 'pending_approval', PUBLIC_URL, ['Alert still firing (Alertmanager, 2 of 2 answered)']);
    const body = interactionBody(
      blockActions({
        userId: 'U0ALICE01',
        action: 'approve',
        value: run.id,
        responseUrl: 'https://hooks.slack.com/actions/T/1/x',
        message,
      }),
    );
    assert.ok(body.length < SLACK_BODY_LIMIT / 2, `${body.length} bytes`);
  });
});

describe('the notifier with interactive approvals', () => {
  const store = (): RunStore => ({ addEvent: async () => {} }) as unknown as RunStore;

  function capture() {
    const texts: string[] = [];
    const messages: NotifyMessage[] = [];
    let refuseBlocks = false;
    const target: MessageTarget = {
      post: async (text) => (texts.push(text), { status: 200 }),
      postMessage: async (message) => {
        if (refuseBlocks)
          throw new RemediationError('target_error', 'notification webhook answered 400: invalid_blocks', { detail: { status: 400 } });
        messages.push(message);
        return { status: 200 };
      },
    };
    return { texts, messages, target, refuse: () => (refuseBlocks = true) };
  }

  const notifier = (target: MessageTarget, interactive: boolean) =>
    createNotifier({ target, runs: store(), log: memoryLog(), publicUrl: PUBLIC_URL, interactive, windowMs: 50 });

  it('sends a notice of one run needing approval with buttons, everything else as text', async () => {
    const { texts, messages, target } = capture();
    const n = notifier(target, true);
    const pending = hostileRun('a', { rule: 'one' });
    n.notify(pending, 'pending_approval');
    n.notify(hostileRun('b', { rule: 'two' }), 'escalated');
    n.notify(hostileRun('c', { rule: 'three' }), 'failed');
    n.notify(hostileRun('d', { rule: 'four' }), 'expired');
    // Three of one rule: the first alone, the next two as one listing, which has no buttons.
    for (const v of ['e', 'f', 'g']) n.notify(hostileRun(v, { rule: 'five' }), 'pending_approval');
    await n.drain();
    assert.equal(messages.length, 3);
    assert.deepEqual(messages[0], approvalNotice(pending, 'pending_approval', PUBLIC_URL));
    for (const m of messages) assert.equal(buttons(m.blocks as Block[]).length, 2);
    assert.equal(texts.length, 3);
    assert.ok(texts.some((t) => t.startsWith('[conduit-remediator] conduit.enable-provider on conduit/provider/c failed')));
    assert.ok(texts.some((t) => t.startsWith('[conduit-remediator] 2 runs of rule five need approval')));
  });

  it('sends plain text alone when not interactive, as before', async () => {
    const { texts, messages, target } = capture();
    const n = notifier(target, false);
    const run = hostileRun('a');
    n.notify(run, 'pending_approval');
    await n.drain();
    assert.deepEqual(messages, []);
    assert.deepEqual(texts, [notificationText(run, 'pending_approval', PUBLIC_URL)]);
  });

  it('posts the plain text when the webhook refuses the blocks', async () => {
    const { texts, messages, target, refuse } = capture();
    refuse();
    const n = notifier(target, true);
    const run = hostileRun('a');
    n.notify(run, 'pending_approval');
    await n.drain();
    assert.deepEqual(messages, []);
    assert.deepEqual(texts, [notificationText(run, 'pending_approval', PUBLIC_URL)]);
  });

  it('posts { text, blocks } to the incoming webhook', async (t: TestContext) => {
    const sink = await startNotifySink();
    t.after(() => sink.close());
    const n = createNotifier({ target: notifyTarget(sink.url), runs: store(), log: memoryLog(), publicUrl: PUBLIC_URL, interactive: true });
    const run = hostileRun('a');
    n.notify(run, 'pending_approval');
    await n.drain();
    assert.equal(sink.messages.length, 1);
    assert.deepEqual(sink.messages[0]!.body, JSON.parse(JSON.stringify(approvalNotice(run, 'pending_approval', PUBLIC_URL))));
  });
});

describe('the message a decision leaves', () => {
  it('names the outcome, who decided and when, escaped, with no buttons', () => {
    const run = hostileRun(PHISH, {
      status: 'queued',
      approval: { required: true, expiresAt: null, decidedBy: 'alice', decidedAt: '2026-11-27T13:40:00.000Z', comment: null },
    });
    const message = decisionNotice(run);
    assert.deepEqual(buttons(message.blocks!), []);
    assert.equal(message.text.split('\n').at(-1), 'Approved by alice at 2026-11-27T13:40:00.000Z');
    const context = message.blocks!.at(-1)!;
    assert.deepEqual(context, { type: 'context', elements: [{ type: 'mrkdwn', text: 'Approved by alice at 2026-11-27T13:40:00.000Z' }] });
    for (const text of texts(message.blocks!)) assertEscaped(text);
    assert.ok(!message.text.includes('curl'), message.text);
    assert.equal(
      alreadyDecided({ ...run, status: 'rejected' }),
      `Run ${run.id} was already decided by alice (rejected at 2026-11-27T13:40:00.000Z)`,
    );
  });

  it('says an expired run was not executed', () => {
    const run = hostileRun('a', { status: 'expired' });
    assert.equal(decisionNotice(run).text.split('\n').at(-1), 'Approval expired at 2026-11-27T14:01:47.000Z: not executed');
  });
});

describe("Slack's request signature", () => {
  const raw = interactionBody({ type: 'block_actions' });
  const now = 1_800_000_000_000;
  const ts = String(now / 1000);

  it('accepts what Slack signs, and refuses another body, secret, or a timestamp 5 minutes away', () => {
    assert.equal(slackSignatureRefusal(SIGNING_SECRET, ts, slackSignature(SIGNING_SECRET, ts, raw), Buffer.from(raw), now), undefined);
    assert.match(
      slackSignatureRefusal(SIGNING_SECRET, ts, slackSignature(SIGNING_SECRET, ts, raw), Buffer.from(`${raw}x`), now)!,
      /does not match/,
    );
    assert.match(
      slackSignatureRefusal(SIGNING_SECRET, ts, slackSignature('another-secret-0123456789', ts, raw), Buffer.from(raw), now)!,
      /does not match/,
    );
    for (const skew of [-301, 301]) {
      const t = String(now / 1000 + skew);
      assert.match(slackSignatureRefusal(SIGNING_SECRET, t, slackSignature(SIGNING_SECRET, t, raw), Buffer.from(raw), now)!, /5 minutes/);
    }
    const edge = String(now / 1000 - 299);
    assert.equal(slackSignatureRefusal(SIGNING_SECRET, edge, slackSignature(SIGNING_SECRET, edge, raw), Buffer.from(raw), now), undefined);
    assert.match(slackSignatureRefusal(SIGNING_SECRET, undefined, 'v0=00', Buffer.from(raw), now)!, /Timestamp/);
    assert.match(slackSignatureRefusal(SIGNING_SECRET, ts, 'v0=zz', Buffer.from(raw), now)!, /malformed X-Slack-Signature/);
  });
});

describe('SLACK_SIGNING_SECRET and SLACK_APPROVERS', () => {
  const secret = 'f0e1d2c3b4a5968778695a4b3c2d1e0f';

  function refused(env: NodeJS.ProcessEnv, variable: string, message: RegExp): void {
    assert.throws(
      () => parseSlackConfig(env),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError, String(err));
        assert.equal(err.variable, variable);
        assert.match(err.message, message);
        assert.ok(!err.message.includes(secret), 'the secret is repeated');
        return true;
      },
    );
  }

  it('reads both, maps user ids to names, and is off when neither is set', () => {
    assert.equal(parseSlackConfig({}), undefined);
    assert.equal(parseSlackConfig({ SLACK_SIGNING_SECRET: ' ', SLACK_APPROVERS: '' }), undefined);
    const slack = parseSlackConfig({ SLACK_SIGNING_SECRET: secret, SLACK_APPROVERS: 'U123ABC:alice, W0ENT42:bob.smith' })!;
    assert.equal(slack.signingSecret, secret);
    assert.deepEqual(
      [...slack.approvers],
      [
        ['U123ABC', 'alice'],
        ['W0ENT42', 'bob.smith'],
      ],
    );
  });

  it('refuses one without the other, and bad entries, naming the variable and never the secret', () => {
    refused({ SLACK_APPROVERS: 'U123ABC:alice' }, 'SLACK_SIGNING_SECRET', /required when SLACK_APPROVERS is set/);
    refused({ SLACK_SIGNING_SECRET: secret }, 'SLACK_APPROVERS', /required when SLACK_SIGNING_SECRET is set/);
    refused({ SLACK_SIGNING_SECRET: `${secret} x`, SLACK_APPROVERS: 'U123ABC:alice' }, 'SLACK_SIGNING_SECRET', /whitespace/);
    refused({ SLACK_SIGNING_SECRET: 'short', SLACK_APPROVERS: 'U123ABC:alice' }, 'SLACK_SIGNING_SECRET', /too short/);
    const base = { SLACK_SIGNING_SECRET: secret };
    refused({ ...base, SLACK_APPROVERS: 'alice' }, 'SLACK_APPROVERS', /entry 1 is not slackUserId:name/);
    refused({ ...base, SLACK_APPROVERS: 'U123ABC:alice,u456:bob' }, 'SLACK_APPROVERS', /entry 2: the user id is not a Slack one/);
    refused({ ...base, SLACK_APPROVERS: `U123ABC:alice,${secret}:bob` }, 'SLACK_APPROVERS', /entry 2/);
    refused({ ...base, SLACK_APPROVERS: 'U123ABC:al ice' }, 'SLACK_APPROVERS', /entry 1: invalid name/);
    refused({ ...base, SLACK_APPROVERS: 'U123ABC:alice,U123ABC:bob' }, 'SLACK_APPROVERS', /entry 2: user U123ABC is listed twice/);
    refused({ ...base, SLACK_APPROVERS: 'U123ABC:alice,' }, 'SLACK_APPROVERS', /entry 2 is not/);
  });
});
