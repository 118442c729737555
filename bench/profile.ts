/**
 * Summarizes a V8 CPU profile (the `.cpuprofile` the service child writes with BENCH_PROFILE=1): self
 * time per area (our source files, each dependency, Node internals, GC, idle) and per function.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  totalMs: number;
  busyMs: number;
  areas: Array<{ area: string; ms: number; pctBusy: number }>;
  functions: Array<{ fn: string; area: string; ms: number; pctBusy: number }>;
}

/** Where a frame's code lives: a dependency, a file of ours, Node itself, or a V8 pseudo-frame. */
export function areaOf(frame: CallFrame, root: string): string {
  const url = frame.url.replace(/^file:\/\//, '');
  if (!url) {
    if (frame.functionName.startsWith('(')) return frame.functionName;
    return '(native)';
  }
  if (url.startsWith('node:')) return 'node: internals';
  const dep = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dep) return dep[1]!;
  if (url.startsWith(root)) {
    const rel = url.slice(root.length).replace(/^\//, '');
    return rel;
  }
  return url;
}

export function summarizeProfile(profile: CpuProfile, root: string, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const areas = new Map<string, number>();
  const fns = new Map<string, { area: string; us: number }>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    total += us;
    const area = areaOf(node.callFrame, root);
    if (area === '(idle)') idle += us;
    areas.set(area, (areas.get(area) ?? 0) + us);
    // Line numbers of our TypeScript files are the transpiled code's (tsx), so only dependencies get one.
    const where = !node.callFrame.url
      ? ''
      : area.includes('/') && !area.startsWith('@')
        ? area
        : `${area}:${node.callFrame.lineNumber + 1}`;
    const name = `${node.callFrame.functionName || '(anonymous)'} ${where}`.trim();
    const entry = fns.get(name) ?? { area, us: 0 };
    entry.us += us;
    fns.set(name, entry);
  }
  const busy = total - idle;
  const pct = (us: number) => (busy > 0 ? (100 * us) / busy : 0);
  return {
    totalMs: total / 1000,
    busyMs: busy / 1000,
    areas: [...areas]
      .filter(([a]) => a !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([area, us]) => ({ area, ms: us / 1000, pctBusy: pct(us) })),
    functions: [...fns]
      .filter(([, e]) => e.area !== '(idle)')
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, top)
      .map(([fn, e]) => ({ fn, area: e.area, ms: e.us / 1000, pctBusy: pct(e.us) })),
  };
}

export function profileMarkdown(name: string, s: ProfileSummary): string {
  const lines = [
    `### ${name}`,
    '',
    `Sampled ${s.totalMs.toFixed(0)} ms, of which the main thread was busy ${s.busyMs.toFixed(0)} ms (${s.totalMs > 0 ? ((100 * s.busyMs) / s.totalMs).toFixed(0) : 0}%; the rest idle, waiting on I/O).`,
    '',
    '| area (self time) | ms | % of busy |',
    '|---|---:|---:|',
    ...s.areas.map((a) => `| ${a.area} | ${a.ms.toFixed(0)} | ${a.pctBusy.toFixed(1)} |`),
    '',
    '| function (self time) | ms | % of busy |',
    '|---|---:|---:|',
    ...s.functions.map((f) => `| \`${f.fn.replace(/\|/g, '\\|')}\` | ${f.ms.toFixed(0)} | ${f.pctBusy.toFixed(1)} |`),
    '',
  ];
  return lines.join('\n');
}
