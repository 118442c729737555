/**
 * Asks Alertmanager (API v2) whether a run's alert is still firing, just before its remediation executes.
 *
 * `GET <url>/api/v2/alerts?filter=name="value"&...` with one matcher per label. What Alertmanager answers:
 * - only alerts that are not resolved: an alert whose `endsAt` is before Alertmanager's now is left out
 *   (its alert filter drops it before anything else), so a resolved alert is simply absent;
 * - `active`, `silenced` and `inhibited` default to true, so silenced and inhibited alerts are listed
 *   (with `status.state` `suppressed`); `unprocessed` is declared with default true but not applied;
 * - `startsAt` as an RFC 3339 time with milliseconds, in the offset it was posted with
 *   (`2024-05-01T10:00:00.123+02:00`), while a webhook notification carries nanoseconds
 *   (`2024-05-01T10:00:00.123456789+02:00`): the two are compared as instants truncated to milliseconds.
 *
 * An alert episode is (fingerprint, startsAt): the same labels firing again after a resolution keep their
 * fingerprint but get another startsAt, and that later episode does not keep an earlier run's alert firing.
 *
 * With several URLs (an HA pair) every one is asked at once; the alert fires if any answering Alertmanager lists
 * it, does not if at least one answered and none lists it, and `AlertmanagerUnavailable` is thrown only when none
 * answered. A redirect (3xx) is never followed: that Alertmanager counts as not answering, the status and
 * where it pointed in its error line. Nothing here retries: the caller decides how long to keep asking.
 */
import { isRecord, networkError, oneLine, parseBaseUrl, redirectTarget } from '../kernel/http.js';

export interface AlertRef {
  fingerprint: string;
  startsAt: string;
  labels: Readonly<Record<string, string>>;
}

export interface AlertAnswer {
  firing: boolean;
  /** the Alertmanager base URL that answered */
  source: string;
  /** its alert's state when found: active | suppressed | unprocessed */
  state: string | null;
}

/** No Alertmanager answered. `errors` has one line per URL, e.g. `http://a:9093: ECONNREFUSED`. */
export class AlertmanagerUnavailable extends Error {
  override readonly name = 'AlertmanagerUnavailable';
  readonly errors: string[];

  constructor(errors: string[]) {
    super(`no Alertmanager answered: ${errors.join('; ')}`);
    this.errors = errors;
  }
}

export interface AlertCheck {
  readonly urls: readonly string[];
  /**
   * Whether the alert episode is still firing. Rejects with `AlertmanagerUnavailable` when no Alertmanager
   * answered, with the signal's reason when `signal` aborts, and with a `TypeError` when `alert.startsAt`
   * is not an RFC 3339 time.
   */
  isFiring(alert: AlertRef, signal?: AbortSignal): Promise<AlertAnswer>;
}

const DEFAULT_REQUEST_TIMEOUT_MS = 5000;

/** Label names the matcher parser takes unquoted in every mode (classic, fallback, UTF-8). */
const MATCHER_LABEL_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

const RFC3339 = /^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})$/;

/** Milliseconds since the epoch of an RFC 3339 time, its fraction truncated to milliseconds as Alertmanager formats it. */
function instantMs(text: string): number | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [, date, time, fraction = '', zone = 'Z'] = m;
  const ms = Date.parse(`${date}T${time}.${fraction.padEnd(3, '0').slice(0, 3)}${zone.toUpperCase()}`);
  return Number.isNaN(ms) ? undefined : ms;
}

/** A label value as a double-quoted matcher value: backslash, double quote and line feed escaped. */
function quoteMatcherValue(value: string): string {
  return `"${value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`))}"`;
}

/**
 * The `filter` matchers selecting the alert by its labels. A label whose name the matcher parser would not
 * take unquoted is left out: the fingerprint still decides, the filter only narrows the answer.
 */
function alertFilters(labels: Readonly<Record<string, string>>): string[] {
  return Object.entries(labels)
    .filter(([name]) => MATCHER_LABEL_NAME.test(name))
    .map(([name, value]) => `${name}=${quoteMatcherValue(value)}`);
}

/**
 * ALERTMANAGER_URL: comma-separated http(s) base URLs (one Alertmanager, or every member of an HA cluster).
 * Entries are trimmed, trailing slashes dropped, empty entries and repeats ignored.
 */
