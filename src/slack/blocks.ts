/**
 * Slack Block Kit layouts of the service's messages: an approval notice with Approve and Reject
 * buttons, and the message a decision replaces it with. Pure layout: every line handed in is
 * already escaped mrkdwn (src/notify/notifier.ts writes them); nothing here reads alert data.
 */

/** The `action_id`s of the two buttons; the interactions route acts on these alone. */
export const APPROVE_ACTION = 'remediator_approve';
export const REJECT_ACTION = 'remediator_reject';

/** A run id as the service makes them: a button carries it, and the route takes nothing else. */
export const RUN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Slack's limits: a section's text, a message's blocks. */
export const SECTION_MAX = 3000;
export const BLOCKS_MAX = 50;

export interface PlainText {
  type: 'plain_text';
  text: string;
  emoji?: boolean;
}
export interface Mrkdwn {
  type: 'mrkdwn';
  text: string;
}
export interface Button {
  type: 'button';
  action_id: string;
  text: PlainText;
  value: string;
  style?: 'primary' | 'danger';
  confirm?: { title: PlainText; text: PlainText; confirm: PlainText; deny: PlainText; style?: 'primary' | 'danger' };
}
export type Block =
  | { type: 'section'; block_id?: string; text: Mrkdwn }
  | { type: 'actions'; block_id: string; elements: Button[] }
  | { type: 'context'; block_id?: string; elements: Mrkdwn[] };

/** What the incoming webhook and `response_url` take: `text` is what a client without blocks (and a notification) shows. */
export interface SlackMessage {
  text: string;
  blocks?: Block[];
}

const plain = (text: string): PlainText => ({ type: 'plain_text', text, emoji: false });

/**
 * Cuts escaped mrkdwn to at most `max` characters, never inside an entity (`&lt;`), so a cut
 * can leave no half-written one behind.
 */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  let end = max - 1;
  const amp = text.lastIndexOf('&', end);
  if (amp >= 0 && amp > end - 5 && !text.slice(amp, end).includes(';')) end = amp;
  return `${text.slice(0, end)}…`;
}

/** Lines of escaped mrkdwn as section blocks, joined up to Slack's 3000 characters each; a longer line is cut. */
export function sections(lines: readonly string[], max = SECTION_MAX): Block[] {
  const blocks: Block[] = [];
  let current = '';
  for (const raw of lines) {
    const line = cut(raw, max);
    if (current && current.length + 1 + line.length > max) {
      blocks.push({ type: 'section', text: { type: 'mrkdwn', text: current } });
      current = '';
    }
    current = current ? `${current}\n${line}` : line;
  }
  if (current) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: current } });
  return blocks;
}

/** The Approve and Reject buttons of one run: the run id is their only value; none for an id that is not a UUID. */
export function decisionButtons(runId: string): Block | undefined {
  if (!RUN_ID.test(runId)) return undefined;
  return {
    type: 'actions',
    block_id: `decide:${runId}`,
    elements: [
      {
        type: 'button',
        action_id: APPROVE_ACTION,
        text: plain('Approve'),
        value: runId,
        style: 'primary',
        confirm: {
          title: plain('Approve this run?'),
          text: plain(`Run ${runId} is queued and executed once approved.`),
          confirm: plain('Approve'),
          deny: plain('Cancel'),
        },
      },
      { type: 'button', action_id: REJECT_ACTION, text: plain('Reject'), value: runId },
    ],
  };
}

/**
 * An approval notice: the notice (`body`), the buttons, and below them the approve and reject
 * commands (`commands`) for whoever cannot click. `text` is the whole notice as plain text, the
 * commands included. Without a run id that is a UUID there are no buttons, just the text.
 */
export function approvalMessage(opts: { text: string; body: readonly string[]; commands: readonly string[]; runId: string }): SlackMessage {
  const buttons = decisionButtons(opts.runId);
  if (!buttons) return { text: opts.text };
  const below: Block[] =
    opts.commands.length > 0
      ? [
          {
            type: 'section',
            block_id: `commands:${opts.runId}`,
            text: { type: 'mrkdwn', text: cut(opts.commands.join('\n'), SECTION_MAX) },
          },
        ]
      : [];
  const above = sections(opts.body).slice(0, BLOCKS_MAX - 1 - below.length);
  return { text: opts.text, blocks: [...above, buttons, ...below] };
}

/** What replaces an approval notice once it is decided: the run as it is now (`body`) and the outcome, no buttons. */
export function decidedMessage(body: readonly string[], outcome: string): SlackMessage {
  return {
    text: [...body, outcome].join('\n'),
    blocks: [
      ...sections(body).slice(0, BLOCKS_MAX - 1),
      { type: 'context', elements: [{ type: 'mrkdwn', text: cut(outcome, SECTION_MAX) }] },
    ],
  };
}
