/// <reference lib="dom" />
/**
 * The console: sign in with an API token, pending approvals first, runs and their timelines, the
 * kill switch. Views refresh themselves every few seconds in place: what the reader typed, where they
 * scrolled and what has focus stay as they are.
 */
import { api, ApiError, session, whenUnauthorized, type Control, type ListedRun, type Me, type Run } from './api.js';
import { RUN_STATUSES } from '../../schemas/statuses.js';
import { fill, fmtDuration, h, json, safeLink, time, type Child } from './dom.js';

const REFRESH_MS = 3000;
/** The status filter's choices: what waits for a human first. */
const STATUSES = ['pending_approval', ...RUN_STATUSES.filter((s) => s !== 'pending_approval')];

interface View {
  el: HTMLElement;
  refresh(): Promise<void>;
}

let me: Me | undefined;
let view: View | undefined;
let timer: number | undefined;

const root = h('div', { class: 'app' });
const header = h('header', { class: 'top' });
const controlBar = h('section', { class: 'control', 'aria-live': 'polite', 'aria-label': 'Remediation state' });
const main = h('main', { id: 'main', tabindex: '-1' });
const status = h('p', { class: 'refresh muted', 'aria-live': 'off' });

function message(text: string, kind: 'error' | 'info' = 'error'): HTMLElement {
  return h('p', { class: `msg ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}

function errorText(err: unknown): string {
  if (err instanceof ApiError) return err.status ? `${err.message} (${err.status} ${err.code})` : err.message;
  return err instanceof Error ? err.message : String(err);
}

function badge(statusName: string): HTMLElement {
  return h('span', { class: `badge s-${statusName}` }, statusName.replace('_', ' '));
}

const alertName = (run: Pick<ListedRun, 'alert'>): string => run.alert.labels['alertname'] ?? '';

// --- sign-in -------------------------------------------------------------------------------------

function signInView(note?: string): void {
  stopRefreshing();
  me = undefined;
  fill(header, h('h1', {}, 'conduit-remediator'));
  fill(controlBar);
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
    'aria-describedby': 'token-help',
  });
  const out = h('div', { class: 'signin-msg' }, note ? message(note) : null);
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin', 'aria-label': 'Sign in' },
    h('h2', {}, 'Sign in'),
    h('label', { for: 'token' }, 'API token'),
    input,
    h(
      'p',
      { id: 'token-help', class: 'muted' },
      'Paste a token from API_TOKENS or TOKENS_FILE. It is kept in this tab only (sessionStorage) and sent as a bearer header.',
    ),
    submit,
    out,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    submit.disabled = true;
    fill(out, message('Checking the token…', 'info'));
    api
      .whoami(token)
      .then((who) => {
        session.set(token);
        start(who);
      })
      .catch((err: unknown) => {
        submit.disabled = false;
        const text =
          err instanceof ApiError && err.status === 401
            ? 'This token is not accepted by the service (401). Check that it was pasted whole, or ask an admin for one.'
            : `Could not sign in: ${errorText(err)}`;
        fill(out, message(text));
        input.select();
      });
  });
  fill(main, form);
  input.focus();
}

function signOut(note?: string): void {
  session.clear();
  location.hash = '';
  signInView(note);
}

// --- shell ---------------------------------------------------------------------------------------

function start(who: Me): void {
  me = who;
  const nav = h(
    'nav',
    { 'aria-label': 'Views' },
    h('a', { href: '#/', 'data-nav': 'approvals' }, 'Approvals'),
    h('a', { href: '#/runs', 'data-nav': 'runs' }, 'Runs'),
  );
  fill(
    header,
    h('h1', {}, h('a', { href: '#/' }, 'conduit-remediator')),
    nav,
    h(
      'div',
      { class: 'who' },
      h('span', { class: 'whoami', 'data-role': who.role }, h('strong', {}, who.name), ` · ${who.role}`),
      h('button', { type: 'button', class: 'link', onclick: () => signOut() }, 'Sign out'),
    ),
  );
  buildControl();
  route();
}

function route(): void {
  if (!me) return;
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path = '/', query = ''] = hash.split('?');
  const runMatch = /^\/runs\/([^/]+)$/.exec(path);
  if (runMatch) view = runView(decodeURIComponent(runMatch[1]!));
  else if (path === '/runs') view = runsView(new URLSearchParams(query));
  else view = approvalsView();
  for (const a of header.querySelectorAll<HTMLAnchorElement>('[data-nav]')) {
    const current = (a.dataset['nav'] === 'runs') === path.startsWith('/runs');
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  fill(main, view.el);
  window.scrollTo(0, 0);
  void tick();
}

function stopRefreshing(): void {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
}

/** Refreshes the control bar and the current view, then again in REFRESH_MS. */
async function tick(): Promise<void> {
  stopRefreshing();
  const current = view;
  try {
    await Promise.all([refreshControl(), current?.refresh()]);
    fill(status, 'Updated ', time(new Date().toISOString()));
  } catch (err) {
    fill(status, `Refresh failed: ${errorText(err)}`);
  }
  if (me && view === current) timer = window.setTimeout(() => void tick(), REFRESH_MS);
}

/** Countdowns and ages, every second, from the times in their data attributes. */
function everySecond(): void {
  const now = Date.now();
  for (const el of document.querySelectorAll<HTMLElement>('[data-expires]')) {
    const left = Date.parse(el.dataset['expires']!) - now;
    el.textContent = left > 0 ? `expires in ${fmtDuration(left)}` : 'expired';
    el.classList.toggle('urgent', left < 60_000);
  }
  for (const el of document.querySelectorAll<HTMLElement>('[data-since]')) {
    el.textContent = `firing for ${fmtDuration(now - Date.parse(el.dataset['since']!))}`;
  }
}

// --- control -------------------------------------------------------------------------------------

const controlState = h('p', { class: 'state' });
const controlActions = h('div', { class: 'actions' });

function buildControl(): void {
  fill(controlBar, controlState, me?.can.control ? controlActions : null);
  fill(controlActions);
}

function renderControlActions(c: Control): void {
  if (!me?.can.control || controlActions.querySelector('form')) return;
  const wanted = c.paused ? 'resume' : 'pause';
  if (controlActions.dataset['for'] === wanted) return;
  controlActions.dataset['for'] = wanted;
  if (c.paused) {
    fill(
      controlActions,
      h(
        'button',
        {
          type: 'button',
          onclick: (e: Event) => {
            const b = e.currentTarget as HTMLButtonElement;
            b.disabled = true;
            api
              .resume()
              .then((now) => showControl(now))
              .catch((err: unknown) => controlActions.append(message(errorText(err))))
              .finally(() => (b.disabled = false));
          },
        },
        'Resume',
      ),
    );
    return;
  }
  const open = h('button', { type: 'button', class: 'danger' }, 'Pause…');
  open.addEventListener('click', () => {
    const reason = h('input', { id: 'pause-reason', type: 'text', maxlength: '2000', placeholder: 'why (shown to everyone)' });
    const form = h(
      'form',
      { class: 'pause' },
      h('label', { for: 'pause-reason' }, 'Reason'),
      reason,
      h('button', { type: 'submit', class: 'danger' }, 'Pause remediation'),
      h(
        'button',
        {
          type: 'button',
          onclick: () => {
            delete controlActions.dataset['for'];
            fill(controlActions);
            void refreshControl();
          },
        },
        'Cancel',
      ),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      api
        .pause(reason.value.trim())
        .then((now) => {
          fill(controlActions);
          delete controlActions.dataset['for'];
          showControl(now);
        })
        .catch((err: unknown) => form.append(message(errorText(err))));
    });
    fill(controlActions, form);
    reason.focus();
  });
  fill(controlActions, open);
}

function showControl(c: Control): void {
  controlBar.classList.toggle('paused', c.paused);
  controlBar.classList.toggle('dry', c.dryRun);
  fill(
    controlState,
    c.paused
      ? h(
          'span',
          { 'data-state': 'paused' },
          h('strong', {}, 'PAUSED'),
          c.changedBy ? ` by ${c.changedBy}` : '',
          c.changedAt ? ' at ' : '',
          time(c.changedAt),
          c.reason ? `: ${c.reason}` : '',
          ' — new runs are suppressed, queued runs wait.',
        )
      : h('span', { 'data-state': 'active' }, h('strong', {}, 'Active'), ' — remediation runs.'),
    c.dryRun
      ? h('span', { class: 'dry-note', 'data-state': 'dry-run' }, ' DRY RUN: runs end dry_run with their plan; nothing is executed.')
      : null,
  );
  renderControlActions(c);
}

async function refreshControl(): Promise<void> {
  showControl(await api.control());
}

// --- decisions -----------------------------------------------------------------------------------

/** What happened to a run that no longer waits for approval, in one sentence. */
function decidedNote(run: Run, mine: boolean): Child {
  const a = run.approval;
  const at = (iso: string | null) => (iso ? [' at ', time(iso)] : []);
  const span = (...c: Child[]) => {
    const s = h('span', {});
    for (const x of c) if (x !== null && x !== undefined && x !== false) s.append(typeof x === 'object' ? x : String(x));
    return s;
  };
  const then = [' — now ', badge(run.status), ' ', h('a', { href: `#/runs/${run.id}` }, 'open run')];
  if (run.status === 'pending_approval') return null;
  if (run.status === 'expired') return span('Expired', ...at(a.expiresAt), ' without a decision.');
  if (run.status === 'cancelled')
    return span('Cancelled', run.reason ? ` (${run.reason})` : '', ' — the alert resolved or the run was withdrawn.');
  if (a.decidedBy) {
    const verb = run.status === 'rejected' ? 'rejected' : 'approved';
    const who = mine ? `${verb[0]!.toUpperCase()}${verb.slice(1)} by ${a.decidedBy} (you)` : `Already ${verb} by ${a.decidedBy}`;
    return span(who, ...at(a.decidedAt), a.comment ? ` — “${a.comment}”` : '', ...then);
  }
  return span('No longer waiting for approval', ...then);
}

interface Decision {
  el: HTMLElement;
  /** Shows that the run was decided, expired or withdrawn; the buttons go. */
  settle(run: Run, mine?: boolean): void;
  readonly settled: boolean;
  /** Whether the reader is writing in it (a refresh must leave it alone). */
  busy(): boolean;
}

function decisionPanel(runId: string, onSettled?: (run: Run) => void): Decision {
  const el = h('div', { class: 'decision' });
  const note = h('p', { class: 'decided', role: 'status' });
  let settled = false;
  const settle = (run: Run, mine = false) => {
    settled = true;
    el.classList.add('is-settled');
    fill(el, note);
    fill(note, decidedNote(run, mine));
    onSettled?.(run);
  };
  if (!me?.can.decide) {
    fill(el, note, h('p', { class: 'muted readonly' }, `Read only: ${me?.role ?? 'this'} tokens cannot approve or reject.`));
    return {
      el,
      settle,
      busy: () => false,
      get settled() {
        return settled;
      },
    };
  }
  const id = `comment-${runId}`;
  const comment = h('textarea', { id, rows: '2', maxlength: '2000', placeholder: 'optional: why, ticket, what you checked' });
  const approveBtn = h('button', { type: 'button', class: 'primary', 'data-action': 'approve' }, 'Approve');
  const rejectBtn = h('button', { type: 'button', class: 'danger', 'data-action': 'reject' }, 'Reject');
  const out = h('div', {});
  const decide = (how: 'approve' | 'reject') => {
    approveBtn.disabled = rejectBtn.disabled = true;
    fill(out);
    const text = comment.value.trim();
    (how === 'approve' ? api.approve(runId, text) : api.reject(runId, text))
      .then((run) => settle(run, true))
      .catch(async (err: unknown) => {
        if (err instanceof ApiError && err.status === 409) {
          // Decided meanwhile by someone else, or expired: that is news, not an error.
          try {
            settle(await api.run(runId));
            return;
          } catch (again) {
            err = again;
          }
        }
        approveBtn.disabled = rejectBtn.disabled = false;
        fill(out, message(`Could not ${how}: ${errorText(err)}`));
      });
  };
  approveBtn.addEventListener('click', () => decide('approve'));
  rejectBtn.addEventListener('click', () => decide('reject'));
  fill(el, h('label', { for: id }, 'Comment'), comment, h('div', { class: 'buttons' }, approveBtn, rejectBtn), out);
  return {
    el,
    settle,
    busy: () => document.activeElement === comment || comment.value !== '',
    get settled() {
      return settled;
    },
  };
}

function firingCheck(run: Run): Child {
  const f = run.alertFiring;
  if (!f) return null;
  if (f.firing === true)
    return h('span', { class: 'firing yes' }, 'still firing', f.state ? ` (${f.state})` : '', ' — checked ', time(f.checkedAt));
  if (f.firing === false)
    return h('span', { class: 'firing no' }, 'no longer firing', f.state ? ` (${f.state})` : '', ' — checked ', time(f.checkedAt));
  return h('span', { class: 'firing unknown' }, 'firing unknown: ', f.error ?? 'no Alertmanager answered');
}

function labelList(labels: Record<string, string>): HTMLElement {
  return h(
    'ul',
    { class: 'labels', 'aria-label': 'Alert labels' },
    ...Object.entries(labels).map(([k, v]) => h('li', {}, h('span', { class: 'k' }, k), '=', h('span', { class: 'v' }, v))),
  );
}

// --- approvals -----------------------------------------------------------------------------------

interface Card {
  el: HTMLElement;
  decision: Decision;
  firing: HTMLElement;
}

function approvalsView(): View {
  const list = h('div', { class: 'cards' });
  const empty = h('p', { class: 'empty muted' }, 'Nothing waits for approval.');
  const errors = h('div', {});
  const count = h('span', { class: 'count' });
  const el = h(
    'section',
    { class: 'approvals', 'aria-labelledby': 'approvals-h' },
    h('h2', { id: 'approvals-h' }, 'Pending approvals ', count),
    errors,
    empty,
    list,
  );
  const cards = new Map<string, Card>();

  function card(run: Run): Card {
    const summary = run.alert.annotations['summary'] ?? run.alert.annotations['description'] ?? '';
    const firing = h('p', { class: 'check' });
    const decision = decisionPanel(run.id);
    const el = h(
      'article',
      { class: 'card', 'data-run': run.id, 'aria-label': `${run.rule}: ${run.remediation}` },
      h(
        'header',
        {},
        h('h3', {}, h('a', { href: `#/runs/${run.id}` }, run.rule), ' → ', h('code', {}, run.remediation)),
        h('span', { class: 'countdown', 'data-expires': run.approval.expiresAt ?? '' }),
      ),
      run.reason ? h('p', { class: 'reason' }, 'Needs approval: ', run.reason) : null,
      h(
        'p',
        { class: 'alert-line' },
        h('strong', {}, run.alert.labels['alertname'] ?? 'alert'),
        summary ? ` — ${summary}` : '',
        ' ',
        h('span', { class: 'since muted', 'data-since': run.alert.startsAt }),
        ' ',
        safeLink(run.alert.generatorURL, 'source'),
      ),
      labelList(run.alert.labels),
      firing,
      run.target ? h('p', {}, 'Target: ', h('code', {}, run.target)) : null,
      h('h4', {}, 'Plan'),
      h('pre', { class: 'plan' }, run.plan ?? '(no plan)'),
      h('details', {}, h('summary', {}, 'Parameters'), json(run.params)),
      decision.el,
    );
    return { el, decision, firing };
  }

  async function refresh(): Promise<void> {
    const listed = await api.runs({ status: 'pending_approval', limit: '100' });
    const runs = (await Promise.all(listed.runs.map((r) => api.run(r.id).catch(() => undefined)))).filter((r): r is Run => !!r);
    const pending = runs.filter((r) => r.status === 'pending_approval');
    pending.sort((a, b) => Date.parse(a.approval.expiresAt ?? a.createdAt) - Date.parse(b.approval.expiresAt ?? b.createdAt));
    for (const run of pending) {
      let c = cards.get(run.id);
      if (!c) {
        c = card(run);
        cards.set(run.id, c);
      }
      fill(c.firing, firingCheck(run));
    }
    // Decided elsewhere, expired or cancelled since the last look: say so where the card was.
    const ids = new Set(pending.map((r) => r.id));
    for (const [id, c] of cards) {
      if (ids.has(id) || c.decision.settled) continue;
      const run = await api.run(id).catch(() => undefined);
      if (run && run.status !== 'pending_approval') c.decision.settle(run);
      if (!run) cards.delete(id);
    }
    // New cards go in expiry order before the settled ones; nothing that is there moves.
    let anchor: Element | null = list.firstElementChild;
    for (const run of pending) {
      const c = cards.get(run.id)!;
      if (c.el.parentElement !== list) list.insertBefore(c.el, anchor);
      anchor = c.el.nextElementSibling;
    }
    for (const [id, c] of cards) {
      if (ids.has(id) || c.el.querySelector('.dismiss')) continue;
      c.el.append(
        h(
          'button',
          {
            type: 'button',
            class: 'dismiss link',
            onclick: () => {
              c.el.remove();
              cards.delete(id);
            },
          },
          'Dismiss',
        ),
      );
    }
    fill(count, h('span', { class: 'n' }, String(pending.length)));
    empty.hidden = cards.size > 0;
    fill(errors);
    everySecond();
  }
  return { el, refresh };
}

// --- runs ----------------------------------------------------------------------------------------

function runsView(query: URLSearchParams): View {
  const filters = ['status', 'rule', 'remediation', 'alertname', 'since', 'until'] as const;
  const form = h('form', { class: 'filters', 'aria-label': 'Filter runs' });
  const inputs: Record<string, HTMLInputElement | HTMLSelectElement> = {};
  for (const f of filters) {
    const id = `f-${f}`;
    let input: HTMLInputElement | HTMLSelectElement;
    if (f === 'status') {
      input = h('select', { id, name: f }, h('option', { value: '' }, 'any'), ...STATUSES.map((s) => h('option', { value: s }, s)));
    } else {
      input = h('input', {
        id,
        name: f,
        type: 'text',
        placeholder: f === 'since' ? '1h, 2d or 2026-01-02T15:04:05Z' : f === 'until' ? 'time or duration ago' : '',
      });
    }
    input.value = query.get(f) ?? '';
    inputs[f] = input;
    form.append(h('div', { class: 'field' }, h('label', { for: id }, f === 'alertname' ? 'alert name' : f), input));
  }
  form.append(
    h('div', { class: 'field buttons' }, h('button', { type: 'submit', class: 'primary' }, 'Apply'), h('a', { href: '#/runs' }, 'Clear')),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const f of filters) if (inputs[f]!.value.trim()) q.set(f, inputs[f]!.value.trim());
    location.hash = `#/runs${q.size ? `?${q.toString()}` : ''}`;
  });

  const tbody = h('tbody', {});
  const table = h(
    'table',
    { class: 'runs' },
    h('caption', { class: 'visually-hidden' }, 'Runs, newest first'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['Created', 'Status', 'Rule', 'Remediation', 'Alert', 'Target'].map((t) =>
          h('th', { scope: 'col', class: `c-${t.toLowerCase()}` }, t),
        ),
      ),
    ),
    tbody,
  );
  const errors = h('div', {});
  const cursors: (string | null)[] = [null];
  const newer = h('button', { type: 'button' }, '← Newer');
  const older = h('button', { type: 'button' }, 'Older →');
  const page = h('span', { class: 'muted' });
  let next: string | null = null;
  newer.addEventListener('click', () => {
    if (cursors.length > 1) cursors.pop();
    void tick();
  });
  older.addEventListener('click', () => {
    if (next) cursors.push(next);
    void tick();
  });
  const el = h(
    'section',
    { class: 'runs-view', 'aria-labelledby': 'runs-h' },
    h('h2', { id: 'runs-h' }, 'Runs'),
    form,
    errors,
    h('div', { class: 'table-wrap' }, table),
    h('div', { class: 'pager' }, newer, page, older),
  );
  const rows = new Map<string, HTMLTableRowElement>();

  function row(run: ListedRun): HTMLTableRowElement {
    return h(
      'tr',
      { 'data-run': run.id, 'data-status': run.status },
      h('td', { class: 'c-created' }, h('a', { href: `#/runs/${run.id}` }, time(run.createdAt))),
      h('td', { class: 'c-status' }, badge(run.status), run.reason ? h('span', { class: 'muted' }, ` ${run.reason}`) : null),
      h('td', { class: 'c-rule' }, run.rule),
      h('td', { class: 'c-remediation' }, h('code', {}, run.remediation)),
      h('td', { class: 'c-alert' }, alertName(run)),
      h('td', { class: 'c-target' }, run.target ?? ''),
    );
  }

  async function refresh(): Promise<void> {
    const q: Record<string, string> = { limit: '25' };
    for (const f of filters) {
      const v = query.get(f);
      if (v) q[f] = v;
    }
    const cursor = cursors[cursors.length - 1];
    if (cursor) q['cursor'] = cursor;
    let list;
    try {
      list = await api.runs(q);
    } catch (err) {
      fill(errors, message(errorText(err)));
      return;
    }
    fill(errors);
    next = list.nextCursor;
    older.disabled = !next;
    newer.disabled = cursors.length <= 1;
    fill(page, `page ${cursors.length}`);
    // Rows are kept and updated in place, so focus and scroll stay where they were.
    const seen = new Set<string>();
    let at: Element | null = tbody.firstElementChild;
    for (const run of list.runs) {
      seen.add(run.id);
      const fresh = row(run);
      let tr = rows.get(run.id);
      if (!tr) {
        tr = fresh;
        rows.set(run.id, tr);
      } else if (tr.dataset['status'] !== run.status) {
        tr.dataset['status'] = run.status;
        tr.replaceChild(fresh.children[1]!, tr.children[1]!);
      }
      if (tr !== at) tbody.insertBefore(tr, at);
      at = tr.nextElementSibling;
    }
    for (const [id, tr] of rows) {
      if (!seen.has(id)) {
        tr.remove();
        rows.delete(id);
      }
    }
    if (!list.runs.length) fill(tbody, h('tr', {}, h('td', { colspan: '6', class: 'muted' }, 'No runs match.')));
    else for (const tr of tbody.querySelectorAll('tr:not([data-run])')) tr.remove();
  }
  return { el, refresh };
}

