import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Child } from './processes.js';
import { BENCH, PROFILE } from './settings.js';

// ---------------------------------------------------------------------------------------------------
// Profiling (BENCH_PROFILE=1): the service profiles itself through the inspector, per scenario.

export const profiles: Array<{ name: string; path: string }> = [];
export async function profiled<T>(svc: Child, name: string, fn: () => Promise<T>): Promise<T> {
  if (!PROFILE) return fn();
  const dir = join(BENCH, 'profiles');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.cpuprofile`);
  const started = svc.waitLine('PROFILE-STARTED', 10_000);
  svc.send('profile-start');
  await started;
  try {
    return await fn();
  } finally {
    const done = svc.waitLine('PROFILE-DONE', 30_000);
    svc.send(`profile-stop ${path}`);
    await done;
    profiles.push({ name, path });
  }
}