export function parseAlertmanagerUrls(text: string): string[] {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  if (entries.length === 0) throw new Error('ALERTMANAGER_URL: no URL given; expected http(s)://host:port[,http(s)://host:port]');
  const urls = entries.map((entry, i) => parseBaseUrl(entry, `ALERTMANAGER_URL: entry ${i + 1}`));
  return [...new Set(urls)];
}

type Asked = { url: string; answered: true; found: Record<string, unknown> | undefined } | { url: string; answered: false; error: string };

export function createAlertCheck(opts: { urls: readonly string[]; requestTimeoutMs?: number }): AlertCheck {
  const urls = Object.freeze([...new Set(opts.urls.map((url, i) => parseBaseUrl(url.trim(), `Alertmanager URL ${i + 1}`)))]);
  if (urls.length === 0) throw new Error('createAlertCheck: at least one Alertmanager URL is required');
  const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`createAlertCheck: requestTimeoutMs must be a positive number`);

  async function ask(base: string, alert: AlertRef, wantedMs: number, signal: AbortSignal, deadline: AbortSignal): Promise<Asked> {
    const query = new URLSearchParams();
    for (const filter of alertFilters(alert.labels)) query.append('filter', filter);
    const qs = query.toString();
    const url = `${base}/api/v2/alerts${qs ? `?${qs}` : ''}`;
    let status: number;
    let body: string;
    try {
      // A redirect is not followed: the alert's labels go to the configured Alertmanager only.
      const res = await fetch(url, { headers: { accept: 'application/json' }, signal, redirect: 'manual' });
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => undefined);
        const to = redirectTarget(res.headers.get('location'), url);
        return { url: base, answered: false, error: `${base}: HTTP ${res.status} redirect to ${to}, not followed` };
      }
      status = res.status;
      body = await res.text();
    } catch (err) {
      if (deadline.aborted) return { url: base, answered: false, error: `${base}: no answer within ${timeoutMs} ms` };
      if (signal.aborted) return { url: base, answered: false, error: `${base}: aborted` };
      return { url: base, answered: false, error: `${base}: ${networkError(err)}` };
    }
    if (status < 200 || status > 299) {
      const said = oneLine(body);
      return { url: base, answered: false, error: `${base}: HTTP ${status}${said ? `: ${said}` : ''}` };
    }
    let alerts: unknown;
    try {
      alerts = JSON.parse(body);
    } catch {
      return { url: base, answered: false, error: `${base}: answer is not JSON` };
    }
    if (!Array.isArray(alerts)) return { url: base, answered: false, error: `${base}: answer is not a list of alerts` };
    const found = alerts.find(
      (a): a is Record<string, unknown> =>
        isRecord(a) && a.fingerprint === alert.fingerprint && typeof a.startsAt === 'string' && instantMs(a.startsAt) === wantedMs,
    );
    return { url: base, answered: true, found };
  }

  return {
    urls,
    async isFiring(alert, signal) {
      signal?.throwIfAborted();
      const wantedMs = instantMs(alert.startsAt);
      if (wantedMs === undefined) throw new TypeError(`alert startsAt is not an RFC 3339 time: "${alert.startsAt}"`);
      const deadline = AbortSignal.timeout(timeoutMs);
      // Aborted as soon as one Alertmanager lists the alert: the other answers no longer matter.
      const settled = new AbortController();
      const requestSignal = AbortSignal.any([deadline, settled.signal, ...(signal ? [signal] : [])]);
      try {
        const asked = await new Promise<Array<Asked | undefined>>((resolve) => {
          const results: Array<Asked | undefined> = urls.map(() => undefined);
          let pending = urls.length;
          urls.forEach((base, i) => {
            void ask(base, alert, wantedMs, requestSignal, deadline).then((result) => {
              results[i] = result;
              pending -= 1;
              if ((result.answered && result.found) || pending === 0) resolve(results);
            });
          });
        });
        const listed = asked.find((a) => a?.answered && a.found);
        if (listed?.answered && listed.found) {
          const state = isRecord(listed.found.status) ? listed.found.status.state : undefined;
          return { firing: true, source: listed.url, state: typeof state === 'string' ? state : null };
        }
        signal?.throwIfAborted();
        const answered = asked.find((a) => a?.answered);
        if (answered) return { firing: false, source: answered.url, state: null };
        throw new AlertmanagerUnavailable(asked.map((a) => (a && !a.answered ? a.error : '')).filter((line) => line !== ''));
      } finally {
        settled.abort();
      }
    },
  };
}
