/**
 * Runs a real Alertmanager process on 127.0.0.1 for end-to-end tests.
 *
 *   const am = await startAlertmanager({ webhookUrl: 'http://127.0.0.1:8080/webhooks/alertmanager', token });
 *   await am.postAlerts([{ labels: { alertname: 'ConduitProviderDown', provider: 'openai', severity: 'critical' } }]);
 *   ...                                   // the webhook receives a firing notification
 *   await am.resolveAlerts([{ labels: { alertname: 'ConduitProviderDown', provider: 'openai', severity: 'critical' } }]);
 *   ...                                   // ... then a resolved one
 *   await am.close();
 *
 * The receiver is configured as in config/alertmanager/alertmanager.yml (bearer
 * token from a credentials file, send_resolved, max_alerts 0) with test timings:
 * group_wait 0s, group_interval 1s, repeat_interval 1h. Clustering is disabled.
 * `sendResolved: false` makes a receiver that never sends resolved notifications
 * (as one configured without send_resolved, or a resolved notice that is lost).
 * `port` pins the listen port, so a service can be given the URL before
 * Alertmanager starts (and Alertmanager the service's webhook URL).
 *
 * The binary is $ALERTMANAGER_BIN, else Debian's /usr/bin/prometheus-alertmanager
 * (apt-get install prometheus-alertmanager), else `alertmanager` on the PATH.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface StartAlertmanagerOptions {
  /** Where Alertmanager posts notifications, e.g. http://127.0.0.1:8080/webhooks/alertmanager. */
  webhookUrl: string;
  /** Bearer token sent in `Authorization: Bearer <token>` (written to a credentials file). */
  token: string;
  /** Directory for the config, token file and storage; a fresh temporary one (removed on close) when unset. */
  dir?: string;
  /** Route group_by; default ['alertname'] (as in the captured fixtures). ['...'] makes every alert its own group. */
  groupBy?: string[];
  /** Default '0s'. */
  groupWait?: string;
  /** Default '1s'. */
  groupInterval?: string;
  /** Default '1h'. */
  repeatInterval?: string;
  /** The receiver's send_resolved; default true. false: Alertmanager never delivers a resolution. */
  sendResolved?: boolean;
  /** Port on 127.0.0.1 to listen on; default a free one (picked again if it is taken meanwhile). */
  port?: number;
  /** Alertmanager binary; default as described above. */
  binary?: string;
  /** How long to wait for /-/ready; default 15000 ms. */
  startTimeoutMs?: number;
}

/** An alert as POST /api/v2/alerts takes it. Dates may be Date objects or RFC 3339 strings. */
export interface PostableAlert {
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  startsAt?: string | Date;
  endsAt?: string | Date;
  generatorURL?: string;
}

export interface RunningAlertmanager {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  url: string;
  port: number;
  /** Working directory (config, token file, storage). */
  dir: string;
  configPath: string;
  /** POST /api/v2/alerts; throws unless Alertmanager answers 200. */
  postAlerts(alerts: PostableAlert[]): Promise<void>;
  /**
   * Posts the alerts again, ended now (endsAt = now, so in the past by the time
   * Alertmanager looks at it) and with the startsAt they were first posted with,
   * as Prometheus does: Alertmanager resolves them and sends a resolved
   * notification with the same fingerprint and startsAt (none with `sendResolved: false`).
   */
  resolveAlerts(alerts: PostableAlert[]): Promise<void>;
  /** GET /api/v2/alerts (the alerts Alertmanager holds). */
  alerts(): Promise<unknown[]>;
  /** Alertmanager's output so far (for failure messages). */
  logs(): string;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s) and removes a temporary dir. Idempotent. */
  close(): Promise<void>;
}

/** Finds the Alertmanager binary, or throws saying how to install it. */
/** Why a test that needs Alertmanager is skipped: only when there is no binary to run (a wrong ALERTMANAGER_BIN fails instead). */
export function alertmanagerSkipReason(): string | false {
  if (process.env['ALERTMANAGER_BIN']) return false;
  try {
    findAlertmanagerBinary();
    return false;
  } catch (err) {
    return `no Alertmanager binary: ${(err as Error).message}`;
  }
}

export function findAlertmanagerBinary(explicit?: string): string {
  const fromEnv = explicit ?? process.env.ALERTMANAGER_BIN;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`Alertmanager binary not found at ${fromEnv}`);
    return fromEnv;
  }
  const candidates = ['/usr/bin/prometheus-alertmanager', '/usr/local/bin/alertmanager'];
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    candidates.push(join(dir, 'prometheus-alertmanager'), join(dir, 'alertmanager'));
  }
  const found = candidates.find((path) => existsSync(path));
  if (!found) {
    throw new Error('Alertmanager not found: install it (Debian: apt-get install prometheus-alertmanager) or set ALERTMANAGER_BIN');
  }
  return found;
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

