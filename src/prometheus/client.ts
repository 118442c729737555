/**
 * Instant queries against Prometheus' HTTP API (`/api/v1/query`).
 *
 * A query is sent as `GET <url>/api/v1/query?query=...`, or, when the encoded query is long enough to risk a
 * server or proxy URL limit, as `POST` with an `application/x-www-form-urlencoded` body, which Prometheus reads
 * the same way. `timeout=` is sent too, so that Prometheus stops evaluating when this client stops waiting.
 * The time is Prometheus' own now.
 *
 * What Prometheus answers (docs/querying/api.md, web/api/v1/api.go):
 * - `{"status":"success","data":{"resultType":...,"result":...},"warnings"?:[...]}` with a 2xx code;
 * - `{"status":"error","errorType":...,"error":...}` with 400 (`bad_data`: the query does not parse, a bad
 *   parameter), 422 (`execution`: e.g. many-to-many matching, too many samples), 503 (`timeout`, and `canceled`
 *   before 2.43, which answers it with 499) or 500 (`internal`). `bad_data` and `execution` are mistakes in the
 *   query, thrown as `QueryFailed`; `timeout`, `canceled`, `unavailable`, `internal`, a 5xx, 408, 429, and
 *   anything that is not such a JSON envelope (a proxy's page, a cut connection, no connection), are
 *   `PrometheusUnavailable`, worth asking again later.
 * - Sample values are strings, `"NaN"`, `"+Inf"` and `"-Inf"` included; times are Unix seconds with
 *   millisecond decimals.
 *
 * A redirect (3xx) is never followed: it is `PrometheusUnavailable`, naming the status and where it pointed.
 *
 * Nothing here retries: the caller decides how long to keep asking.
 */
import { isRecord, networkError, oneLine, parseBaseUrl, redirectTarget } from '../kernel/http.js';

export interface Sample {
  labels: Record<string, string>;
  value: number;
  /** sample time, ISO */
  at: string;
  /** The text of a `string` result (its `value` is that text as a number, else NaN). */
  text?: string;
}

export interface QueryAnswer {
  /**
   * The result's samples: one per element of a `vector` (empty when nothing matched); one per series of a
   * `matrix`, its latest point; one, without labels, for a `scalar` or a `string`. A native histogram sample
   * counts as its observation count.
   */
  samples: Sample[];
  /** Prometheus' `resultType`: vector, matrix, scalar or string. */
  resultType: string;
  /** The Prometheus base URL that answered. */
  source: string;
  /** Prometheus' warnings about the result (e.g. a partial answer), when it gave any. */
  warnings?: string[];
}

/**
 * Prometheus did not answer: no connection, no answer within the timeout, a 5xx, or not its JSON. `errors` has
 * one line, the URL and what happened: `http://prometheus:9090: ECONNREFUSED` (a list, as for Alertmanager).
 */
export class PrometheusUnavailable extends Error {
  override readonly name = 'PrometheusUnavailable';
  readonly errors: string[];

  constructor(errors: string[]) {
    super(`Prometheus did not answer: ${errors.join('; ')}`);
    this.errors = errors;
  }
}

/** Prometheus answered that the query is wrong (`bad_data`, `execution`, ...): asking again gives the same answer. */
export class QueryFailed extends Error {
  override readonly name = 'QueryFailed';
  readonly errorType: string;

  constructor(errorType: string, message: string) {
    super(`Prometheus rejected the query (${errorType}): ${message}`);
    this.errorType = errorType;
  }
}

