/**
 * Bundles the browser console (src/ui/app) with esbuild into `outDir`: `assets/` holds the script and
 * the style sheet under content-hashed names, `index.html` names them. `npm run build` runs it into
 * dist; the service running from the TypeScript source (tests, `tsx`) runs it at start into a
 * temporary directory. esbuild is a build tool (a devDependency): this module is imported only then.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

export interface ConsoleBuild {
  /** The directory served at /ui/assets/. */
  assetsDir: string;
  /** The page served at /ui. */
  index: string;
}

export function indexHtml(script: string, style: string): string {
  return [
    '<!doctype html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="color-scheme" content="light dark">',
    '<meta name="referrer" content="no-referrer">',
    '<title>conduit-remediator console</title>',
    '<link rel="icon" href="data:,">',
    `<link rel="stylesheet" href="/ui/assets/${style}">`,
    `<script type="module" src="/ui/assets/${script}"></script>`,
    '</head>',
    '<body>',
    '<noscript>The console needs JavaScript. The HTTP API (see /docs when DOCS=true) answers without it.</noscript>',
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

export async function buildConsole(appDir: string, outDir: string): Promise<ConsoleBuild> {
  const assetsDir = join(outDir, 'assets');
  rmSync(assetsDir, { recursive: true, force: true });
  mkdirSync(assetsDir, { recursive: true });
  const result = await build({
    entryPoints: [join(appDir, 'main.ts'), join(appDir, 'console.css')],
    outdir: assetsDir,
    entryNames: '[name]-[hash]',
    bundle: true,
    format: 'esm',
    target: ['es2022', 'chrome110', 'firefox115', 'safari16'],
    minify: true,
    sourcemap: false,
    legalComments: 'none',
    metafile: true,
    write: true,
    logLevel: 'silent',
  });
  const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
  const script = outputs.find((f) => f.startsWith('main-') && f.endsWith('.js'));
  const style = outputs.find((f) => f.startsWith('console-') && f.endsWith('.css'));
  if (!script || !style) throw new Error(`console build produced ${outputs.join(', ')}`);
  const index = indexHtml(script, style);
  writeFileSync(join(outDir, 'index.html'), index);
  return { assetsDir, index };
}

// `node dist/src/ui/build.js <appDir> <outDir>`: the build step of `npm run build`.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [appDir, outDir] = process.argv.slice(2);
  if (!appDir || !outDir) {
    console.error('usage: node dist/src/ui/build.js <appDir> <outDir>');
    process.exit(2);
  }
  const built = await buildConsole(resolve(appDir), resolve(outDir));
  console.log(`console built into ${built.assetsDir}`);
}
