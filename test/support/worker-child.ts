/**
 * Spawns `worker-process.ts`: a worker-only service process with the test remediations, configured
 * from the environment like the real server, for tests that SIGKILL a worker mid-run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { API_TOKENS, REDIS_URL, WEBHOOK_TOKEN } from './harness.js';

export interface WorkerChildOptions {
  databaseUrl: string;
  prefix: string;
  matrixPath: string;
  env?: Record<string, string>;
}

/** Starts the worker process and resolves once it is ready to take jobs. The caller kills it. */
export async function spawnWorker(opts: WorkerChildOptions): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/support/worker-process.ts'], {
    env: {
      ...process.env,
      ...opts.env,
      DATABASE_URL: opts.databaseUrl,
      REDIS_URL,
      QUEUE_PREFIX: opts.prefix,
      MATRIX_PATH: opts.matrixPath,
      WEBHOOK_TOKEN,
      API_TOKENS,
      LOG_LEVEL: 'silent',
      PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    await once(child.stdout!, 'data');
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return child;
}