// --- one run -------------------------------------------------------------------------------------

function runView(id: string): View {
  const head = h('div', {});
  const decisionSlot = h('div', {});
  const body = h('div', {});
  const errors = h('div', {});
  const el = h(
    'section',
    { class: 'run-view', 'aria-labelledby': 'run-h' },
    h('p', {}, h('a', { href: '#/runs' }, '← Runs')),
    errors,
    head,
    decisionSlot,
    body,
  );
  let decision: Decision | undefined;
  const revertOut = h('div', {});
  const runLink = (rid: string | null | undefined) => (rid ? h('a', { href: `#/runs/${rid}` }, h('code', {}, rid)) : null);
  const dl = (...pairs: [string, Child][]) =>
    h(
      'dl',
      {},
      ...pairs.filter(([, v]) => v !== null && v !== undefined && v !== '').flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
    );

  async function refresh(): Promise<void> {
    let run: Run;
    try {
      run = await api.run(id);
    } catch (err) {
      fill(errors, message(err instanceof ApiError && err.status === 404 ? `No run ${id}.` : errorText(err)));
      return;
    }
    fill(errors);
    fill(
      head,
      h('h2', { id: 'run-h' }, run.rule, ' → ', h('code', {}, run.remediation), ' ', badge(run.status)),
      dl(
        ['Run', h('code', {}, run.id)],
        ['Reason', run.reason],
        ['Phase', run.phase],
        ['Action', run.action],
        ['Target', run.target ? h('code', {}, run.target) : null],
        ['Attempts', String(run.attempts)],
        ['Dry run', run.dryRun ? 'yes' : null],
        ['Created', time(run.createdAt)],
        ['Updated', time(run.updatedAt)],
        ['Approval', run.approval.required ? approvalText(run) : 'not required'],
      ),
    );
    if (run.status === 'pending_approval') {
      if (!decision || decision.settled) {
        decision = decisionPanel(run.id, () => void tick());
        fill(
          decisionSlot,
          h('h3', {}, 'Decision ', h('span', { class: 'countdown', 'data-expires': run.approval.expiresAt ?? '' })),
          decision.el,
        );
      }
    } else if (decision && !decision.settled) {
      decision.settle(run);
    }
    const a = run.alert;
    const canRevert = me?.can.decide && run.status === 'succeeded' && run.phase !== 'revert' && !run.revertedBy;
    const revertBtn = canRevert
      ? h(
          'button',
          {
            type: 'button',
            class: 'danger',
            'data-action': 'revert',
            onclick: (e: Event) => {
              (e.currentTarget as HTMLButtonElement).disabled = true;
              api
                .revert(run.id)
                .then((r) => (location.hash = `#/runs/${r.id}`))
                .catch((err: unknown) => fill(revertOut, message(`Could not revert: ${errorText(err)}`)));
            },
          },
          'Revert…',
        )
      : null;
    const g = run.gates;
    fill(
      body,
      h(
        'section',
        { 'aria-label': 'Alert' },
        h('h3', {}, 'Alert'),
        h(
          'p',
          { class: 'alert-line' },
          h('strong', {}, a.labels['alertname'] ?? 'alert'),
          ` ${a.status}`,
          a.annotations['summary'] ? ` — ${a.annotations['summary']}` : '',
          ' ',
          a.status === 'firing' ? h('span', { class: 'since muted', 'data-since': a.startsAt }) : null,
          ' ',
          safeLink(a.generatorURL, 'source'),
        ),
        h('p', { class: 'check' }, firingCheck(run)),
        labelList(a.labels),
        Object.keys(a.annotations).length ? h('details', {}, h('summary', {}, 'Annotations'), json(a.annotations)) : null,
        dl(['Fingerprint', h('code', {}, a.fingerprint)], ['Started', time(a.startsAt)]),
      ),
      h(
        'section',
        { 'aria-label': 'Plan and outcome' },
        h('h3', {}, 'Plan'),
        h('pre', { class: 'plan' }, run.plan ?? '(no plan)'),
        h('h4', {}, 'Parameters'),
        json(run.params),
      ),
      run.result ? h('section', {}, h('h3', {}, 'Result'), json(run.result)) : null,
      run.error ? h('section', {}, h('h3', {}, 'Error'), h('pre', { class: 'error' }, run.error)) : null,
      h(
        'section',
        { 'aria-label': 'Checks and verification' },
        h('h3', {}, 'Checks and verification'),
        dl(
          ['Re-check alert firing', g.alertFiring === false ? 'no' : 'yes'],
          ['On check error', g.onCheckError ?? null],
          ['Check query', g.checkQuery ? h('code', {}, g.checkQuery) : null],
          ['Verify query', g.verify ? h('code', {}, g.verify.query) : null],
          ['Verification', run.verification ? h('span', { class: `verif v-${run.verification}` }, run.verification) : null],
          ['Verify until', time(run.verifyUntil)],
          ['On unverified', g.onUnverified ?? null],
          ['Revert due', time(run.revertDue)],
        ),
      ),
      h(
        'section',
        { 'aria-label': 'Chain' },
        h('h3', {}, 'Chain'),
        dl(
          ['After', run.after ? h('span', {}, `${run.after.ref} (when ${run.after.when}) `, runLink(run.after.runId)) : null],
          ['Dependents', run.dependents?.length ? h('span', { class: 'ids' }, ...run.dependents.map((d) => runLink(d))) : null],
          ['Reverts', runLink(run.revertOf)],
          ['Reverted by', runLink(run.revertedBy)],
        ),
        revertBtn,
        revertOut,
      ),
      h(
        'section',
        { 'aria-label': 'Timeline' },
        h('h3', {}, 'Timeline'),
        h(
          'ol',
          { class: 'timeline' },
          ...(run.events ?? []).map((ev) =>
            h(
              'li',
              { 'data-event': ev.type },
              time(ev.at),
              ' ',
              h('strong', {}, ev.type),
              Object.keys(ev.detail).length ? json(ev.detail) : null,
            ),
          ),
        ),
      ),
    );
    everySecond();
  }
  return { el, refresh };
}

