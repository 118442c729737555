import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { count } from '../summary.js';
import { defineRemediation, RemediationError, type RemediationResult } from '../types.js';

export default defineRemediation({
  name: 'notify.webhook',
  summary: 'Posts a message to the on-call channel through the Slack-compatible webhook',
  runbookStep: 'Provider Down: notify on-call (On-Call Procedures: notify stakeholders)',
  params: Type.Object({ text: Type.String({ minLength: 1, maxLength: 4000 }) }, { additionalProperties: false }),
  requires: 'notify',
  // Alert data templated into the text can neither ping (`<!channel>`), link, nor start a line.
  textParams: { text: 'slack' },
  // Per message, not per webhook: a cooldown then silences the same message repeated, never the
  // notice about a different alert (a second provider going down minutes after the first).
  target: (p) => `notify/webhook/${createHash('sha256').update(p.text).digest('hex').slice(0, 16)}`,
  plan: (p) => `Post to the on-call webhook (NOTIFY_WEBHOOK_URL): ${JSON.stringify(p.text)}`,
  execute: async (p, ctx): Promise<RemediationResult> => {
    const target = ctx.targets.notify;
    if (!target) throw new RemediationError('target_not_configured', 'notification webhook is not configured (NOTIFY_WEBHOOK_URL)');
    const answer = await target.post(p.text, {
      signal: ctx.signal,
      timeoutMs: ctx.timeoutMs,
      runId: ctx.runId,
      ...(ctx.rule ? { rule: ctx.rule } : {}),
    });
    const chars = p.text.length;
    if ('folded' in answer) {
      ctx.log.info({ chars }, 'notification folded into the next notice of its rule');
      return {
        posted: false,
        folded: true,
        chars,
        summary: `Folded the notice (${count(chars, 'character')}) into one message with the others of its rule, posted within seconds`,
      };
    }
    const { status } = answer;
    ctx.log.info({ chars }, 'notification posted');
    return {
      posted: true,
      status,
      chars,
      summary: `Posted the notice (${count(chars, 'character')}) to the notify webhook (HTTP ${status})`,
    };
  },
});
