import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

/** Ports `freePort` handed out in this process: the OS may offer a port again once it is closed. */
const handedOut = new Set<number>();

/**
 * A loopback port nothing listens on now, and one this process has not been given before, so that two
 * servers started together (replicas, a restart next to the first) never race for the same port.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port) || attempt >= 50) {
      handedOut.add(port);
      return port;
    }
  }
}

/**
 * A private redis-server on a loopback port, for tests that stop and restart Redis without
 * touching the shared one. No persistence: a restart comes back empty, as after a crash.
 */
export async function startRedisServer(port?: number) {
  const p = port ?? (await freePort());
  let child: ChildProcess | undefined;
  const url = `redis://127.0.0.1:${p}`;

  async function start(): Promise<void> {
    child = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
      probe.on('error', () => {});
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch {
        probe.disconnect();
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error(`redis-server on ${p} did not start`);
  }

  async function stop(): Promise<void> {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  }

  await start();
  return { url, port: p, start, stop };
}