export interface PrometheusClient {
  readonly url: string;
  /**
   * Evaluates `promql` at Prometheus' now. Rejects with `QueryFailed` when Prometheus says the query is wrong,
   * with `PrometheusUnavailable` when it does not answer within `requestTimeoutMs`, and with the signal's
   * reason when `signal` aborts.
   */
  query(promql: string, signal?: AbortSignal): Promise<QueryAnswer>;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

/** Error answers that say Prometheus could not answer now, rather than that the query is wrong. */
const RETRY_ERROR_TYPES = new Set(['timeout', 'canceled', 'unavailable', 'internal']);
/** Request timeout, too many requests, client closed request (how newer Prometheus answers `canceled`). */
const RETRY_STATUSES = new Set([408, 429, 499]);

/** Above this many characters of encoded query, it goes in a POST body instead of the URL. */
const MAX_GET_QUERY_LENGTH = 2000;

function parsePrometheusBase(text: string, where: string): string {
  const shown = text.includes('@') ? '' : ` ("${text}")`;
  if (text === '') throw new Error(`${where}: no URL given; expected http(s)://host:port[/prefix]`);
  if (text.includes(',')) throw new Error(`${where}${shown}: one URL is expected, not a list`);
  return parseBaseUrl(text, where, 'http(s)://host:port[/prefix]');
}

/**
 * PROMETHEUS_URL: one http(s) base URL, with a path prefix when Prometheus is served under one
 * (`--web.route-prefix`, or a proxy): `http://prometheus:9090`, `https://example.com/prometheus`.
 * Trimmed; trailing slashes dropped. Credentials, query strings and fragments are refused.
 */
export function parsePrometheusUrl(text: string): string {
  return parsePrometheusBase(text.trim(), 'PROMETHEUS_URL');
}

/** A sample value as Prometheus formats it (Go's strconv.FormatFloat, 'f', -1): digits, `NaN`, `+Inf`, `-Inf`. */
function sampleValue(text: unknown): number | undefined {
  if (typeof text !== 'string' || text.trim() === '') return undefined;
  if (text === 'NaN') return NaN;
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  const value = Number(text);
  return Number.isNaN(value) ? undefined : value;
}

/** `[<unix seconds>, "<value>"]` as time and value text; undefined when it is not that. */
function point(pair: unknown): { at: string; raw: unknown } | undefined {
  if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'number' || !Number.isFinite(pair[0])) return undefined;
  const date = new Date(Math.round(pair[0] * 1000));
  if (Number.isNaN(date.getTime())) return undefined;
  return { at: date.toISOString(), raw: pair[1] };
}

function floatPoint(pair: unknown): { at: string; value: number } | undefined {
  const p = point(pair);
  const value = p && sampleValue(p.raw);
  return p && value !== undefined ? { at: p.at, value } : undefined;
}

/** A native histogram point, as its observation count. */
function histogramPoint(pair: unknown): { at: string; value: number } | undefined {
  const p = point(pair);
  const value = p && isRecord(p.raw) ? sampleValue(p.raw.count) : undefined;
  return p && value !== undefined ? { at: p.at, value } : undefined;
}

function labelSet(metric: unknown): Record<string, string> | undefined {
  if (!isRecord(metric)) return undefined;
  const labels: Record<string, string> = {};
  for (const [name, value] of Object.entries(metric)) {
    if (typeof value !== 'string') return undefined;
    labels[name] = value;
  }
  return labels;
}

/** The samples of `data`, or undefined when it is not a query result. */
function samplesOf(data: Record<string, unknown>): Sample[] | undefined {
  const { resultType, result } = data;
  switch (resultType) {
    case 'vector': {
      if (!Array.isArray(result)) return undefined;
      const samples: Sample[] = [];
      for (const element of result) {
        if (!isRecord(element)) return undefined;
        const labels = labelSet(element.metric);
        const p = element.value !== undefined ? floatPoint(element.value) : histogramPoint(element.histogram);
        if (!labels || !p) return undefined;
        samples.push({ labels, value: p.value, at: p.at });
      }
      return samples;
    }
    case 'matrix': {
      if (!Array.isArray(result)) return undefined;
      const samples: Sample[] = [];
      for (const series of result) {
        if (!isRecord(series)) return undefined;
        const labels = labelSet(series.metric);
        if (!labels) return undefined;
        const points: Array<{ at: string; value: number } | undefined> = [
          ...(Array.isArray(series.values) ? series.values.map(floatPoint) : []),
          ...(Array.isArray(series.histograms) ? series.histograms.map(histogramPoint) : []),
        ];
        if (points.some((p) => p === undefined)) return undefined;
        const latest = (points as Array<{ at: string; value: number }>).reduce<{ at: string; value: number } | undefined>(
          (best, p) => (best === undefined || p.at >= best.at ? p : best),
          undefined,
        );
        if (latest) samples.push({ labels, value: latest.value, at: latest.at });
      }
      return samples;
    }
    case 'scalar': {
      const p = floatPoint(result);
      return p ? [{ labels: {}, value: p.value, at: p.at }] : undefined;
    }
    case 'string': {
      const p = point(result);
      if (!p || typeof p.raw !== 'string') return undefined;
      return [{ labels: {}, value: sampleValue(p.raw) ?? NaN, at: p.at, text: p.raw }];
    }
    default:
      return undefined;
  }
}

