/**
 * Runs a real Prometheus process on 127.0.0.1 for integration tests.
 *
 *   const exporter = await startExporter();
 *   exporter.set('conduit_up', { provider: 'openai' }, 1);
 *   const prom = await startPrometheus({ scrapeTargets: [exporter.hostPort] });
 *   await prom.waitForSample('conduit_up{provider="openai"}');   // scraped at least once
 *   ...
 *   await prom.close();
 *
 * Every target is scraped as job "exporter" every `scrapeInterval` (default 1s, scrape timeout the same);
 * `ruleFiles` are loaded and evaluated every `evaluationInterval` (default 1s). The TSDB is in a fresh
 * temporary directory (removed on close), and `routePrefix` serves everything under a path such as
 * /prometheus (`url` then ends with it), as behind a proxy.
 *
 * The binary is $PROMETHEUS_BIN, else Debian's /usr/bin/prometheus (apt-get install prometheus), else
 * `prometheus` on the PATH.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPrometheusClient, type Sample } from '../../src/prometheus/client.js';
import { freePort } from './alertmanager.js';

export interface StartPrometheusOptions {
  /** host:port of every target to scrape (their /metrics). */
  scrapeTargets: string[];
  /** Scrape configurations written as they are, after the "exporter" job (omitted when `scrapeTargets` is empty). */
  scrapeConfigs?: object[];
  /** Default '1s'. */
  scrapeInterval?: string;
  /** Rule files to load (absolute paths). */
  ruleFiles?: string[];
  /** Default '1s'. */
  evaluationInterval?: string;
  /** Serve under this path, e.g. '/prometheus' (--web.route-prefix). */
  routePrefix?: string;
  /** Port on 127.0.0.1 to listen on; default a free one (picked again if it is taken meanwhile). */
  port?: number;
  /** Prometheus binary; default as described above. */
  binary?: string;
  /** How long to wait for /-/ready; default 20000 ms. */
  startTimeoutMs?: number;
}

export interface RunningPrometheus {
  /** Base URL including the route prefix, e.g. http://127.0.0.1:41234 or http://127.0.0.1:41234/prometheus */
  url: string;
  port: number;
  /** Working directory (config, TSDB). */
  dir: string;
  configPath: string;
  /**
   * Polls `query` until a sample of its answer satisfies `predicate` (default: any sample), and returns that
   * sample; throws after `timeoutMs` (default 15000) with the last answer or error.
   */
  waitForSample(query: string, predicate?: (sample: Sample) => boolean, timeoutMs?: number): Promise<Sample>;
  /** Prometheus' output so far (for failure messages). */
  logs(): string;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s), keeping its directory for `restart`. */
  stop(): Promise<void>;
  /** Stops it if it runs, then starts it again on the same port with the same TSDB, and waits for /-/ready. */
  restart(): Promise<void>;
  /** Stops the process and removes its directory. Idempotent. */
  close(): Promise<void>;
}

/** Finds the Prometheus binary, or throws saying how to install it. */
/** Why a test that needs Prometheus is skipped: only when there is no binary to run (a wrong PROMETHEUS_BIN fails instead). */
export function prometheusSkipReason(): string | false {
  if (process.env['PROMETHEUS_BIN']) return false;
  try {
    findPrometheusBinary();
    return false;
  } catch (err) {
    return `no Prometheus binary: ${(err as Error).message}`;
  }
}

export function findPrometheusBinary(explicit?: string): string {
  const fromEnv = explicit ?? process.env.PROMETHEUS_BIN;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`Prometheus binary not found at ${fromEnv}`);
    return fromEnv;
  }
  const candidates = ['/usr/bin/prometheus', '/usr/local/bin/prometheus'];
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) candidates.push(join(dir, 'prometheus'));
  const found = candidates.find((path) => existsSync(path));
  if (!found) throw new Error('Prometheus not found: install it (Debian: apt-get install prometheus) or set PROMETHEUS_BIN');
  return found;
}

