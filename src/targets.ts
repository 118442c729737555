import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { Redis } from 'ioredis';
import pg from 'pg';
import { parse } from 'yaml';
import type { KubeConfigSource, OwnDatabase, TargetKind, Targets } from '../remediations/types.js';
import type { Config } from './config.js';
import { notifyTarget } from './notify/client.js';

export interface BuiltTargets {
  targets: Targets;
  configured: Set<TargetKind>;
  close(): Promise<void>;
}

/**
 * KUBECONFIG, then in-cluster, then ~/.kube/config, as kubectl looks. Only which of them applies is
 * decided at start (and a kubeconfig file read and checked to be YAML): the client library, which is
 * large, is imported and the configuration loaded on the first Kubernetes run (remediations/kubernetes/
 * client.ts `kubeClients`), so a service that never touches the cluster does not carry it.
 */
function kubeConfig(config: Config): KubeConfigSource | undefined {
  const home = join(homedir(), '.kube', 'config');
  const inCluster = Boolean(process.env['KUBERNETES_SERVICE_HOST']);
  if (!config.kubeconfig && !inCluster && !existsSync(home)) return undefined;
  const file = config.kubeconfig ?? (inCluster ? undefined : home);
  // A missing or unreadable file, or one that is not a YAML mapping, stops the start as it always did.
  if (file && !isMapping(parse(readFileSync(file, 'utf8')))) throw new Error(`kubeconfig ${file} is not a YAML mapping`);
  let loaded: Promise<KubeConfig> | undefined;
  return {
    lazy: true,
    load: () =>
      (loaded ??= (async () => {
        const { KubeConfig } = await import('@kubernetes/client-node');
        const kc = new KubeConfig();
        if (file) kc.loadFromFile(file);
        else kc.loadFromCluster();
        return kc;
      })()),
  };
}

const isMapping = (v: unknown): boolean => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The database DATABASE_URL names, resolved as pg resolves it (a URL without a path means the user's
 * database; PGHOST, PGPORT and the like fill what the URL leaves out). A client is made, never connected.
 */
export function ownDatabase(databaseUrl: string): OwnDatabase {
  const client = new pg.Client({ connectionString: databaseUrl });
  return { name: client.database ?? '', host: client.host, port: client.port };
}

/** The clients of every configured target. Connections open lazily, on a remediation's first use. */
export async function buildTargets(config: Config): Promise<BuiltTargets> {
  const targets: Targets = {
    settings: {
      archiveTables: config.archiveTables,
      queuePrefix: config.queuePrefix,
      applicationName: config.applicationName,
      ownDatabase: ownDatabase(config.databaseUrl),
    },
  };
  const configured = new Set<TargetKind>(['none']);
  if (config.conduit) {
    targets.conduit = config.conduit;
    configured.add('conduit');
  }
  if (config.targetDatabaseUrl) {
    // The service's name on every session, so kill-idle-connections (and people) can tell them apart.
    const pool = new pg.Pool({
      connectionString: config.targetDatabaseUrl,
      application_name: config.applicationName,
      max: 4,
      connectionTimeoutMillis: 5000,
    });
    pool.on('error', () => {});
    targets.targetDatabase = pool;
    configured.add('targetDatabase');
  }
  if (config.targetRedisUrl) {
    const redis = new Redis(config.targetRedisUrl, { lazyConnect: true, maxRetriesPerRequest: 2, connectTimeout: 5000 });
    redis.on('error', () => {});
    targets.targetRedis = redis;
    configured.add('targetRedis');
  }
  const kc = kubeConfig(config);
  if (kc) {
    targets.kubernetes = kc;
    configured.add('kubernetes');
  }
  if (config.notifyWebhookUrl) {
    targets.notify = notifyTarget(config.notifyWebhookUrl);
    configured.add('notify');
  }
  return {
    targets,
    configured,
    async close() {
      await targets.targetDatabase?.end().catch(() => {});
      targets.targetRedis?.disconnect();
    },
  };
}