export function createPrometheusClient(opts: { url: string; requestTimeoutMs?: number }): PrometheusClient {
  const url = parseBaseUrl(opts.url.trim(), 'Prometheus URL');
  const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error('createPrometheusClient: requestTimeoutMs must be a positive number');
  const endpoint = `${url}/api/v1/query`;
  const unavailable = (why: string) => new PrometheusUnavailable([`${url}: ${why}`]);

  return {
    url,
    async query(promql, signal) {
      signal?.throwIfAborted();
      const params = new URLSearchParams({ query: promql, timeout: `${Math.ceil(timeoutMs)}ms` }).toString();
      const deadline = AbortSignal.timeout(timeoutMs);
      const requestSignal = signal ? AbortSignal.any([deadline, signal]) : deadline;
      const init: RequestInit =
        params.length > MAX_GET_QUERY_LENGTH
          ? {
              method: 'POST',
              headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
              body: params,
              signal: requestSignal,
            }
          : { method: 'GET', headers: { accept: 'application/json' }, signal: requestSignal };
      let status: number;
      let body: string;
      try {
        const target = init.method === 'GET' ? `${endpoint}?${params}` : endpoint;
        // A redirect is not followed: the URL is the one configured, and the query goes nowhere else.
        const res = await fetch(target, { ...init, redirect: 'manual' });
        if (res.status >= 300 && res.status < 400) {
          await res.body?.cancel().catch(() => undefined);
          throw unavailable(`HTTP ${res.status} redirect to ${redirectTarget(res.headers.get('location'), target)}, not followed`);
        }
        status = res.status;
        body = await res.text();
      } catch (err) {
        if (err instanceof PrometheusUnavailable) throw err;
        signal?.throwIfAborted();
        if (deadline.aborted) throw unavailable(`no answer within ${timeoutMs} ms`);
        throw unavailable(networkError(err));
      }

      let answer: unknown;
      try {
        answer = JSON.parse(body);
      } catch {
        answer = undefined;
      }
      const envelope = isRecord(answer) && (answer.status === 'success' || answer.status === 'error') ? answer : undefined;
      if (!envelope) {
        const said = oneLine(body);
        if (status < 200 || status > 299) throw unavailable(`HTTP ${status}${said ? `: ${said}` : ''}`);
        throw unavailable('answer is not a Prometheus API response (JSON with a status)');
      }
      if (envelope.status === 'error') {
        const errorType = typeof envelope.errorType === 'string' && envelope.errorType !== '' ? envelope.errorType : 'unknown';
        const message = typeof envelope.error === 'string' ? oneLine(envelope.error, 500) : '';
        if (status < 400 || status >= 500 || RETRY_STATUSES.has(status) || RETRY_ERROR_TYPES.has(errorType)) {
          throw unavailable(`HTTP ${status}: ${errorType}${message ? `: ${message}` : ''}`);
        }
        throw new QueryFailed(errorType, message);
      }
      if (status < 200 || status > 299) throw unavailable(`HTTP ${status} with a success answer`);
      const data = isRecord(envelope.data) ? envelope.data : {};
      const samples = samplesOf(data);
      if (!samples) throw unavailable('answer is not a query result (data.resultType and data.result)');
      const warnings = Array.isArray(envelope.warnings) ? envelope.warnings.filter((w): w is string => typeof w === 'string') : [];
      return {
        samples,
        resultType: String(data.resultType),
        source: url,
        ...(warnings.length > 0 ? { warnings } : {}),
      };
    },
  };
}
