/**
 * The supported Node.js versions (package.json `engines`, stated in the README) and the lockfile agree:
 * every locked package accepts the oldest release of each supported line, so `npm ci` warns of no
 * EBADENGINE there, and the Dockerfile's base image is one of those lines.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import semver from 'semver';

const ROOT = join(import.meta.dirname, '..', '..');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { engines?: { node?: string } | string[]; dev?: boolean }>;
};
const supported = pkg.engines.node;

/** The oldest release of each line the range admits: 20.19.0 for `^20.19.0`, and so on. */
const oldest = supported.split('||').map((part) => semver.minVersion(part.trim())!.version);

test(`engines.node (${supported}) names the lines the README states, and this Node.js is one of them`, () => {
  assert.deepEqual(oldest, ['20.19.0', '22.13.0', '24.0.0']);
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  assert.match(readme, /Node\.js 20\.19\+, 22\.13\+ or 24\+/);
  assert.ok(semver.satisfies(process.version, supported), `${process.version} is not in ${supported}`);
});

test('every package in the lockfile accepts the oldest release of each supported line', () => {
  const refused: string[] = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    const range = Array.isArray(entry.engines) ? undefined : entry.engines?.node;
    if (path === '' || range === undefined) continue;
    for (const version of oldest) {
      if (!semver.satisfies(version, range)) refused.push(`${path} (${range}) refuses ${version}${entry.dev ? ', dev' : ''}`);
    }
  }
  assert.deepEqual(refused, []);
});

test("the Dockerfile's default base image runs a supported line", () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const major = /^ARG NODE_IMAGE=node:(\d+)-slim$/m.exec(dockerfile)?.[1];
  assert.ok(major, 'ARG NODE_IMAGE=node:<major>-slim');
  assert.ok(semver.intersects(`${major}.x`, supported), `node:${major} is not in ${supported}`);
});
