/** Alerts for the unit tests: the captured Alertmanager fixtures and hand-made ones. */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AlertSnapshot } from '../../src/schemas/runs.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/alertmanager', import.meta.url));

interface FixtureMessage {
  alerts: Array<AlertSnapshot & { endsAt: string; generatorURL: string }>;
}

/** The first alert of a captured Alertmanager message, as the intake stores it. */
export function fixtureAlert(name: 'firing-provider-down' | 'resolved-provider-down'): AlertSnapshot {
  const message = JSON.parse(readFileSync(`${FIXTURES}/${name}.json`, 'utf8')) as FixtureMessage;
  const a = message.alerts[0];
  if (!a) throw new Error(`${name}.json has no alert`);
  return {
    fingerprint: a.fingerprint,
    status: a.status,
    startsAt: a.startsAt,
    endsAt: a.endsAt,
    generatorURL: a.generatorURL,
    labels: a.labels,
    annotations: a.annotations,
  };
}

export function alert(labels: Record<string, string>, opts: Partial<AlertSnapshot> = {}): AlertSnapshot {
  return {
    fingerprint: 'a1b2c3d4e5f60718',
    status: 'firing',
    startsAt: '2026-11-27T13:31:39Z',
    labels,
    annotations: { summary: 'something is wrong' },
    ...opts,
  };
}
