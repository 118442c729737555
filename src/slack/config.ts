import { ConfigError } from '../errors.js';

/**
 * Interactive approvals from Slack: the app's signing secret, which authenticates every request
 * Slack sends to `POST /integrations/slack/interactions`, and who may decide, by Slack user id.
 */
export interface SlackConfig {
  /** SLACK_SIGNING_SECRET: the HMAC key of `X-Slack-Signature`. Never logged, never in an error. */
  signingSecret: string;
  /** SLACK_APPROVERS: Slack user id (`U123ABC`) to the approver name a decision is recorded under. */
  approvers: ReadonlyMap<string, string>;
}

/** A Slack user id: `U…` (or `W…` on Enterprise Grid), upper-case letters and digits. */
const SLACK_USER_ID = /^[UW][A-Z0-9]{2,31}$/;
/** The names API_TOKENS allows, so a decision from Slack and one over the API read alike. */
const APPROVER_NAME = /^[A-Za-z0-9_.@-]{1,64}$/;

const present = (value: string | undefined): value is string => value !== undefined && value.trim() !== '';

/**
 * Reads SLACK_SIGNING_SECRET and SLACK_APPROVERS (`U123ABC:alice,U456DEF:bob`): both or neither
 * (`undefined`: no buttons, no interactions route). A `ConfigError` names the variable and the
 * entry; none repeats the secret.
 */
export function parseSlackConfig(env: NodeJS.ProcessEnv): SlackConfig | undefined {
  const secret = env['SLACK_SIGNING_SECRET'];
  const list = env['SLACK_APPROVERS'];
  if (!present(secret) && !present(list)) return undefined;
  if (!present(secret)) throw new ConfigError('SLACK_SIGNING_SECRET', 'required when SLACK_APPROVERS is set');
  if (!present(list)) {
    throw new ConfigError('SLACK_APPROVERS', 'required when SLACK_SIGNING_SECRET is set (slackUserId:name,..., e.g. U123ABC:alice)');
  }
  if (/\s/.test(secret))
    throw new ConfigError('SLACK_SIGNING_SECRET', "must not contain whitespace (copy it from the app's Basic Information page)");
  if (secret.length < 16) {
    throw new ConfigError('SLACK_SIGNING_SECRET', 'is too short to be a Slack signing secret (Basic Information > App Credentials)');
  }
  return { signingSecret: secret, approvers: parseApprovers(list) };
}

function parseApprovers(list: string): Map<string, string> {
  const approvers = new Map<string, string>();
  list.split(',').forEach((raw, i) => {
    const entry = raw.trim();
    const n = i + 1;
    const colon = entry.indexOf(':');
    if (colon < 0) throw new ConfigError('SLACK_APPROVERS', `entry ${n} is not slackUserId:name (e.g. U123ABC:alice)`);
    const id = entry.slice(0, colon).trim();
    const name = entry.slice(colon + 1).trim();
    if (!SLACK_USER_ID.test(id)) {
      throw new ConfigError('SLACK_APPROVERS', `entry ${n}: the user id is not a Slack one (U or W, then upper-case letters and digits)`);
    }
    if (!APPROVER_NAME.test(name)) {
      throw new ConfigError('SLACK_APPROVERS', `entry ${n}: invalid name (1 to 64 of A-Z a-z 0-9 _ . @ -)`);
    }
    if (approvers.has(id)) throw new ConfigError('SLACK_APPROVERS', `entry ${n}: user ${id} is listed twice`);
    approvers.set(id, name);
  });
  return approvers;
}
