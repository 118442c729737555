// Types of conduit.mjs, for the tests that import it.

export interface DemoProvider {
  id: number;
  providerType: number;
  providerName: string;
  baseUrl: string | null;
  isEnabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export interface DemoProviderKey {
  id: number;
  providerId: number;
  keyName: string;
  isPrimary: boolean;
  isEnabled: boolean;
  apiKey: string;
}

/** openai and anthropic enabled, groq disabled, as a fresh demo has them. */
export declare function defaultProviders(): DemoProvider[];

export declare const SCENARIOS: Readonly<Record<'errors' | 'database' | 'memory' | 'disk' | 'certificate', string>>;

export interface DemoConduit {
  url: string;
  port: number;
  adminKey: string;
  /** Live state, as the Admin API answers it. */
  providers: DemoProvider[];
  keys: DemoProviderKey[];
  /** What fails now: provider names (lowercase) and SCENARIOS keys. */
  failing: Set<string>;
  clearedCaches: string[];
  notifications: Array<{ receivedAt: string; body: unknown }>;
  close(): Promise<void>;
}

export declare function startDemoConduit(opts?: {
  port?: number;
  host?: string;
  adminKey?: string;
  tickMs?: number;
  requestsPerTick?: number;
  log?: (line: string) => void;
  now?: () => number;
}): Promise<DemoConduit>;
