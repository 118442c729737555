/** Helpers of the service's small HTTP clients (Alertmanager, Prometheus, Conduit): base URLs, errors in one line, redirects. */

/**
 * A base URL from configuration (`where` names the variable): http(s), no credentials, query or
 * fragment; trailing slashes dropped. The text is not echoed when it may hold a secret (`@`).
 */
export function parseBaseUrl(text: string, where: string, expected = 'http(s)://host:port'): string {
  const shown = text.includes('@') ? '' : ` ("${text}")`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`${where}${shown} is not a URL; expected ${expected}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`${where}${shown} is not an http(s):// URL`);
  }
  if (url.username || url.password) throw new Error(`${where}: credentials in the URL are not supported`);
  if (url.search || url.hash || text.includes('?') || text.includes('#')) {
    throw new Error(`${where}${shown} must be a base URL, without query or fragment`);
  }
  return `${url.origin}${url.pathname}`.replace(/\/+$/, '');
}

export function oneLine(text: string, max = 200): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max)}...` : line;
}

/** What a failed `fetch` says, in one line: the system error code when there is one. */
export function networkError(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  for (const candidate of [cause, (cause as { errors?: unknown[] } | undefined)?.errors?.[0], err]) {
    const code = (candidate as { code?: unknown } | undefined)?.code;
    if (typeof code === 'string' && code !== '') return code;
  }
  const message = (cause as { message?: unknown } | undefined)?.message ?? (err as { message?: unknown }).message;
  return typeof message === 'string' && message !== '' ? oneLine(message) : String(err);
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Where a redirect points, origin and path only (a query string may carry a token); never asked. */
export function redirectTarget(location: string | null, base: string): string {
  if (location === null || location === '') return '(no Location header)';
  try {
    const url = new URL(location, base);
    return `${url.origin}${url.pathname}`;
  } catch {
    return '(an invalid Location header)';
  }
}
