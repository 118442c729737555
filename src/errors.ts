/**
 * Every error an HTTP client can receive, each with a stable code. Clients and tests assert on
 * `code`, never on the message; the README's error table documents each code (a test keeps the two
 * in step). Fastify's own errors are mapped onto these codes, so no `FST_ERR_*` reaches a client.
 */
export const ERROR_CODES = {
  BAD_REQUEST: { statusCode: 400, meaning: 'the request cannot be read: a body that is not JSON, an empty JSON body, a malformed URL' },
  VALIDATION: { statusCode: 400, meaning: 'the body, query or path does not fit the schema; the message names the field' },
  UNAUTHORIZED: { statusCode: 401, meaning: 'the bearer token is missing or unknown' },
  FORBIDDEN: { statusCode: 403, meaning: "the token's role is too low for this endpoint" },
  NOT_FOUND: { statusCode: 404, meaning: 'no such route, or no run with this id' },
  CONFLICT: { statusCode: 409, meaning: 'the run is not in a state that allows this (already decided, expired)' },
  INVALID_MATRIX: {
    statusCode: 422,
    meaning: 'POST /-/reload: the matrix file does not load (the message has file:line:col); the previous matrix stays in use',
  },
  PAYLOAD_TOO_LARGE: {
    statusCode: 413,
    meaning:
      'the body is over the limit (BODY_LIMIT for the webhook, 64 KiB elsewhere), or a message has more alerts than MAX_ALERTS_PER_MESSAGE',
  },
  UNSUPPORTED_MEDIA_TYPE: { statusCode: 415, meaning: 'the body is not application/json' },
  INTERNAL: { statusCode: 500, meaning: 'a bug; the details are in the service log, never in the answer' },
  UNAVAILABLE: { statusCode: 503, meaning: 'PostgreSQL or Redis cannot serve the request now (the message names which); retry' },
  CONSOLE_NOT_BUILT: {
    statusCode: 503,
    meaning: 'GET /ui: the console was not built (npm run build bundles it); the API works without it',
  },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error answered to an HTTP client as `{ statusCode, code, error, message }`. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly statusCode: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.statusCode = ERROR_CODES[code].statusCode;
  }
}

export const unauthorized = (message: string) => new ApiError('UNAUTHORIZED', message);
export const forbidden = (message: string) => new ApiError('FORBIDDEN', message);
export const notFound = (what: string) => new ApiError('NOT_FOUND', `${what} not found`);
export const conflict = (message: string) => new ApiError('CONFLICT', message);
export const validation = (message: string) => new ApiError('VALIDATION', message);

export type Dependency = 'PostgreSQL' | 'Redis';

/**
 * A call to PostgreSQL or Redis failed (refused, reset, timed out, or the statement failed). Thrown
 * at the store and queue boundaries, so callers know which dependency failed without reading the
 * message; answered 503 `UNAVAILABLE`, which Alertmanager retries.
 */
export class DependencyError extends Error {
  override readonly name = 'DependencyError';

  constructor(
    readonly dependency: Dependency,
    what: string,
    cause: unknown,
  ) {
    super(`${dependency}: ${what} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

/** Wraps a failure of `promise` as a `DependencyError` of `dependency`. */
export async function on<T>(dependency: Dependency, what: string, promise: Promise<T>): Promise<T> {
  try {
    return await promise;
  } catch (err) {
    throw err instanceof DependencyError ? err : new DependencyError(dependency, what, err);
  }
}

/** Fastify's errors that reach the error handler, by their code. */
const FASTIFY: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_BAD_URL: 'BAD_REQUEST',
  FST_ERR_INVALID_URL: 'BAD_REQUEST',
  FST_ERR_MAX_PARAM_LENGTH: 'BAD_REQUEST',
  FST_ERR_VALIDATION: 'VALIDATION',
  FST_ERR_NOT_FOUND: 'NOT_FOUND',
  FST_ERR_HANDLER_TIMEOUT: 'UNAVAILABLE',
};

/** One schema violation as Ajv reports it. */
interface SchemaIssue {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/**
 * One message for a request's schema violations, each naming its field (`querystring/status`): a
 * value that must be one of several constants (a union of literals, an enum) is told the allowed
 * values once, instead of one "must be equal to constant" per alternative. `undefined` when Ajv's
 * errors are not there to read.
 */
export function validationMessage(issues: unknown, context: unknown): string | undefined {
  if (!Array.isArray(issues) || issues.length === 0) return undefined;
  const prefix = typeof context === 'string' ? context : 'request';
  const byPath = new Map<string, SchemaIssue[]>();
  for (const issue of issues as SchemaIssue[]) {
    const path = issue.instancePath ?? '';
    byPath.set(path, [...(byPath.get(path) ?? []), issue]);
  }
  const parts: string[] = [];
  for (const [path, found] of byPath) {
    const field = `${prefix}${path}`;
    const allowed = found.flatMap((i) =>
      i.keyword === 'const' ? [i.params?.['allowedValue']] : i.keyword === 'enum' ? ((i.params?.['allowedValues'] as unknown[]) ?? []) : [],
    );
    if (allowed.length > 0 && found.every((i) => ['const', 'enum', 'anyOf', 'oneOf'].includes(i.keyword ?? ''))) {
      parts.push(`${field} must be one of: ${allowed.map(String).join(', ')}`);
      continue;
    }
    for (const i of found) {
      const extra = i.keyword === 'additionalProperties' ? i.params?.['additionalProperty'] : undefined;
      const text =
        typeof extra === 'string' ? `${field} must NOT have additional properties ('${extra}')` : `${field} ${i.message ?? 'is invalid'}`;
      if (!parts.includes(text)) parts.push(text);
    }
  }
  return parts.join(', ');
}

/** PostgreSQL's codes for text it cannot take: untranslatable_character, character_not_in_repertoire, invalid_text_representation (JSON with half a surrogate pair). */
const UNSTORABLE_TEXT = new Set(['22P05', '22021', '22P02']);

/** What a client is told about `err`: our own errors as they are, Fastify's and the dependencies' mapped, the rest INTERNAL. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof DependencyError) {
    // A value PostgreSQL refuses as text (a NUL, \u0000) is the request's fault, not an outage: a retry would fail the same.
    const code = (err.cause as { code?: unknown } | undefined)?.code;
    if (err.dependency === 'PostgreSQL' && typeof code === 'string' && UNSTORABLE_TEXT.has(code)) {
      return new ApiError(
        'VALIDATION',
        'a value holds a character PostgreSQL cannot store or compare (NUL, \\u0000, or half of a surrogate pair)',
      );
    }
    return new ApiError('UNAVAILABLE', `${err.dependency} cannot serve the request right now; retry`);
  }
  const e = err as { code?: unknown; validation?: unknown; statusCode?: unknown; message?: unknown };
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (e.validation)
    return new ApiError('VALIDATION', validationMessage(e.validation, (e as { validationContext?: unknown }).validationContext) ?? message);
  const mapped = typeof e.code === 'string' ? FASTIFY[e.code] : undefined;
  if (mapped) return new ApiError(mapped, message);
  // A 4xx from a parser or plugin we do not know by code: the client's request, not our bug.
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return new ApiError('BAD_REQUEST', message);
  return new ApiError('INTERNAL', 'internal error; see the service log');
}

/** Bad configuration: names the variable (or the matrix file and line) and stops the process at start. */
export class ConfigError extends Error {
  readonly variable: string;

  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}
