/**
 * The load generator, always in a process of its own (never the service's, never the orchestrator's):
 * `node --import tsx bench/load.ts <spec.json> <result.json>`. Modes:
 * - cannon: autocannon at fixed concurrency for a duration or an amount, every request its own body;
 * - storm: sequential large messages, time to the complete 200 of each;
 * - paced: single-alert messages at a steady open-loop rate, recording when each 200 arrived (of the
 *   bench rule's alertname, or the spec's `alertname`).
 * Latencies are recorded per response with sub-millisecond resolution (autocannon's own histogram
 * rounds to whole milliseconds).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import autocannon from 'autocannon';
import {
  WEBHOOK_PATH,
  WEBHOOK_TOKEN,
  alertMessage,
  epochMs,
  fingerprint,
  summarize,
  type BodySource,
  type CannonResult,
  type CannonSpec,
  type LoadResult,
  type LoadSpec,
  type PacedResult,
  type PacedSpec,
  type StormResult,
  type StormSpec,
} from './common.js';

const [specPath, resultPath] = process.argv.slice(2);
if (!specPath || !resultPath) {
  process.stderr.write('usage: load.ts <spec.json> <result.json>\n');
  process.exit(2);
}
// The orchestrator holds our stdin: if it dies, stop at once.
process.stdin.on('end', () => process.exit(3));
process.stdin.resume();

const headers = { 'content-type': 'application/json', authorization: `Bearer ${WEBHOOK_TOKEN}` };

function bodies(source: BodySource): () => string {
  if (source.kind === 'unique') {
    let i = 0;
    return () => alertMessage([fingerprint(source.tag, source.series, i++)], source.startsAt);
  }
  const prepared = source.fingerprints.map((fp) => alertMessage([fp], source.startsAt));
  if (prepared.length === 0) throw new Error('list source without fingerprints');
  let i = 0;
  return () => prepared[i++ % prepared.length]!;
}

function cannonRun(
  spec: CannonSpec,
  source: BodySource,
  durationSec: number | undefined,
  amount: number | undefined,
): Promise<CannonResult> {
  const next = bodies(source);
  const latencies: number[] = [];
  let sent = 0;
  // autocannon's own `duration` is whole sample ticks, and its callback waits for the next tick:
  // the rate is requests over the time from the first request to the last response.
  let firstSent: number | undefined;
  let lastResponse = 0;
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        ...(amount !== undefined ? { amount } : { duration: durationSec ?? 10 }),
        timeout: 30,
        requests: [
          {
            method: 'POST',
            path: WEBHOOK_PATH,
            headers,
            setupRequest: (req) => {
              firstSent ??= performance.now();
              sent++;
              return { ...req, body: next() };
            },
          },
        ],
      },
      (err, result) => {
        if (err) return reject(err);
        const statusCodes: Record<string, number> = {};
        for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = Number(count);
        resolve({
          mode: 'cannon',
          durationSec: firstSent === undefined ? result.duration : (lastResponse - firstSent) / 1000,
          requests: result['2xx'] + result.non2xx,
          ok: result['2xx'],
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statusCodes,
          sent,
          latencyMs: summarize(latencies),
        });
      },
    );
    instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => {
      latencies.push(ms);
      lastResponse = performance.now();
    });
  });
}

async function cannon(spec: CannonSpec): Promise<CannonResult> {
  if (spec.warmup) await cannonRun(spec, spec.warmup.source, spec.warmup.durationSec, undefined);
  return cannonRun(spec, spec.source, spec.durationSec, spec.amount);
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

interface Posted {
  status: number;
  text: string;
  start: number;
  /** When the status line and headers arrived. */
  headersAt: number;
  end: number;
}

function post(base: string, body: string): Promise<Posted> {
  const url = new URL(WEBHOOK_PATH, base);
  return new Promise((resolve, reject) => {
    const start = epochMs();
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent,
        headers: { ...headers, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const headersAt = epochMs();
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), start, headersAt, end: epochMs() }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function storm(spec: StormSpec): Promise<StormResult> {
  const messages = Array.from({ length: spec.messages }, (_, m) =>
    alertMessage(
      Array.from({ length: spec.alertsPerMessage }, (_, k) => fingerprint(spec.tag, spec.series, m * spec.alertsPerMessage + k)),
      spec.startsAt,
    ),
  );
  const out: StormResult['messages'] = [];
  const started = epochMs();
  for (const body of messages) {
    const r = await post(spec.url, body);
    let received = 0;
    let runs = 0;
    try {
      const parsed = JSON.parse(r.text) as { received?: number; runs?: unknown[] };
      received = parsed.received ?? 0;
      runs = parsed.runs?.length ?? 0;
    } catch {
      // not JSON: reported through the status
    }
    out.push({ status: r.status, ms: r.end - r.start, received, runs });
  }
  return { mode: 'storm', durationSec: (epochMs() - started) / 1000, messages: out, latencyMs: summarize(out.map((m) => m.ms)) };
}

async function paced(spec: PacedSpec): Promise<PacedResult> {
  const interval = 1000 / spec.ratePerSec;
  const alerts: PacedResult['alerts'] = [];
  const pending: Array<Promise<void>> = [];
  const t0 = epochMs() + 50;
  for (let i = 0; i < spec.count; i++) {
    const due = t0 + i * interval;
    const wait = due - epochMs();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const fp = fingerprint(spec.tag, spec.series, i);
    pending.push(
      post(spec.url, alertMessage([fp], spec.startsAt, spec.alertname)).then(
        (r) => void alerts.push({ fingerprint: fp, status: r.status, sentAt: r.start, okAt: r.headersAt, ms: r.headersAt - r.start }),
        () => void alerts.push({ fingerprint: fp, status: 0, sentAt: due, okAt: NaN, ms: NaN }),
      ),
    );
  }
  await Promise.all(pending);
  return {
    mode: 'paced',
    durationSec: (epochMs() - t0) / 1000,
    alerts,
    latencyMs: summarize(alerts.filter((a) => a.status === 200).map((a) => a.ms)),
  };
}

const spec = JSON.parse(readFileSync(specPath, 'utf8')) as LoadSpec;
let result: LoadResult;
if (spec.mode === 'cannon') result = await cannon(spec);
else if (spec.mode === 'storm') result = await storm(spec);
else result = await paced(spec);
const cpu = process.cpuUsage();
writeFileSync(resultPath, JSON.stringify({ ...result, cpuSec: (cpu.user + cpu.system) / 1e6 }));
agent.destroy();
process.exit(0);
