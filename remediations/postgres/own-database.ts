import pg from 'pg';
import { RemediationError, type Targets } from '../types.js';

/** A database name as SQL writes it: double-quoted, a `"` in it doubled (`"conduit-prod"`). */
export const quoteIdentifier = (name: string): string => pg.escapeIdentifier(name);

/**
 * The service's own database, by name, is never a target: the remediation refuses before any I/O.
 *
 * The name alone decides, whichever server TARGET_DATABASE_URL names. Host and port cannot prove two
 * URLs reach different servers: `postgres` and `10.0.0.5` may be one host, and PgBouncer on 6432 may
 * front the server on 5432. A Conduit database that really shares the name of the service's database
 * on another server is therefore refused too; rename the service's database (DATABASE_URL) to lift it.
 */
export function refuseOwnDatabase(database: string, settings: Targets['settings'], remediation: string): void {
  const own = settings.ownDatabase;
  if (!own || own.name !== database) return;
  throw new RemediationError(
    'refused',
    `${remediation} never acts on the service's own database ${quoteIdentifier(own.name)} ` +
      `(DATABASE_URL, on ${own.host}:${own.port}): it holds the remediator's runs and sessions`,
    { detail: { database, ownDatabase: own } },
  );
}
