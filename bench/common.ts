/**
 * What the orchestrator (run.ts), the service child (service.ts), the baseline child (baseline.ts) and
 * the load child (load.ts) share: the webhook token, the shape of the alerts sent, and statistics.
 */

export const WEBHOOK_TOKEN = 'bench-webhook-token-0123456789abcdef';
export const API_TOKENS = 'bench:admin:bench-admin-token-0123456789abcdef';
export const WEBHOOK_PATH = '/webhooks/alertmanager';
/** The alertname the bench rule matches; no shipped rule matches it. */
export const BENCH_ALERTNAME = 'BenchNoop';
/** The alertname of the bench's chain rule (a no-op and a dependent no-op); no other rule matches it. */
export const CHAIN_ALERTNAME = 'BenchChain';

/** Disjoint fingerprint spaces per use, so no scenario dedups against another by accident. */
export const SERIES = {
  baselineWarmup: 0x10,
  baseline: 0x11,
  intakeWarmup: 0x20,
  intake: 0x21,
  storm: 0x30,
  bigMessage: 0x31,
  intakeAllWarmup: 0x40,
  intakeAll: 0x41,
  execWarmup: 0x50,
  exec: 0x51,
  chainWarmup: 0x70,
  chain: 0x71,
} as const;

/** Epoch milliseconds with sub-millisecond resolution; comparable across processes of one machine. */
export const epochMs = (): number => performance.timeOrigin + performance.now();

/**
 * A 16-hex-digit fingerprint: run tag (6 hex), series (2 hex), index (8 hex). The run tag keeps two runs
 * of the bench apart even if a database were reused.
 */
export function fingerprint(tag: string, series: number, index: number): string {
  return `${tag}${series.toString(16).padStart(2, '0')}${(index >>> 0).toString(16).padStart(8, '0')}`;
}

/** One alert shaped as Alertmanager 0.27 sends it, with a realistic label and annotation set. */
function alert(fp: string, startsAt: string, alertname: string) {
  const n = parseInt(fp.slice(-4), 16);
  return {
    status: 'firing',
    labels: {
      alertname,
      severity: 'warning',
      namespace: 'conduit',
      service: 'conduit-api',
      job: 'conduit-api',
      instance: `10.42.${(n >> 8) & 255}.${n & 255}:8080`,
      pod: `conduit-api-7f9c8d6b5-${fp.slice(-5)}`,
      bench_id: fp,
    },
    annotations: {
      summary: `Bench no-op alert ${fp}`,
      description: 'Synthetic alert of the conduit-remediator benchmark; its action is the no-op remediation bench.noop.',
      runbook_url: 'https://runbooks.example/conduit/bench-noop',
    },
    startsAt,
    endsAt: '0001-01-01T00:00:00Z',
    generatorURL: 'http://prometheus-0:9090/graph?g0.expr=conduit_bench_noop%20%3E%200&g0.tab=1',
    fingerprint: fp,
  };
}

/** An Alertmanager v4 webhook message carrying one alert per fingerprint, as a JSON string. */
export function alertMessage(fingerprints: readonly string[], startsAt: string, alertname: string = BENCH_ALERTNAME): string {
  return JSON.stringify({
    receiver: 'remediator',
    status: 'firing',
    alerts: fingerprints.map((fp) => alert(fp, startsAt, alertname)),
    groupLabels: { alertname },
    commonLabels: { alertname, severity: 'warning', namespace: 'conduit', service: 'conduit-api', job: 'conduit-api' },
    commonAnnotations: { runbook_url: 'https://runbooks.example/conduit/bench-noop' },
    externalURL: 'http://alertmanager-0:9093',
    version: '4',
    groupKey: `{}/{severity=~"warning|critical"}:{alertname="${alertname}"}`,
    truncatedAlerts: 0,
  });
}

export interface Summary {
  count: number;
  min: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles of a sample (milliseconds in, milliseconds out). */
export function summarize(values: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  if (n === 0) return { count: 0, min: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return { count: n, min: sorted[0]!, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[n - 1]!, mean: sum / n };
}

/** Specs the orchestrator hands to the load child (as a JSON file). */
export type BodySource =
  { kind: 'unique'; tag: string; series: number; startsAt: string } | { kind: 'list'; fingerprints: string[]; startsAt: string };

export interface CannonSpec {
  mode: 'cannon';
  url: string;
  connections: number;
  /** Seconds; ignored when `amount` is set. */
  durationSec?: number;
  amount?: number;
  source: BodySource;
  warmup?: { durationSec: number; source: BodySource };
}

export interface StormSpec {
  mode: 'storm';
  url: string;
  messages: number;
  alertsPerMessage: number;
  tag: string;
  series: number;
  startsAt: string;
}

export interface PacedSpec {
  mode: 'paced';
  url: string;
  count: number;
  ratePerSec: number;
  tag: string;
  series: number;
  startsAt: string;
  /** The alerts' alertname; default BENCH_ALERTNAME. */
  alertname?: string;
}

export type LoadSpec = CannonSpec | StormSpec | PacedSpec;

export interface CannonResult {
  mode: 'cannon';
  /** Measured interval, seconds. */
  durationSec: number;
  requests: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** Bodies generated (requests attempted), including ones cut off at the end. */
  sent: number;
  latencyMs: Summary;
}

export interface StormResult {
  mode: 'storm';
  durationSec: number;
  messages: Array<{ status: number; ms: number; received: number; runs: number }>;
  latencyMs: Summary;
}

export interface PacedResult {
  mode: 'paced';
  durationSec: number;
  alerts: Array<{ fingerprint: string; status: number; sentAt: number; okAt: number; ms: number }>;
  latencyMs: Summary;
}

export type LoadResult = CannonResult | StormResult | PacedResult;
