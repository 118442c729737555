import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';
import { ApiError } from '../errors.js';

/**
 * The browser console at /ui: one HTML page and its hashed script and style sheet under /ui/assets/,
 * talking to the same HTTP API with the bearer token the user pastes. Compiled (`dist/`), it serves
 * what `npm run build` bundled into dist/src/ui/console; run from the TypeScript source, it bundles
 * the console once per process into a temporary directory.
 */

export const UI_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

interface Assets {
  assetsDir: string;
  index: string;
}

let fromSource: Promise<Assets> | undefined;

async function consoleAssets(): Promise<Assets | undefined> {
  if (import.meta.url.endsWith('.ts')) {
    fromSource ??= (async () => {
      const outDir = mkdtempSync(join(tmpdir(), 'remediator-console-'));
      process.once('exit', () => rmSync(outDir, { recursive: true, force: true }));
      const { buildConsole } = await import('../ui/build.js');
      return buildConsole(fileURLToPath(new URL('../ui/app/', import.meta.url)), outDir);
    })();
    return fromSource;
  }
  const outDir = fileURLToPath(new URL('../ui/console/', import.meta.url));
  const indexPath = join(outDir, 'index.html');
  if (!existsSync(indexPath)) return undefined;
  return { assetsDir: join(outDir, 'assets'), index: readFileSync(indexPath, 'utf8') };
}

export const uiRoutes: FastifyPluginAsync = async (app) => {
  const assets = await consoleAssets();
  const page = { summary: 'The browser console (HTML; sign in with an API token)', tags: ['console'] };
  if (!assets) {
    app.log.warn('the console is not built (npm run build bundles it into dist/src/ui/console); /ui answers 503');
    const missing = async () => {
      throw new ApiError('CONSOLE_NOT_BUILT', 'the console was not built (npm run build bundles it into dist/src/ui/console)');
    };
    app.get('/ui', { schema: page }, missing);
    app.get('/ui/', { schema: { ...page, hide: true } }, missing);
    return;
  }
  await app.register(fastifyStatic, {
    root: assets.assetsDir,
    prefix: '/ui/assets/',
    decorateReply: false,
    index: false,
    list: false,
    dotfiles: 'deny',
    // The names carry their content's hash: app.ts's onSend hook lets them be cached for good.
    cacheControl: false,
    wildcard: false,
  });
  const index = async (_req: unknown, reply: import('fastify').FastifyReply) => reply.type('text/html; charset=utf-8').send(assets.index);
  app.get('/ui', { schema: page }, index);
  app.get('/ui/', { schema: { ...page, hide: true } }, index);
};
