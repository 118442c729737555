import pino, { type DestinationStream, type Logger } from 'pino';

/** Where a secret can sit in what the service logs: headers, and fields that hold one or a URL with one. */
export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'headers.authorization',
  'headers["x-api-key"]',
  'token',
  'apiKey',
  'password',
  '*.token',
  '*.apiKey',
  '*.password',
  'url',
  '*.url',
  'databaseUrl',
  'redisUrl',
  '*.databaseUrl',
  '*.redisUrl',
];

const URL_FIELDS = new Set(['url', 'databaseUrl', 'redisUrl']);

/**
 * A URL keeps everything but its password (`postgres://app:[redacted]@db/conduit`), so a line still
 * says where the service went; any other redacted value is replaced whole.
 */
export function censor(value: unknown, path: string[]): unknown {
  const field = path.at(-1) ?? '';
  if (URL_FIELDS.has(field) && typeof value === 'string') {
    return value
      .replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:\s]*):[^/@\s]*@/i, '$1:[redacted]@')
      .replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@:\s]+@/i, '$1[redacted]@');
  }
  return '[redacted]';
}

/**
 * The service's logger: JSON lines with secrets redacted by pino's `redact` (the paths above), and
 * readable lines (pino-pretty) only when a person watches a terminal. `destination` is for tests.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACTED_PATHS, censor } };
  if (destination) return pino(options, destination);
  if (process.stdout.isTTY) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l' } } });
  }
  return pino(options);
}
