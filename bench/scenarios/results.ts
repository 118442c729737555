/** What the scenarios record, for the report: one entry per scenario that completed. */
import type { CannonResult, PacedResult, StormResult, Summary } from '../common.js';
import type { TableStats } from '../groups.js';
import type { Sampled } from '../proc-measurements.js';
import type { Loaded } from '../processes.js';
import type { Counters } from '../round-trips.js';

export type Stripped = Omit<Sampled<unknown>, 'value'>;

export interface Scenarios {
  baseline?: { load: Loaded<CannonResult>; sampled: Stripped };
  /** `sent`: PostgreSQL statements and Redis commands the service sent during the scenario, warm-up included. */
  intake?: { load: Loaded<CannonResult>; sampled: Stripped; runsStored: number; sent: Counters; alertsSent: number; scans: TableStats };
  intakeAll?: { load: Loaded<CannonResult>; sampled: Stripped; runsStored: number; executedDuring: number };
  storm?: { load: Loaded<StormResult>; sampled: Stripped; runsStored: number; sent: Counters; alertsSent: number; scans: TableStats };
  /** Scenario 3b: one message of BIG_MESSAGE_ALERTS new alerts, on scenario 3's process right after it. */
  bigMessage?: { load: Loaded<StormResult>; sampled: Stripped; runsStored: number; sent: Counters; alertsSent: number; scans: TableStats };
  duplicates?: {
    load: Loaded<CannonResult>;
    sampled: Stripped;
    knownAlerts: number;
    runsBefore: number;
    runsAfter: number;
    sent: Counters;
    alertsSent: number;
    scans: TableStats;
  };
  memory?: { vmHwm: number; peakSampled: number; perScenario: Record<string, number>; process?: MemReport };
  execAll?: ExecResult;
  execSplit?: ExecResult;
  chainAll?: ChainResult;
  chainSplit?: ChainResult;
  atRest?: AtRestResult;
}

/** RSS of an idle ROLE=all process, without and with a kubeconfig (MiB). */
export interface AtRestResult {
  seconds: number;
  withoutKube: RestRss;
  withKube: RestRss;
}

export interface RestRss {
  /** 2 s after both processes were ready. */
  afterStartMiB: number;
  /** After `seconds` of idling: the figure judged. */
  atRestMiB: number;
  maxMiB: number;
}

/** process.memoryUsage() of the service at the end of scenario 4, before and after a full GC. */
export interface MemReport {
  before: NodeJS.MemoryUsage;
  /** V8 heap spaces (bytes reserved) before the GC. */
  heapSpaces: Record<string, number>;
  /** /proc/self/smaps_rollup: Rss, Anonymous, Shared_Clean, Private_Clean (bytes). */
  smaps?: Record<string, number>;
  afterGc?: NodeJS.MemoryUsage;
}

export interface ExecResult {
  role: string;
  load: Loaded<PacedResult>;
  webhookMs: Summary;
  /** Webhook 200 (client clock) to bench.noop start (service clock), ms. */
  execMs: Summary;
  executed: number;
  missing: number;
  peakRss: Record<string, number>;
  cpu: Record<string, number>;
}

export interface ChainResult {
  role: string;
  load: Loaded<PacedResult>;
  webhookMs: Summary;
  /**
   * Per chain: the moment the predecessor's `succeeded` event was stored (PostgreSQL's clock) to the
   * moment the dependent's bench.noop started (the service's clock), ms.
   */
  chainMs: Summary;
  /** Webhook 200 (client clock) to the predecessor's bench.noop start (service clock), ms. */
  firstMs: Summary;
  /** Chains whose predecessor and dependent both succeeded. */
  completed: number;
  /** Chains without a latency: a webhook that did not answer 200, or a run that did not succeed. */
  missing: number;
  /** Final statuses of the dependents other than `succeeded` (`skipped: 2`), and of predecessors as `first <status>`. */
  otherStatuses: Record<string, number>;
  peakRss: Record<string, number>;
  cpu: Record<string, number>;
}

export const strip = <T>(s: Sampled<T>) => ({ wallSec: s.wallSec, peakRss: s.peakRss, cpu: s.cpu });
