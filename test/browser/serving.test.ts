import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { isolation, startService, type TestService } from '../support/harness.js';

const MATRIX = `
rules:
  - name: serving
    matchers: ['suite="serving"']
    actions:
      - remediation: test.count
        params: { key: 'k' }
`;

const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

describe('/ui serves the console with a strict Content-Security-Policy', () => {
  const iso = isolation('uiserve');
  let svc: TestService;
  before(async () => {
    svc = await startService({ databaseUrl: iso.databaseUrl, prefix: iso.prefix, matrix: MATRIX });
  });
  after(async () => {
    await svc?.close();
    await iso.drop();
  });

  it('answers the page with its own CSP (no inline script), naming only same-origin hashed assets', async () => {
    for (const path of ['/ui', '/ui/']) {
      const res = await request(svc.url).get(path).expect(200);
      assert.match(String(res.headers['content-type']), /^text\/html/);
      assert.equal(res.headers['content-security-policy'], UI_CSP);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.equal(res.headers['x-frame-options'], 'DENY');
      assert.equal(res.headers['x-content-type-options'], 'nosniff');
      const html = res.text;
      // No inline script or style: every <script> has a src, and there is no style attribute or element.
      assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/);
      assert.doesNotMatch(html, /<style|\sstyle=/);
      const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
      assert.ok(refs.length >= 2, html);
      for (const ref of refs) assert.ok(ref.startsWith('/ui/assets/') || ref.startsWith('data:'), `${ref} is same-origin`);
    }
  });

  it('serves the hashed script and style sheet to be cached for good; an unknown asset is a 404', async () => {
    const html = (await request(svc.url).get('/ui').expect(200)).text;
    const script = /src="(\/ui\/assets\/main-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    const style = /href="(\/ui\/assets\/console-[A-Z0-9]+\.css)"/.exec(html)?.[1];
    assert.ok(script && style, html);
    const js = await request(svc.url).get(script).expect(200);
    assert.match(String(js.headers['content-type']), /javascript/);
    assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.ok(Number(js.headers['content-length'] ?? js.text.length) > 1000);
    const css = await request(svc.url).get(style).expect(200);
    assert.match(String(css.headers['content-type']), /text\/css/);
    assert.equal(css.headers['cache-control'], 'public, max-age=31536000, immutable');
    const missing = await request(svc.url).get('/ui/assets/main-NOPE.js').expect(404);
    assert.equal(missing.headers['cache-control'], 'no-store');
    assert.equal(missing.body.code, 'NOT_FOUND');
  });

  it('keeps the API strict: the console CSP is for /ui only', async () => {
    const res = await request(svc.url).get('/health/live');
    assert.equal(res.headers['content-security-policy'], "default-src 'none'; frame-ancestors 'none'");
  });
});
