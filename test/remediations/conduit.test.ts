import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { Value } from '@sinclair/typebox/value';
import clearCache from '../../remediations/conduit/clear-cache.js';
import disableKey from '../../remediations/conduit/disable-key.js';
import disableProvider from '../../remediations/conduit/disable-provider.js';
import enableProvider from '../../remediations/conduit/enable-provider.js';
import testProvider from '../../remediations/conduit/test-provider.js';
import notifyWebhook from '../../remediations/notify/webhook.js';
import { createCatalogue } from '../../remediations/catalogue.js';
import { RemediationError, type ExecutionContext, type Remediation, type RevertStep } from '../../remediations/types.js';
import { prepareParams } from '../../src/matrix/match.js';
import { startConduitAdmin, type Provider } from '../support/conduit-admin.js';
import { executionContext, memoryLog } from '../support/context.js';

async function conduit(t: TestContext, opts: { providers?: Array<Partial<Provider>>; apiKey?: string; legacyTestAnswers?: boolean } = {}) {
  const admin = await startConduitAdmin(opts);
  t.after(() => admin.close());
  const ctx = (o: { apiKey?: string; signal?: AbortSignal; timeoutMs?: number } = {}) =>
    executionContext({ conduit: { baseUrl: admin.url, apiKey: o.apiKey ?? admin.apiKey } }, o);
  const puts = () => admin.requests.filter((r) => r.method === 'PUT');
  return { admin, ctx, puts };
}

const catalogue = createCatalogue();

/** The revert of a run, from its result as the run record stores it (JSON). */
const revertOf = (r: Remediation, params: Record<string, unknown>, result: Record<string, unknown>): RevertStep | null =>
  r.revert!(params as never, JSON.parse(JSON.stringify(result)) as Record<string, unknown>);

/** A revert step made ready as the engine makes a revert run: its remediation from the catalogue, its params prepared (schema, plan). */
function prepared(step: RevertStep | null) {
  assert.ok(step, 'the run has a revert');
  const inverse = catalogue.get(step.remediation);
  assert.ok(inverse, `${step.remediation} is in the catalogue`);
  const ready = prepareParams(inverse, step.params);
  assert.ok(ready.ok, ready.ok ? '' : ready.error);
  return { plan: ready.plan, execute: (ctx: ExecutionContext) => inverse.execute(ready.params, ctx) };
}

