import type { Db } from './database.js';

export interface KillSwitchState {
  paused: boolean;
  reason: string | null;
  changedBy: string | null;
  changedAt: string | null;
}

/** The kill switch, kept in PostgreSQL so it survives restarts and every replica reads the same. */
export function createKillSwitchStore(db: Db) {
  async function get(): Promise<KillSwitchState> {
    const { rows } = await db.query<{ paused: boolean; reason: string | null; changed_by: string | null; changed_at: Date | null }>(
      'SELECT paused, reason, changed_by, changed_at FROM control',
    );
    const row = rows[0];
    if (!row) return { paused: false, reason: null, changedBy: null, changedAt: null };
    return { paused: row.paused, reason: row.reason, changedBy: row.changed_by, changedAt: row.changed_at?.toISOString() ?? null };
  }

  async function set(paused: boolean, actor: string, reason: string | null): Promise<KillSwitchState> {
    await db.transaction(async (client) => {
      await client.query('UPDATE control SET paused = $1, reason = $2, changed_by = $3, changed_at = now()', [paused, reason, actor]);
      await client.query('INSERT INTO control_events (actor, type, detail) VALUES ($1, $2, $3)', [
        actor,
        paused ? 'paused' : 'resumed',
        JSON.stringify({ reason }),
      ]);
    });
    return get();
  }

  return { get, set };
}

export type KillSwitchStore = ReturnType<typeof createKillSwitchStore>;
