/**
 * A metrics endpoint on 127.0.0.1 for a real Prometheus to scrape: gauges the test sets, served at /metrics in
 * the Prometheus text exposition format (version 0.0.4).
 *
 *   const exporter = await startExporter();
 *   exporter.set('conduit_queue_depth', { queue: 'default' }, 42);
 *   const prom = await startPrometheus({ scrapeTargets: [exporter.hostPort] });
 *   ...
 *   exporter.remove('conduit_queue_depth', { queue: 'default' });   // Prometheus marks it stale at its next scrape
 *   await prom.close();
 *   await exporter.close();
 *
 * Label values are escaped as the format says (backslash, double quote and line feed); any other character,
 * control characters and quotes of the other kind included, is written as it is. Values may be NaN and ±Infinity.
 */
import { once } from 'node:events';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface RunningExporter {
  /** e.g. http://127.0.0.1:41234 (the metrics are at `${url}/metrics`) */
  url: string;
  /** host:port, as a Prometheus static_configs target */
  hostPort: string;
  /** Sets the gauge `name` with these labels to `value` (adding the series if it is new). */
  set(name: string, labels: Record<string, string>, value: number): void;
  /** Removes that series; true when it was there. */
  remove(name: string, labels: Record<string, string>): boolean;
  /** How many times /metrics was fetched. */
  scrapes(): number;
  /** Stops the server, closing connections Prometheus keeps open. Idempotent. */
  close(): Promise<void>;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A label value as the text format writes it between double quotes. */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

/** A sample value as the text format writes it. */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function seriesKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function check(name: string, labels: Record<string, string>): void {
  if (!METRIC_NAME.test(name)) throw new Error(`not a metric name: "${name}"`);
  for (const label of Object.keys(labels)) {
    if (!LABEL_NAME.test(label) || label.startsWith('__')) throw new Error(`not a label name: "${label}"`);
  }
}

export async function startExporter(): Promise<RunningExporter> {
  /** name -> series key -> sample */
  const gauges = new Map<string, Map<string, { labels: Record<string, string>; value: number }>>();
  let scrapes = 0;

  const render = (): string => {
    let out = '';
    for (const [name, series] of [...gauges].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (series.size === 0) continue;
      out += `# HELP ${name} Set by the test.\n# TYPE ${name} gauge\n`;
      for (const { labels, value } of series.values()) {
        const set = Object.entries(labels).map(([label, v]) => `${label}="${escapeLabelValue(v)}"`);
        out += `${name}${set.length > 0 ? `{${set.join(',')}}` : ''} ${formatValue(value)}\n`;
      }
    }
    return out;
  };

  const answer = (res: ServerResponse, status: number, type: string, body: string) => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };

  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
      scrapes += 1;
      answer(res, 200, 'text/plain; version=0.0.4; charset=utf-8', render());
    } else {
      answer(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    }
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const hostPort = `127.0.0.1:${port}`;

  let closed: Promise<void> | undefined;
  return {
    url: `http://${hostPort}`,
    hostPort,
    set(name, labels, value) {
      check(name, labels);
      let series = gauges.get(name);
      if (!series) gauges.set(name, (series = new Map()));
      series.set(seriesKey(labels), { labels: { ...labels }, value });
    },
    remove(name, labels) {
      return gauges.get(name)?.delete(seriesKey(labels)) ?? false;
    },
    scrapes: () => scrapes,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}
