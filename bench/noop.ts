import { Type } from '@sinclair/typebox';
import { defineRemediation } from '../remediations/types.js';
import { epochMs } from './common.js';

/**
 * The benchmark's remediation: does nothing, and returns the moment it started (epoch ms, sub-ms
 * resolution) as its result, which the executor stores in `runs.result`. The orchestrator compares it
 * with the moment the load client received the webhook's 200 (same machine clock).
 */
export const noop = defineRemediation({
  name: 'bench.noop',
  summary: 'Benchmark remediation: does nothing and records when it started',
  runbookStep: 'none',
  params: Type.Object({ key: Type.String({ pattern: '^[0-9a-fA-F]{1,64}$' }) }, { additionalProperties: false }),
  requires: 'none',
  target: (p) => `bench/${p.key}`,
  plan: (p) => `nothing (benchmark no-op for ${p.key})`,
  async execute() {
    return { startedAt: epochMs(), pid: process.pid };
  },
});
