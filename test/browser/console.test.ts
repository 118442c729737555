/**
 * The console in a real headless Chromium (Debian's `chromium`, driven by playwright-core): sign in,
 * pending approvals from the webhook, deciding them (also after someone else did), runs, the kill
 * switch, a phone. Every page asserts it talked to the service only, and broke no CSP rule.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { chromium, type Browser, type BrowserContextOptions, type Page } from 'playwright-core';
import request from 'supertest';
import { approve, deliver } from '../support/api.js';
import { alertMessage, eventually, isolation, REDIS_URL, startService, TOKENS, type TestService } from '../support/harness.js';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;
const ARTIFACTS = process.env['TEST_ARTIFACTS'] ?? join(process.cwd(), 'dist', 'test-artifacts');

const MATRIX = `
defaults: { cooldown: 0s, approvalTimeout: 30m }
rules:
  - name: provider-down
    matchers: ['suite="console"']
    actions:
      - remediation: test.count
        params: { key: '{{ labels.provider }}' }
        approval: required
`;

let seq = 0;
/** Delivers a firing alert that needs approval and answers its run's id. */
async function pendingRun(svc: TestService, provider = `p${++seq}-${Date.now().toString(36)}`): Promise<{ id: string; provider: string }> {
  const startsAt = new Date(Date.now() - 7 * 60_000).toISOString();
  const [run] = await deliver(
    svc,
    alertMessage([
      {
        labels: { suite: 'console', alertname: 'ConduitProviderDown', provider, severity: 'critical' },
        annotations: { summary: `Provider ${provider} fails its health checks` },
        startsAt,
      },
    ]),
  );
  assert.equal(run?.status, 'pending_approval', JSON.stringify(run));
  return { id: run.id, provider };
}