async function failure(promise: Promise<unknown>): Promise<RemediationError> {
  const err = await promise.then(
    () => assert.fail('expected the remediation to fail'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof RemediationError, `expected a RemediationError, got ${String(err)}`);
  return err;
}

test('disable sends the whole provider back, so Conduit keeps its baseUrl', async (t) => {
  const { admin, ctx, puts } = await conduit(t);
  const result = await disableProvider.execute({ provider: 'openai' }, ctx());

  const openai = admin.providers.find((p) => p.id === 1)!;
  assert.equal(openai.isEnabled, false);
  assert.equal(openai.baseUrl, 'https://api.openai.com/v1');
  assert.notEqual(openai.updatedAt, '2025-01-01T00:00:00Z');
  assert.equal(puts().length, 1);
  assert.equal(puts()[0]!.path, '/api/ProviderCredentials/1');
  assert.deepEqual(puts()[0]!.body, { id: 1, providerName: 'openai', baseUrl: 'https://api.openai.com/v1', isEnabled: false });
  assert.equal(puts()[0]!.headers['x-api-key'], admin.apiKey);
  assert.deepEqual(result, {
    changed: true,
    providerId: 1,
    providerName: 'openai',
    isEnabled: false,
    baseUrl: 'https://api.openai.com/v1',
    summary: 'Disabled Conduit provider "openai" (id 1)',
  });
});

test('the stand-in nulls baseUrl on a partial body, as Conduit does', async (t) => {
  const { admin } = await conduit(t);
  const res = await fetch(`${admin.url}/api/ProviderCredentials/1`, {
    method: 'PUT',
    headers: { 'X-API-Key': admin.apiKey, 'Content-Type': 'application/json' },
    body: JSON.stringify({ providerName: 'openai', isEnabled: false }),
  });
  assert.equal(res.status, 204);
  assert.equal(admin.providers[0]!.baseUrl, null);
});

test('disable resolves the provider by name case-insensitively and by numeric id', async (t) => {
  const { admin, ctx, puts } = await conduit(t);
  await disableProvider.execute({ provider: 'OpenAI' }, ctx());
  await disableProvider.execute({ provider: '2' }, ctx());

  assert.deepEqual(
    puts().map((r) => r.path),
    ['/api/ProviderCredentials/1', '/api/ProviderCredentials/2'],
  );
  assert.deepEqual(
    admin.providers.map((p) => p.isEnabled),
    [false, false, false],
  );
  assert.equal(admin.providers[1]!.baseUrl, 'https://api.anthropic.com');
});

test('disabling a provider that is already disabled sends no PUT', async (t) => {
  const { ctx, puts } = await conduit(t);
  const result = await disableProvider.execute({ provider: 'groq' }, ctx());
  assert.equal(result.changed, false);
  assert.equal(result.summary, 'Conduit provider "groq" (id 3) was already disabled; nothing changed');
  assert.equal(puts().length, 0);

  await disableProvider.execute({ provider: 'openai' }, ctx());
  await disableProvider.execute({ provider: 'openai' }, ctx());
  assert.equal(puts().length, 1);
});

test('enable flips a disabled provider back and keeps its baseUrl', async (t) => {
  const { admin, ctx, puts } = await conduit(t);
  await disableProvider.execute({ provider: 'openai' }, ctx());
  const result = await enableProvider.execute({ provider: 'openai' }, ctx());

  assert.equal(result.changed, true);
  assert.equal(result.summary, 'Enabled Conduit provider "openai" (id 1)');
  assert.equal(admin.providers[0]!.isEnabled, true);
  assert.equal(admin.providers[0]!.baseUrl, 'https://api.openai.com/v1');
  assert.deepEqual(puts()[1]!.body, { id: 1, providerName: 'openai', baseUrl: 'https://api.openai.com/v1', isEnabled: true });

  const already = await enableProvider.execute({ provider: 'anthropic' }, ctx());
  assert.equal(already.changed, false);
  assert.equal(already.summary, 'Conduit provider "anthropic" (id 2) was already enabled; nothing changed');
  assert.equal(puts().length, 2);
});

test('an unknown provider is not_found and names the providers Conduit knows', async (t) => {
  const { ctx, puts } = await conduit(t);
  const err = await failure(disableProvider.execute({ provider: 'mistral' }, ctx()));
  assert.equal(err.code, 'not_found');
  assert.equal(err.retryable, false);
  assert.match(err.message, /mistral/);
  assert.match(err.message, /openai, anthropic, groq/);
  assert.equal(puts().length, 0);
});

test('two providers with one name are refused rather than guessed', async (t) => {
  const { ctx, puts } = await conduit(t, {
    providers: [
      { id: 7, providerName: 'azure', baseUrl: 'https://eu.example' },
      { id: 8, providerName: 'Azure', baseUrl: 'https://us.example' },
    ],
  });
  const err = await failure(disableProvider.execute({ provider: 'azure' }, ctx()));
  assert.equal(err.code, 'refused');
  assert.equal(puts().length, 0);
  assert.equal((await disableProvider.execute({ provider: '8' }, ctx())).changed, true);
});

test('a refused API key is unauthorized, not retried, and never echoed', async (t) => {
  const { ctx, puts } = await conduit(t);
  const wrongKey = 'wrong-key-0123456789';
  const context = ctx({ apiKey: wrongKey });
  const err = await failure(disableProvider.execute({ provider: 'openai' }, context));

  assert.equal(err.code, 'unauthorized');
  assert.equal(err.retryable, false);
  assert.match(err.message, /refused the API key/);
  assert.ok(!err.message.includes(wrongKey));
  assert.ok(!JSON.stringify(err.detail).includes(wrongKey));
  assert.ok(!JSON.stringify((context.log as ReturnType<typeof memoryLog>).lines).includes(wrongKey));
  assert.equal(puts().length, 0);
});

test('a 503 is a retryable target_error naming the status and path', async (t) => {
  const { admin, ctx } = await conduit(t);
  admin.failNext(1, 503);
  const err = await failure(disableProvider.execute({ provider: 'openai' }, ctx()));
  assert.equal(err.code, 'target_error');
  assert.equal(err.retryable, true);
  assert.deepEqual(err.detail, { status: 503, method: 'GET', path: '/api/ProviderCredentials', response: 'Service Unavailable' });
});

test('a 409 is a retryable conflict', async (t) => {
  const { admin, ctx } = await conduit(t);
  admin.failNext(1, 409);
  const err = await failure(testProvider.execute({ provider: 'openai' }, ctx()));
  assert.equal(err.code, 'conflict');
  assert.equal(err.retryable, true);
});

test('an answer slower than timeoutMs is a retryable timeout', async (t) => {
  const { admin, ctx, puts } = await conduit(t);
  admin.delayNext(3000);
  const started = Date.now();
  const err = await failure(disableProvider.execute({ provider: 'openai' }, ctx({ timeoutMs: 100 })));
  assert.equal(err.code, 'timeout');
  assert.equal(err.retryable, true);
  assert.ok(Date.now() - started < 2000, 'the timeout stopped the wait');
  assert.equal(puts().length, 0);
});

test('an aborted signal stops the remediation, before and during a request', async (t) => {
  const { admin, ctx, puts } = await conduit(t);
  const before = new AbortController();
  before.abort(new Error('shutdown'));
  assert.equal((await failure(disableProvider.execute({ provider: 'openai' }, ctx({ signal: before.signal })))).code, 'aborted');
  assert.equal(admin.requests.length, 0);

  admin.delayNext(3000);
  const during = new AbortController();
  setTimeout(() => during.abort(new Error('shutdown')), 50);
  const started = Date.now();
  assert.equal((await failure(disableProvider.execute({ provider: 'openai' }, ctx({ signal: during.signal })))).code, 'aborted');
  assert.ok(Date.now() - started < 2000);
  assert.equal(puts().length, 0);
});

test('an unreachable Admin API is a retryable target_error', async (t) => {
  const { admin, ctx } = await conduit(t);
  const context = ctx();
  await admin.close();
  const err = await failure(disableProvider.execute({ provider: 'openai' }, context));
  assert.equal(err.code, 'target_error');
  assert.equal(err.retryable, true);
});

/** A second HTTP listener that records whatever reaches it: a redirect target that must never be asked. */
async function elsewhere(t: TestContext): Promise<{ url: string; hits: Array<{ method: string; url: string; apiKey: unknown }> }> {
  const hits: Array<{ method: string; url: string; apiKey: unknown }> = [];
  const server = createServer((req, res) => {
    hits.push({ method: req.method ?? '', url: req.url ?? '', apiKey: req.headers['x-api-key'] });
    res.writeHead(200, { 'content-type': 'application/json' }).end('[]');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits };
}

test('a redirect from the Admin API is not followed: the other host gets no request and the run names the redirect', async (t) => {
  const { admin, ctx, puts } = await conduit(t);
  const other = await elsewhere(t);

  admin.redirectNext(other.url, 307);
  const get = await failure(disableProvider.execute({ provider: 'openai' }, ctx()));
  assert.equal(get.code, 'target_error');
  assert.equal(get.retryable, false);
  assert.match(
    get.message,
    /answered 307 redirecting GET \/api\/ProviderCredentials to http:\/\/127\.0\.0\.1:\d+\/api\/ProviderCredentials/,
  );
  assert.match(get.message, /redirects are not followed/);
  assert.deepEqual(get.detail, {
    status: 307,
    method: 'GET',
    path: '/api/ProviderCredentials',
    location: `${other.url}/api/ProviderCredentials`,
  });

  // A POST redirected with 308 (which would keep method and body), to a URL with a token in its query.
  admin.redirectNext(`${other.url}/sso?sig=redirect-secret&next=`, 308);
  const post = await failure(clearCache.execute({ cacheId: 'model-list' }, ctx()));
  assert.equal(post.code, 'target_error');
  assert.match(post.message, new RegExp(`answered 308 redirecting POST \\S+ to ${other.url.replace(/\./g, '\\.')}/sso;`));
  assert.doesNotMatch(post.message, /redirect-secret/);
  assert.ok(!post.message.includes(admin.apiKey));

  assert.deepEqual(other.hits, [], 'the redirect target received a request');
  assert.equal(puts().length, 0);
  assert.equal(admin.clearedCaches.length, 0);
  assert.equal(admin.providers[0]!.isEnabled, true);
  // The same client goes on working once the Admin API stops redirecting.
  assert.equal((await disableProvider.execute({ provider: 'openai' }, ctx())).changed, true);
});

test('a missing Conduit target fails with target_not_configured', async () => {
  const err = await failure(disableProvider.execute({ provider: 'openai' }, executionContext({})));
  assert.equal(err.code, 'target_not_configured');
});

test('test-provider posts to the test endpoint of the resolved id and returns the answer', async (t) => {
  const { admin, ctx } = await conduit(t);
  const result = await testProvider.execute({ provider: 'Anthropic' }, ctx());
  assert.deepEqual(
    admin.requests.map((r) => `${r.method} ${r.path}`),
    ['GET /api/ProviderCredentials', 'POST /api/ProviderCredentials/test/2'],
  );
  assert.equal(result.success, true);
  assert.equal(result.providerId, 2);
  assert.equal(result.message, 'Connection successful');
  assert.equal(result.summary, `Conduit's connection test of provider "anthropic" (id 2) succeeded; it listed 3 models`);
});

test('a failed connection test fails the run with test_failed, not retried, naming the provider and what Conduit said', async (t) => {
  const { admin, ctx } = await conduit(t, { providers: [{ id: 3, providerName: 'azure', baseUrl: 'https://eu.example' }] });
  admin.failingTests.set(3, '401 invalid key');
  const err = await failure(testProvider.execute({ provider: 'Azure' }, ctx()));

  assert.equal(err.code, 'test_failed');
  assert.equal(err.retryable, false);
  assert.equal(err.message, `Conduit's connection test of provider "azure" (id 3) failed: 401 invalid key`);
  assert.equal(err.detail?.providerId, 3);
  assert.equal(err.detail?.providerName, 'azure');
  const answer = err.detail?.answer as Record<string, unknown>;
  assert.equal(answer.success, false);
  assert.equal(answer.message, '401 invalid key');
  assert.equal(answer.modelCount, 0);
  assert.equal(admin.requests.filter((r) => r.method === 'POST').length, 1, 'the remediation asked once');
  assert.equal(admin.requests.filter((r) => r.method === 'PUT').length, 0, 'a failed test changes nothing');

  // Another provider's test still succeeds; and a failure Conduit gives no words for is named as such.
  admin.providers.push({ ...admin.providers[0]!, id: 4, providerName: 'openai' });
  assert.equal((await testProvider.execute({ provider: 'openai' }, ctx())).success, true);
  admin.failingTests.set(4, '');
  const silent = await failure(testProvider.execute({ provider: '4' }, ctx()));
  assert.equal(silent.code, 'test_failed');
  assert.equal(silent.message, `Conduit's connection test of provider "openai" (id 4) failed`);
});

test('older Conduit versions name the outcome isSuccessful: a failure fails, a success returns', async (t) => {
  const { admin, ctx } = await conduit(t, { legacyTestAnswers: true });
  const ok = await testProvider.execute({ provider: 'openai' }, ctx());
  assert.equal(ok.isSuccessful, true);
  assert.equal(ok.success, undefined);
  assert.equal(ok.summary, `Conduit's connection test of provider "openai" (id 1) succeeded; it listed 3 models`);

  admin.failingTests.set(1, 'connect ECONNREFUSED');
  const err = await failure(testProvider.execute({ provider: 'openai' }, ctx()));
  assert.equal(err.code, 'test_failed');
  assert.equal(err.retryable, false);
  assert.equal(err.message, `Conduit's connection test of provider "openai" (id 1) failed: connect ECONNREFUSED`);
  assert.equal((err.detail?.answer as Record<string, unknown>).isSuccessful, false);
});

test('disable-key checks the key belongs to the provider, then disables it with the reason', async (t) => {
  const { admin, ctx } = await conduit(t);
  const params = { providerId: 1, keyId: 12, reason: 'quota exhausted' };
  const result = await disableKey.execute(params, ctx());

  const posts = admin.requests.filter((r) => r.method === 'POST');
  assert.equal(posts.length, 1);
  assert.equal(posts[0]!.path, '/api/provider-errors/keys/12/disable');
  assert.equal(posts[0]!.body, 'quota exhausted');
  assert.equal(admin.keys.find((k) => k.id === 12)!.isEnabled, false);
  assert.equal(result.changed, true);
  assert.equal(result.summary, 'Disabled key 12 ("openai-backup") of Conduit provider 1');

  const again = await disableKey.execute(params, ctx());
  assert.equal(again.changed, false);
  assert.equal(again.summary, 'Key 12 ("openai-backup") of Conduit provider 1 was already disabled; nothing changed');
  assert.equal(admin.requests.filter((r) => r.method === 'POST').length, 1);

  const err = await failure(disableKey.execute({ providerId: 2, keyId: 11, reason: 'wrong provider' }, ctx()));
  assert.equal(err.code, 'not_found');
  assert.equal(admin.keys.find((k) => k.id === 11)!.isEnabled, true);
});

test('clear-cache posts to the cache clear endpoint', async (t) => {
  const { admin, ctx } = await conduit(t);
  const result = await clearCache.execute({ cacheId: 'model-list' }, ctx());
  assert.deepEqual(
    admin.requests.map((r) => `${r.method} ${r.path}`),
    ['POST /api/config/caching/model-list/clear'],
  );
  assert.deepEqual(admin.clearedCaches, ['model-list']);
  assert.equal(result.cacheId, 'model-list');
  assert.equal(result.summary, 'Cleared Conduit cache "model-list" (HTTP 200)');
});

test('plan names the exact provider and change, target keys are stable', () => {
  const disablePlan = disableProvider.plan({ provider: 'openai' });
  assert.match(disablePlan, /"openai"/);
  assert.match(disablePlan, /isEnabled=false/);
  assert.match(disablePlan, /PUT \/api\/ProviderCredentials/);
  assert.match(enableProvider.plan({ provider: 'openai' }), /isEnabled=true/);
  assert.match(disableKey.plan({ providerId: 1, keyId: 12, reason: 'r' }), /keys\/12\/disable/);
  assert.match(clearCache.plan({ cacheId: 'model-list' }), /caching\/model-list\/clear/);

  assert.equal(disableProvider.target({ provider: 'OpenAI' }), 'conduit/provider/openai');
  assert.equal(enableProvider.target({ provider: 'openai' }), 'conduit/provider/openai');
  assert.equal(disableKey.target({ providerId: 1, keyId: 12, reason: 'r' }), 'conduit/key/12');
  assert.equal(clearCache.target({ cacheId: 'model-list' }), 'conduit/cache/model-list');
  assert.equal(disableProvider.name, 'conduit.disable-provider');
  assert.equal(enableProvider.name, 'conduit.enable-provider');
  assert.equal(disableProvider.requires, 'conduit');
});

test('params that do not fit the schema are rejected before anything runs', () => {
  for (const r of [disableProvider, enableProvider, testProvider]) {
    assert.equal(Value.Check(r.params, { provider: 'x; DROP TABLE' }), false);
    assert.equal(Value.Check(r.params, { provider: '../1' }), false);
    assert.equal(Value.Check(r.params, { provider: '' }), false);
    assert.equal(Value.Check(r.params, { provider: 'a'.repeat(101) }), false);
    assert.equal(Value.Check(r.params, { provider: 'openai', extra: 1 }), false);
    assert.equal(Value.Check(r.params, { provider: 'Azure OpenAI eu-west_1.2' }), true);
    assert.equal(Value.Check(r.params, { provider: '12' }), true);
  }
  assert.equal(Value.Check(clearCache.params, { cacheId: '../admin' }), false);
  assert.equal(Value.Check(clearCache.params, { cacheId: 'model-list' }), true);
  assert.equal(Value.Check(disableKey.params, { providerId: '1', keyId: 2, reason: 'r' }), false);
  assert.equal(Value.Check(disableKey.params, { providerId: 1, keyId: 2.5, reason: 'r' }), false);
  assert.equal(Value.Check(disableKey.params, { providerId: 1, keyId: 2, reason: '' }), false);
  assert.equal(Value.Check(disableKey.params, { providerId: 1, keyId: 2, reason: 'quota' }), true);
});

test('the revert of a disable enables the provider again, keeping its baseUrl, while it is still disabled', async (t) => {
  const { admin, ctx, puts } = await conduit(t);
  const params = { provider: 'OpenAI' };
  const step = revertOf(disableProvider, params, await disableProvider.execute(params, ctx()));
  assert.deepEqual(step, { remediation: 'conduit.enable-provider', params: { provider: '1', ifEnabled: false } });
  const revert = prepared(step);
  assert.match(revert.plan, /isEnabled=true on Conduit provider "1".*refused \(changed_since\) unless it is still disabled$/);
  const result = await revert.execute(ctx());
  assert.equal(result['changed'], true);
  assert.equal(result['summary'], 'Enabled Conduit provider "openai" (id 1)');
  assert.equal(admin.providers[0]!.isEnabled, true);
  assert.equal(admin.providers[0]!.baseUrl, 'https://api.openai.com/v1');
  assert.deepEqual(puts().at(-1)!.body, { id: 1, providerName: 'openai', baseUrl: 'https://api.openai.com/v1', isEnabled: true });
  assert.equal(puts().length, 2);
});

test('the revert of an enable disables the provider again while it is still enabled', async (t) => {
  const { admin, ctx, puts } = await conduit(t);
  const params = { provider: 'groq' };
  const step = revertOf(enableProvider, params, await enableProvider.execute(params, ctx()));
  assert.deepEqual(step, { remediation: 'conduit.disable-provider', params: { provider: '3', ifEnabled: true } });
  const revert = prepared(step);
  assert.match(revert.plan, /isEnabled=false.*refused \(changed_since\) unless it is still enabled$/);
  assert.equal((await revert.execute(ctx()))['summary'], 'Disabled Conduit provider "groq" (id 3)');
  assert.equal(admin.providers[2]!.isEnabled, false);
  assert.deepEqual(
    puts().map((r) => (r.body as { isEnabled: boolean }).isEnabled),
    [true, false],
  );
});

test('a revert refuses with changed_since, writing nothing, once someone else switched the provider', async (t) => {
  const { admin, ctx, puts } = await conduit(t);
  // Disabled by the run, enabled again by hand: its revert would not enable it "again".
  const disabled = prepared(
    revertOf(disableProvider, { provider: 'openai' }, await disableProvider.execute({ provider: 'openai' }, ctx())),
  );
  admin.providers[0]!.isEnabled = true;
  // Enabled by the run, disabled again by hand: its revert leaves it disabled.
  const enabled = prepared(revertOf(enableProvider, { provider: 'groq' }, await enableProvider.execute({ provider: 'groq' }, ctx())));
  admin.providers[2]!.isEnabled = false;
  const before = puts().length;

  const err = await failure(disabled.execute(ctx()));
  assert.equal(err.code, 'changed_since');
  assert.equal(err.retryable, false);
  assert.equal(err.message, 'Conduit provider "openai" (id 1) is enabled now, not as the reverted run left it; leaving it as it is');
  assert.deepEqual(err.detail, { providerId: 1, providerName: 'openai', isEnabled: true });

  const err2 = await failure(enabled.execute(ctx()));
  assert.equal(err2.code, 'changed_since');
  assert.equal(err2.retryable, false);
  assert.match(err2.message, /"groq" \(id 3\) is disabled now/);

  assert.equal(puts().length, before, 'nothing written');
  assert.deepEqual(
    admin.providers.map((p) => p.isEnabled),
    [true, true, false],
  );
});

test('a switch that changed nothing has no revert; the other Conduit and notify remediations have none at all', async (t) => {
  const { ctx, puts } = await conduit(t);
  const noop = await disableProvider.execute({ provider: 'groq' }, ctx());
  assert.equal(noop['changed'], false);
  assert.equal(revertOf(disableProvider, { provider: 'groq' }, noop), null);
  const already = await enableProvider.execute({ provider: 'anthropic' }, ctx());
  assert.equal(already['changed'], false);
  assert.equal(revertOf(enableProvider, { provider: 'anthropic' }, already), null);
  assert.equal(puts().length, 0);
  for (const r of [testProvider, disableKey, clearCache, notifyWebhook]) assert.equal(r.revert, undefined, r.name);
});

test('ifEnabled is a boolean, nothing else', () => {
  for (const r of [disableProvider, enableProvider]) {
    assert.equal(Value.Check(r.params, { provider: 'openai', ifEnabled: true }), true);
    assert.equal(Value.Check(r.params, { provider: 'openai', ifEnabled: 'yes' }), false);
    assert.equal(Value.Check(r.params, { provider: 'openai', ifEnabled: null }), false);
  }
  assert.equal(Value.Check(testProvider.params, { provider: 'openai', ifEnabled: true }), false);
});
