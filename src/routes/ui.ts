import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

/** What the console's build writes under assets/, by extension. */
const ASSET_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

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
  // The hashed script and style sheet, a few KiB, answered from memory: one route per file, so an
  // unknown name is the application's own 404. app.ts's onSend hook lets them be cached for good.
  for (const file of readdirSync(assets.assetsDir)) {
    const type = ASSET_TYPES[extname(file)];
    if (!type || file.startsWith('.')) continue;
    const body = readFileSync(join(assets.assetsDir, file));
    app.get(`/ui/assets/${file}`, { schema: { hide: true } }, async (_req, reply) => reply.type(type).send(body));
  }
  const index = async (_req: unknown, reply: import('fastify').FastifyReply) => reply.type('text/html; charset=utf-8').send(assets.index);
  app.get('/ui', { schema: page }, index);
  app.get('/ui/', { schema: { ...page, hide: true } }, index);
};