describe('the console in headless Chromium', { skip, timeout: 180_000 }, () => {
  const iso = isolation('console');
  let svc: TestService;
  let browser: Browser;

  before(async () => {
    svc = await startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX, env: { TARGET_REDIS_URL: REDIS_URL } });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu'],
      timeout: 30_000,
    });
  });
  after(async () => {
    await browser?.close();
    await svc?.close();
    await iso.drop();
  });

  /**
   * A fresh browser context (its own sessionStorage) whose every request is recorded; when the test
   * ends it asserts that all of them went to the service, and that no CSP rule or script broke.
   */
  async function open(
    t: TestContext,
    options: BrowserContextOptions = {},
  ): Promise<{ page: Page; requests: { url: string; auth?: string }[] }> {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, ...options });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const requests: { url: string; auth?: string }[] = [];
    const problems: string[] = [];
    page.on('request', (r) => {
      const auth = r.headers()['authorization'];
      requests.push(auth ? { url: r.url(), auth } : { url: r.url() });
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
    });
    t.after(async () => {
      await context.close();
      const outside = requests.filter((r) => !r.url.startsWith(`${svc.url}/`) && !r.url.startsWith('data:'));
      assert.deepEqual(outside, [], 'the browser made requests outside the service');
      assert.deepEqual(problems, [], 'no CSP violation or script error');
    });
    return { page, requests };
  }

  async function signIn(page: Page, token: string): Promise<void> {
    await page.goto(`${svc.url}/ui`);
    await page.locator('#token').fill(token);
    await page.locator('#token').press('Enter');
    await page.locator('.whoami').waitFor();
  }

  const card = (page: Page, id: string) => page.locator(`article[data-run="${id}"]`);

  it('a wrong token gets a clear message; a right one shows its name and role and is sent only as a bearer header', async (t) => {
    const { page, requests } = await open(t);
    await page.goto(`${svc.url}/ui`);
    await page.locator('#token').fill('wrong-token-0123456789abcdef');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('This token is not accepted by the service (401)').waitFor();
    assert.equal(await page.locator('.whoami').count(), 0);

    await page.locator('#token').fill(TOKENS.approver);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('.whoami').waitFor();
    assert.equal((await page.locator('.whoami').innerText()).replace(/\s+/g, ' '), 'bob · approver');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('conduit-remediator.token')), TOKENS.approver);
    // Kept for the tab: a reload signs in again without asking.
    await page.reload();
    await page.locator('.whoami').waitFor();
    await page.getByRole('heading', { name: /Pending approvals/ }).waitFor();

    assert.ok(requests.some((r) => r.url.endsWith('/api/whoami') && r.auth === `Bearer ${TOKENS.approver}`));
    for (const r of requests) assert.ok(!r.url.includes(TOKENS.approver), `token in URL ${r.url}`);
    for (const r of requests.filter((x) => x.url.includes('/api/'))) assert.ok(r.auth, `${r.url} sent with a bearer header`);

    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.locator('#token').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('conduit-remediator.token')), null);
  });

  it('shows a pending approval from the webhook (alert, plan, countdown), keeps a comment through refreshes, approves it and follows the run to succeeded', async (t) => {
    const { page } = await open(t);
    const { id, provider } = await pendingRun(svc, 'openai');
    await signIn(page, TOKENS.approver);
    const c = card(page, id);
    await c.waitFor();
    const text = await c.innerText();
    assert.match(text, /provider-down/);
    assert.match(text, /test\.count/);
    assert.match(text, /ConduitProviderDown/);
    assert.match(text, new RegExp(`Provider ${provider} fails its health checks`));
    assert.match(text, /firing for 7m \d\ds/);
    assert.match(text, new RegExp(`count an execution for ${provider}`));
    assert.match(text, /severity=critical/);
    assert.match(await c.locator('.countdown').innerText(), /^expires in (29|30)m \d\ds$/);
    assert.equal(await c.getByRole('link', { name: 'source' }).getAttribute('href'), 'http://prometheus:9090/graph?g0.expr=x');

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'console-pending-approvals.png'), fullPage: true });

    // A comment being written survives the list refreshing itself (a new approval arrives meanwhile).
    const comment = c.locator('textarea');
    await comment.fill('checked the provider dashboard');
    const second = await pendingRun(svc);
    await card(page, second.id).waitFor({ timeout: 10_000 });
    assert.equal(await comment.inputValue(), 'checked the provider dashboard');
    assert.ok(await comment.evaluate((el) => el === document.activeElement), 'the comment box keeps the focus');

    await c.getByRole('button', { name: 'Approve' }).click();
    await c.getByText(/Approved by bob \(you\)/).waitFor();
    assert.equal(await c.getByRole('button', { name: 'Approve' }).count(), 0);
    await c.getByRole('link', { name: 'open run' }).click();
    await page.locator('.run-view h2 .badge', { hasText: 'succeeded' }).waitFor({ timeout: 20_000 });
    const timeline = await page.locator('.timeline').innerText();
    assert.match(timeline, /approved/);
    assert.match(timeline, /checked the provider dashboard/);
    assert.match(timeline, /succeeded/);
    const run = (await request(svc.url).get(`/api/runs/${id}`).set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200)).body;
    assert.equal(run.status, 'succeeded');
    assert.equal(run.approval.decidedBy, 'bob');
    assert.equal(run.approval.comment, 'checked the provider dashboard');
  });

  it('a viewer sees pending approvals and the kill switch state but no buttons to act', async (t) => {
    const { page } = await open(t);
    const { id } = await pendingRun(svc);
    await signIn(page, TOKENS.viewer);
    const c = card(page, id);
    await c.waitFor();
    assert.match(await c.innerText(), /Read only: viewer tokens cannot approve or reject/);
    assert.equal(await page.locator('button[data-action]').count(), 0);
    assert.equal(await page.locator('textarea').count(), 0);
    await page.locator('.control [data-state="active"]').waitFor();
    assert.equal(await page.getByRole('button', { name: /Pause|Resume/ }).count(), 0);
    await page.goto(`${svc.url}/ui#/runs/${id}`);
    await page.locator('.run-view h2').waitFor();
    assert.equal(await page.locator('button[data-action]').count(), 0);
  });

  it('a decision taken meanwhile by someone else shows as "already approved by alice at T", not as an error', async (t) => {
    const { page } = await open(t);
    const { id } = await pendingRun(svc);
    // The page's timers stand still, so it cannot learn of alice's decision before bob clicks.
    await page.clock.install();
    await signIn(page, TOKENS.approver);
    const c = card(page, id);
    await c.waitFor();
    await approve(svc, id, { token: TOKENS.alice, comment: 'on it' }).expect(200);
    const answer = page.waitForResponse((r) => r.url().endsWith(`/api/runs/${id}/approve`));
    await c.getByRole('button', { name: 'Approve' }).click();
    assert.equal((await answer).status(), 409);
    const note = c.locator('.decided');
    await note.getByText(/Already approved by alice at/).waitFor();
    assert.match(await note.innerText(), /on it/);
    assert.equal(await c.locator('.msg.error').count(), 0, 'no error shown');
    assert.equal(await c.getByRole('button', { name: 'Approve' }).count(), 0);
  });

  it('an admin pauses with a reason and resumes; the state is on every view', async (t) => {
    const { page } = await open(t);
    // Whatever happens here, the tests after this one find the service running.
    t.after(() => request(svc.url).post('/api/control/resume').set('Authorization', `Bearer ${TOKENS.admin}`).expect(200));
    await signIn(page, TOKENS.admin);
    await page.locator('.control [data-state="active"]').waitFor();
    await page.getByRole('button', { name: 'Pause…' }).click();
    await page.locator('#pause-reason').fill('database failover in progress');
    await page.getByRole('button', { name: 'Pause remediation' }).click();
    const paused = page.locator('.control [data-state="paused"]');
    await paused.waitFor();
    assert.match(await paused.innerText(), /PAUSED by root at .*: database failover in progress/);
    const control = (await request(svc.url).get('/api/control').set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200)).body;
    assert.equal(control.paused, true);
    assert.equal(control.reason, 'database failover in progress');
    // Visible from the runs view too.
    await page.getByRole('link', { name: 'Runs', exact: true }).click();
    await page.locator('table.runs').waitFor();
    await paused.waitFor();

    await page.getByRole('button', { name: 'Resume' }).click();
    await page.locator('.control [data-state="active"]').waitFor();
    const resumed = (await request(svc.url).get('/api/control').set('Authorization', `Bearer ${TOKENS.viewer}`).expect(200)).body;
    assert.equal(resumed.paused, false);
  });

  it('lists runs filtered by alert name and status, pages through them, and opens one', async (t) => {
    const { page } = await open(t);
    const mine = `list-${Date.now().toString(36)}`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const [run] = await deliver(
        svc,
        alertMessage([{ labels: { suite: 'console', alertname: `Filter_${mine}`, provider: `${mine}-${i}`, severity: 'low' } }]),
      );
      ids.push(run!.id);
    }
    await signIn(page, TOKENS.viewer);
    await page.getByRole('link', { name: 'Runs', exact: true }).click();
    await page.locator('#f-alertname').fill(`Filter_${mine}`);
    await page.locator('#f-status').selectOption('pending_approval');
    await page.getByRole('button', { name: 'Apply' }).click();
    await eventually(async () => (await page.locator('tbody tr[data-run]').count()) === 3, 10_000, 'three filtered rows');
    const shown = await page.locator('tbody tr[data-run]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset['run']));
    assert.deepEqual(shown, [...ids].reverse(), 'newest first');
    assert.match(page.url(), /#\/runs\?.*alertname=Filter_/);
    // Paging: the API's page size is the console's (25); a narrower filter shows no next page.
    assert.equal(await page.getByRole('button', { name: 'Older →' }).isDisabled(), true);
    await page.locator(`tr[data-run="${ids[0]}"] a`).click();
    await page.locator('.run-view h2').waitFor();
    assert.match(await page.locator('.run-view').innerText(), new RegExp(`${mine}-0`));
    assert.match(await page.locator('.timeline').innerText(), /pending_approval/);
  });

  it('works on a phone in dark mode: nothing overflows sideways, and approving is reachable by keyboard', async (t) => {
    const { page } = await open(t, {
      viewport: { width: 390, height: 844 },
      isMobile: true,
      hasTouch: true,
      deviceScaleFactor: 2,
      colorScheme: 'dark',
    });
    const { id } = await pendingRun(svc);
    mkdirSync(ARTIFACTS, { recursive: true });
    await signIn(page, TOKENS.alice);
    const c = card(page, id);
    await c.waitFor();
    const layout = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      width: window.innerWidth,
      bg: getComputedStyle(document.body).backgroundColor,
    }));
    assert.ok(layout.scroll <= layout.width, `page ${layout.scroll}px wide in a ${layout.width}px viewport`);
    const [r, g, b] = layout.bg.match(/\d+/g)!.map(Number);
    assert.ok(r! + g! + b! < 120, `dark background, got ${layout.bg}`);
    const box = await c.getByRole('button', { name: 'Approve' }).boundingBox();
    assert.ok(
      box && box.x >= 0 && box.x + box.width <= 390 && box.height >= 36,
      `approve button on screen and big enough: ${JSON.stringify(box)}`,
    );

    await page.screenshot({ path: join(ARTIFACTS, 'console-phone-dark.png') });

    // Keyboard only: Tab to this card's Approve button and press Enter.
    await page.locator('body').focus();
    let reached = false;
    for (let i = 0; i < 80 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate((runId) => {
        const el = document.activeElement as HTMLElement | null;
        return el?.dataset['action'] === 'approve' && el.closest('article')?.getAttribute('data-run') === runId;
      }, id);
    }
    assert.ok(reached, 'the Approve button is reachable with Tab');
    await page.keyboard.press('Enter');
    await c.getByText(/Approved by alice \(you\)/).waitFor();
  });
});