/** The Alertmanager configuration startAlertmanager writes (YAML is a superset of JSON). */
export function alertmanagerConfig(opts: {
  webhookUrl: string;
  credentialsFile: string;
  groupBy?: string[];
  groupWait?: string;
  groupInterval?: string;
  repeatInterval?: string;
  sendResolved?: boolean;
}): string {
  const config = {
    route: {
      receiver: 'remediator',
      group_by: opts.groupBy ?? ['alertname'],
      group_wait: opts.groupWait ?? '0s',
      group_interval: opts.groupInterval ?? '1s',
      repeat_interval: opts.repeatInterval ?? '1h',
    },
    receivers: [
      {
        name: 'remediator',
        webhook_configs: [
          {
            url: opts.webhookUrl,
            send_resolved: opts.sendResolved ?? true,
            max_alerts: 0,
            http_config: { authorization: { type: 'Bearer', credentials_file: opts.credentialsFile } },
          },
        ],
      },
    ],
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

function labelsKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function toWire(alert: PostableAlert): Record<string, unknown> {
  const iso = (d: string | Date | undefined) => (d instanceof Date ? d.toISOString() : d);
  const out: Record<string, unknown> = { labels: alert.labels, annotations: alert.annotations ?? {} };
  if (alert.startsAt !== undefined) out.startsAt = iso(alert.startsAt);
  if (alert.endsAt !== undefined) out.endsAt = iso(alert.endsAt);
  if (alert.generatorURL !== undefined) out.generatorURL = alert.generatorURL;
  return out;
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

export async function startAlertmanager(opts: StartAlertmanagerOptions): Promise<RunningAlertmanager> {
  const binary = findAlertmanagerBinary(opts.binary);
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'alertmanager-')));
  await mkdir(join(dir, 'data'), { recursive: true });

  const credentialsFile = join(dir, 'remediator-token');
  await writeFile(credentialsFile, opts.token, { mode: 0o600 });
  await chmod(credentialsFile, 0o600);
  const configPath = join(dir, 'alertmanager.yml');
  await writeFile(
    configPath,
    alertmanagerConfig({
      webhookUrl: opts.webhookUrl,
      credentialsFile,
      ...(opts.groupBy ? { groupBy: opts.groupBy } : {}),
      ...(opts.groupWait ? { groupWait: opts.groupWait } : {}),
      ...(opts.groupInterval ? { groupInterval: opts.groupInterval } : {}),
      ...(opts.repeatInterval ? { repeatInterval: opts.repeatInterval } : {}),
      ...(opts.sendResolved !== undefined ? { sendResolved: opts.sendResolved } : {}),
    }),
  );

  const timeoutMs = opts.startTimeoutMs ?? 15_000;
  let lastError: unknown;
  // The port is picked before the process binds it: retry if another process took it meanwhile.
  // A pinned port is tried once: another one would not be the URL the caller handed out.
  for (let attempt = 0; attempt < (opts.port === undefined ? 3 : 1); attempt++) {
    const port = opts.port ?? (await freePort());
    const url = `http://127.0.0.1:${port}`;
    let output = '';
    const child = spawn(
      binary,
      [
        `--config.file=${configPath}`,
        `--storage.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        `--web.external-url=${url}`,
        '--cluster.listen-address=',
        '--log.level=info',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const keep = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let spawnError: Error | undefined;
    child.once('error', (err) => {
      spawnError = err;
    });

    const deadline = Date.now() + timeoutMs;
    let ready = false;
    while (Date.now() < deadline) {
      if (spawnError) break;
      if (child.exitCode !== null || child.signalCode !== null) break;
      try {
        const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        if (res.ok) {
          ready = true;
          break;
        }
      } catch {
        // not listening yet
      }
      await sleep(50);
    }

    if (!ready) {
      child.kill('SIGKILL');
      await waitForExit(child, 2000);
      lastError = spawnError ?? new Error(`Alertmanager did not become ready on ${url}:\n${output}`);
      if (/address already in use/i.test(output)) continue;
      break;
    }

    let closed: Promise<void> | undefined;
    const api = async (path: string, init?: RequestInit): Promise<Response> => {
      const res = await fetch(`${url}${path}`, { ...init, signal: AbortSignal.timeout(5000) });
      if (!res.ok) {
        throw new Error(`Alertmanager ${init?.method ?? 'GET'} ${path}: ${res.status} ${await res.text()}`);
      }
      return res;
    };
    // startsAt of each alert (by label set), set when first posted, as Prometheus
    // sends its activeAt with every re-send and with the resolution. Without it
    // Alertmanager would take a resolution's endsAt as a new startsAt.
    const startedAt = new Map<string, string>();
    const postAlerts = async (alerts: PostableAlert[]): Promise<void> => {
      const now = new Date().toISOString();
      const wire = alerts.map((alert) => {
        const key = labelsKey(alert.labels);
        const given = alert.startsAt instanceof Date ? alert.startsAt.toISOString() : alert.startsAt;
        const startsAt = given ?? startedAt.get(key) ?? now;
        const ended = alert.endsAt !== undefined && new Date(alert.endsAt).getTime() <= Date.now();
        if (ended) startedAt.delete(key);
        else startedAt.set(key, startsAt);
        return toWire({ ...alert, startsAt });
      });
      const res = await api('/api/v2/alerts', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(wire),
      });
      await res.arrayBuffer();
    };
    return {
      url,
      port,
      dir,
      configPath,
      postAlerts,
      resolveAlerts: (alerts) =>
        postAlerts(
          alerts.map((a) => {
            const startsAt = a.startsAt ?? startedAt.get(labelsKey(a.labels));
            const start = startsAt === undefined ? 0 : new Date(startsAt).getTime();
            const endsAt = new Date(Math.max(Date.now(), start));
            return { ...a, ...(startsAt === undefined ? {} : { startsAt }), endsAt };
          }),
        ),
      alerts: async () => (await (await api('/api/v2/alerts')).json()) as unknown[],
      logs: () => output,
      close: () => {
        closed ??= (async () => {
          if (child.exitCode === null && child.signalCode === null) {
            child.kill('SIGTERM');
            if (!(await waitForExit(child, 5000))) {
              child.kill('SIGKILL');
              await waitForExit(child, 2000);
            }
          }
          if (ownDir) await rm(dir, { recursive: true, force: true });
        })();
        return closed;
      },
    };
  }
  if (ownDir) await rm(dir, { recursive: true, force: true });
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}
