import type { LoadSpec } from '../common.js';
import { CONNECTIONS, DURATION, WARMUP_SEC, startsAt, tag } from '../settings.js';

/** Scenarios 1, 2 and 2b send the same load, so that 2 and 2b compare with the baseline. */
export function cannonSpec(url: string, series: number, warmupSeries: number | undefined): LoadSpec {
  return {
    mode: 'cannon',
    url,
    connections: CONNECTIONS,
    durationSec: DURATION,
    source: { kind: 'unique', tag, series, startsAt },
    ...(warmupSeries !== undefined
      ? { warmup: { durationSec: WARMUP_SEC, source: { kind: 'unique', tag, series: warmupSeries, startsAt } } }
      : {}),
  };
}