/** The configuration startPrometheus writes (YAML is a superset of JSON). */
export function prometheusConfig(opts: {
  scrapeTargets: string[];
  scrapeConfigs?: object[];
  scrapeInterval?: string;
  ruleFiles?: string[];
  evaluationInterval?: string;
}): string {
  const scrapeInterval = opts.scrapeInterval ?? '1s';
  const config = {
    global: {
      scrape_interval: scrapeInterval,
      scrape_timeout: scrapeInterval,
      evaluation_interval: opts.evaluationInterval ?? '1s',
    },
    rule_files: opts.ruleFiles ?? [],
    scrape_configs: [
      ...(opts.scrapeTargets.length > 0 ? [{ job_name: 'exporter', static_configs: [{ targets: opts.scrapeTargets }] }] : []),
      ...(opts.scrapeConfigs ?? []),
    ],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

async function waitForExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return true;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await waitForExit(child, 5000))) {
    child.kill('SIGKILL');
    await waitForExit(child, 2000);
  }
}

export async function startPrometheus(opts: StartPrometheusOptions): Promise<RunningPrometheus> {
  const binary = findPrometheusBinary(opts.binary);
  const dir = await mkdtemp(join(tmpdir(), 'prometheus-'));
  const dataDir = join(dir, 'data');
  await mkdir(dataDir, { recursive: true });
  const configPath = join(dir, 'prometheus.yml');
  await writeFile(configPath, prometheusConfig(opts));
  const prefix = opts.routePrefix ? `/${opts.routePrefix.replace(/^\/+|\/+$/g, '')}` : '';
  const timeoutMs = opts.startTimeoutMs ?? 20_000;

  let output = '';
  let child: ChildProcess | undefined;

  /** Starts the process on `port` and waits for /-/ready; throws (after killing it) when it does not get ready. */
  const launch = async (port: number): Promise<void> => {
    const origin = `http://127.0.0.1:${port}`;
    const spawned = spawn(
      binary,
      [
        `--config.file=${configPath}`,
        `--storage.tsdb.path=${dataDir}`,
        `--web.listen-address=127.0.0.1:${port}`,
        `--web.external-url=${origin}${prefix}`,
        ...(prefix ? [`--web.route-prefix=${prefix}`] : []),
        '--log.level=info',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = spawned;
    const keep = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    spawned.stdout?.on('data', keep);
    spawned.stderr?.on('data', keep);
    let spawnError: Error | undefined;
    spawned.once('error', (err) => {
      spawnError = err;
    });

    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (spawnError) break;
      if (spawned.exitCode !== null || spawned.signalCode !== null) break;
      try {
        const res = await fetch(`${origin}${prefix}/-/ready`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    spawned.kill('SIGKILL');
    await waitForExit(spawned, 2000);
    throw spawnError ?? new Error(`Prometheus did not become ready on ${origin}${prefix} within ${timeoutMs} ms:\n${output}`);
  };

  let port = opts.port ?? 0;
  try {
    // The port is picked before the process binds it: retry if another process took it meanwhile.
    for (let attempt = 0; ; attempt++) {
      port = opts.port ?? (await freePort());
      const before = output.length;
      try {
        await launch(port);
        break;
      } catch (err) {
        const taken = /address already in use/i.test(output.slice(before));
        if (!taken || opts.port !== undefined || attempt >= 2) throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const url = `http://127.0.0.1:${port}${prefix}`;
  const client = createPrometheusClient({ url, requestTimeoutMs: 2000 });
  let closed: Promise<void> | undefined;

  return {
    url,
    port,
    dir,
    configPath,
    async waitForSample(query, predicate = () => true, waitMs = 15_000) {
      const deadline = Date.now() + waitMs;
      let last = 'no answer yet';
      for (;;) {
        try {
          const answer = await client.query(query);
          const found = answer.samples.find(predicate);
          if (found) return found;
          last = `${answer.resultType} ${JSON.stringify(answer.samples)}`;
        } catch (err) {
          last = (err as Error).message;
        }
        if (Date.now() > deadline) throw new Error(`no sample of ${query} as expected within ${waitMs} ms; last answer: ${last}`);
        await sleep(100);
      }
    },
    logs: () => output,
    stop: () => stopChild(child),
    async restart() {
      if (closed) throw new Error('Prometheus was closed');
      await stopChild(child);
      await launch(port);
    },
    close() {
      closed ??= (async () => {
        await stopChild(child);
        await rm(dir, { recursive: true, force: true });
      })();
      return closed;
    },
  };
}
