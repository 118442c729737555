/**
 * `src/server.ts` in a child process, as an operator runs it, for tests of what only a real
 * process shows: signals, exit codes, output lines, memory.
 *
 *   const server = await startServerProcess(serviceEnv(iso, matrixPath, { LOG_LEVEL: 'info' }));
 *   await server.ready();
 *   ... fetch(`${server.url}/...`), server.output() ...
 *   await server.stop();                     // SIGTERM; resolves with the exit code
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { API_TOKENS, eventually, REDIS_URL, WEBHOOK_TOKEN } from './harness.js';
import { freePort } from './redis-server.js';

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  url: string;
  /** Everything the process wrote so far, stdout and stderr. */
  output(): string;
  /** Waits for /health/ready to answer 200; fails with the output when the process exits first. */
  ready(timeoutMs?: number): Promise<void>;
  /** SIGTERM (SIGKILL after `killAfterMs`), and the exit code; at once when it has exited. */
  stop(killAfterMs?: number): Promise<number | null>;
}

/** The environment of a service process on a test's own database and Redis prefix, with the harness's tokens. */
export function serviceEnv(
  iso: { databaseUrl: string; prefix: string },
  matrixPath: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    DATABASE_URL: iso.databaseUrl,
    REDIS_URL,
    QUEUE_PREFIX: iso.prefix,
    MATRIX_PATH: matrixPath,
    WEBHOOK_TOKEN,
    API_TOKENS,
    ...extra,
  };
}

export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const url = `http://127.0.0.1:${port}`;
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    port,
    url,
    output: () => out,
    async ready(timeoutMs = 30_000) {
      await eventually(
        async () => {
          if (exited()) throw new Error(`the server exited with ${child.exitCode ?? child.signalCode}: ${out.slice(-2000)}`);
          const res = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
          return res?.status === 200;
        },
        timeoutMs,
        `server on ${port} ready`,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${out.slice(-3000)}`);
      });
    },
    async stop(killAfterMs = 25_000) {
      if (!exited()) {
        const done = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        await done;
        clearTimeout(timer);
      }
      return child.exitCode;
    },
  };
}