function approvalText(run: Run): Child {
  const a = run.approval;
  if (a.decidedBy) {
    return h(
      'span',
      {},
      `${run.status === 'rejected' ? 'rejected' : 'approved'} by ${a.decidedBy} at `,
      time(a.decidedAt),
      a.comment ? ` — “${a.comment}”` : '',
    );
  }
  return h('span', {}, 'required', a.expiresAt ? ', expires ' : '', time(a.expiresAt));
}

// --- boot ----------------------------------------------------------------------------------------

function boot(): void {
  root.append(
    h(
      'a',
      {
        class: 'skip',
        href: '#main',
        onclick: (e: Event) => {
          e.preventDefault();
          main.focus();
        },
      },
      'Skip to content',
    ),
    header,
    controlBar,
    main,
    status,
  );
  document.body.append(root);
  whenUnauthorized((note) => signOut(note));
  window.addEventListener('hashchange', route);
  window.setInterval(everySecond, 1000);
  const token = session.token;
  if (!token) return signInView();
  fill(main, message('Signing in…', 'info'));
  api
    .whoami(token)
    .then(start)
    .catch((err: unknown) => {
      if (err instanceof ApiError && err.status === 401) return;
      signInView(`Could not reach the service: ${errorText(err)}`);
    });
}

boot();
