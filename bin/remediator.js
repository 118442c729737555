#!/usr/bin/env node
// The `remediator` command: the compiled CLI when the package is built (the image), else its source through tsx (a checkout).
import { existsSync } from 'node:fs';

const source = new URL('../src/cli.ts', import.meta.url);
const compiled = new URL('../dist/src/cli.js', import.meta.url);
let cli;
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  cli = await import(source.href);
} else {
  cli = await import(compiled.href);
}
process.exitCode = await cli.main(process.argv);
