/**
 * A private Docker engine for the packaging test, and a stand-in for `node:20-slim` built on this
 * machine (Docker Hub is not reachable from CI).
 *
 * The engine is Debian's dockerd with its own data-root, exec-root, pidfile and socket, started with
 * `--bridge=none --iptables=false --ip6tables=false`: it changes nothing of the machine's networking,
 * and its containers run with `--network host` or `--network none` only. Its data-root lives in the
 * cache directory so that built layers survive between runs; everything else is removed by `stop()`.
 *
 * The base image is a `debootstrap --variant=minbase` root filesystem (from the Debian mirror of this
 * machine's apt sources, read at run time), with this machine's node and npm in /usr/local and a
 * `node` user of uid/gid 1000, like the official image. The machine's npm registry (and its CA file,
 * when npm is configured with one) goes into the image's environment so that `npm ci` in the build
 * reaches the registry this machine uses; none of it is written into the repository.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import {
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  appendFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';

export const CACHE_DIR = process.env['CONDUIT_TEST_CACHE'] ?? '/var/cache/conduit-remediator-test';

const DOCKERD = ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find((p) => existsSync(p));
/** The client shipped with the daemon (same API version) when there is one. */
const DOCKER_CLI = ['/usr/bin/docker', '/usr/local/bin/docker'].find((p) => existsSync(p));
const DEBOOTSTRAP = ['/usr/sbin/debootstrap', '/usr/bin/debootstrap'].find((p) => existsSync(p));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command, bounded in time; never rejects (the caller reads `code`). */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; input?: string } = { timeoutMs: 60_000 },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, env: opts.env ?? process.env },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + (err && code === null ? `\n${err.message}` : '') });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Why the packaging test cannot run here, or undefined when it can try. */
export function dockerUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: a private dockerd cannot be started';
  if (!DOCKERD) return 'dockerd is not installed (apt-get install docker.io)';
  if (!DOCKER_CLI) return 'the docker client is not installed (apt-get install docker.io)';
  if (!DEBOOTSTRAP) return 'debootstrap is not installed: the base image cannot be built';
  return undefined;
}

export interface Docker {
  host: string;
  /** `docker ...` against this engine. */
  docker(args: string[], timeoutMs: number, input?: string): Promise<RunResult>;
  /** Stops the engine (and its containers) and removes its exec-root, pidfile and socket. */
  stop(): Promise<void>;
  log(): string;
}

/** Starts a private dockerd; a string says why it did not come up (the test skips). */
export async function startDocker(timeoutMs = 60_000): Promise<Docker | string> {
  const reason = dockerUnavailable();
  if (reason) return reason;
  mkdirSync(CACHE_DIR, { recursive: true });
  const dataRoot = join(CACHE_DIR, 'docker-data');
  mkdirSync(dataRoot, { recursive: true });
  // A short path: containerd's sockets live under the exec-root and unix socket paths are bounded.
  const runDir = mkdtempSync('/tmp/crd-');
  const sock = join(runDir, 'docker.sock');
  const host = `unix://${sock}`;
  let out = '';
  const child: ChildProcess = spawn(
    DOCKERD!,
    [
      '--bridge=none',
      '--iptables=false',
      '--ip6tables=false',
      '--data-root',
      dataRoot,
      '--exec-root',
      join(runDir, 'exec'),
      '--pidfile',
      join(runDir, 'docker.pid'),
      '-H',
      host,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], detached: false },
  );
  child.stdout!.on('data', (d) => (out = (out + d).slice(-200_000)));
  child.stderr!.on('data', (d) => (out = (out + d).slice(-200_000)));
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: host, DOCKER_BUILDKIT: '0', DOCKER_CLI_HINTS: 'false' };
  delete env['DOCKER_CONTEXT'];
  const docker = (args: string[], ms: number, input?: string) =>
    run(DOCKER_CLI!, args, { timeoutMs: ms, env, ...(input !== undefined ? { input } : {}) });
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(timer);
      }
      // dockerd leaves its host network namespace (exec-root/netns/default) bind-mounted, and a
      // daemon that was killed may leave layer mounts: unmounted before anything is removed.
      for (const dir of [runDir, dataRoot]) await unmountUnder(dir);
      rmSync(runDir, { recursive: true, force: true });
    })());
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    const v = await docker(['version', '--format', '{{.Server.Version}}'], 5_000);
    if (v.code === 0) return { host, docker, stop, log: () => out };
    await new Promise((r) => setTimeout(r, 500));
  }
  await stop();
  return `dockerd did not come up within ${timeoutMs / 1000}s: ${out.trim().split('\n').slice(-5).join(' | ')}`;
}

async function unmountUnder(dir: string): Promise<void> {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(`${dir}/`)))
    .reverse();
  for (const m of mounts) {
    const r = await run('umount', [m], { timeoutMs: 10_000 });
    if (r.code !== 0) await run('umount', ['-l', m], { timeoutMs: 10_000 });
  }
}

/** The Debian mirror and suite of this machine's apt sources (deb822 .sources or sources.list). */
export function debianMirror(): { mirror: string; suite: string } {
  const os = readFileSync('/etc/os-release', 'utf8');
  const suite = /^VERSION_CODENAME=(.+)$/m.exec(os)?.[1]?.replace(/"/g, '').trim() ?? 'bookworm';
  const candidates: string[] = [];
  const listFiles = ['/etc/apt/sources.list'];
  const dir = '/etc/apt/sources.list.d';
  if (existsSync(dir)) for (const f of readdirSync(dir).sort()) listFiles.push(join(dir, f));
  for (const file of listFiles) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const uris = /^URIs:\s*(.+)$/im.exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
        const suites = /^Suites:\s*(.+)$/im.exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
        if (/^Types:.*\bdeb\b/im.test(stanza) && suites.includes(suite)) candidates.push(...uris);
      }
    } else if (file.endsWith('.list')) {
      for (const line of text.split('\n')) {
        const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line.trim());
        if (m && m[2] === suite) candidates.push(m[1]!);
      }
    }
  }
  const mirror = candidates.find((u) => !/security/.test(u)) ?? candidates[0];
  if (!mirror) throw new Error(`no Debian mirror for ${suite} in the apt sources`);
  return { mirror, suite };
}

function npmSetting(key: string): string | undefined {
  const r = spawnSync('npm', ['config', 'get', key], { encoding: 'utf8', timeout: 30_000 });
  const v = r.status === 0 ? r.stdout.trim() : '';
  return v && v !== 'null' && v !== 'undefined' ? v : undefined;
}

/** The npm registry (and CA file) of this machine: handed to the build through the base image's environment. */
export function npmSettings(): { registry: string; cafile?: string } {
  const registry = npmSetting('registry') ?? 'https://registry.npmjs.org/';
  const cafile = npmSetting('cafile');
  return cafile && existsSync(cafile) ? { registry, cafile } : { registry };
}

/**
 * The stand-in base image's tag, built (and cached: a minbase tarball in CACHE_DIR, the image in the
 * cached data-root) when missing. Bounded by `timeoutMs` overall.
 */
export async function ensureBaseImage(d: Docker, timeoutMs = 15 * 60_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1_000, deadline - Date.now());
  const npm = npmSettings();
  const npmRoot = realpathSync(
    join(dirname(realpathSync(spawnSync('sh', ['-c', 'command -v npm'], { encoding: 'utf8' }).stdout.trim())), '..'),
  );
  const nodeVersion = process.version.slice(1);
  const key = createHash('sha256')
    .update(JSON.stringify({ node: nodeVersion, npm: npmRoot, ...npm }))
    .digest('hex')
    .slice(0, 12);
  const tag = `conduit-remediator-test/node:${nodeVersion}-${key}`;
  if ((await d.docker(['image', 'inspect', tag], 30_000)).code === 0) return tag;

  const { mirror, suite } = debianMirror();
  const tarball = join(CACHE_DIR, `debootstrap-${suite}-minbase-${process.arch}.tar`);
  if (!existsSync(tarball)) {
    const target = mkdtempSync(join(CACHE_DIR, 'debootstrap-'));
    try {
      const r = await run(DEBOOTSTRAP!, ['--variant=minbase', suite, target, mirror], { timeoutMs: left() });
      if (r.code !== 0) throw new Error(`debootstrap ${suite} ${mirror} failed (${r.code}): ${(r.stdout + r.stderr).slice(-3000)}`);
      const t = await run('tar', ['-C', target, '--numeric-owner', '-cf', `${tarball}.partial`, '.'], { timeoutMs: left() });
      if (t.code !== 0) throw new Error(`tar of the minbase root failed: ${t.stderr}`);
      renameSync(`${tarball}.partial`, tarball);
    } finally {
      rmSync(target, { recursive: true, force: true });
      rmSync(`${tarball}.partial`, { force: true });
    }
  }

  const rootfs = mkdtempSync(join(CACHE_DIR, 'rootfs-'));
  try {
    const x = await run('tar', ['-C', rootfs, '--numeric-owner', '-xf', tarball], { timeoutMs: left() });
    if (x.code !== 0) throw new Error(`extracting ${tarball} failed: ${x.stderr}`);
    // This machine's node and npm, where the official image has them.
    mkdirSync(join(rootfs, 'usr/local/bin'), { recursive: true });
    mkdirSync(join(rootfs, 'usr/local/lib/node_modules'), { recursive: true });
    cpSync(process.execPath, join(rootfs, 'usr/local/bin/node'));
    cpSync(npmRoot, join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true, dereference: true });
    symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(rootfs, 'usr/local/bin/npm'));
    symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(rootfs, 'usr/local/bin/npx'));
    // The `node` user and group, uid/gid 1000, home /home/node.
    appendFileSync(join(rootfs, 'etc/passwd'), 'node:x:1000:1000::/home/node:/bin/bash\n');
    appendFileSync(join(rootfs, 'etc/group'), 'node:x:1000:\n');
    if (existsSync(join(rootfs, 'etc/shadow'))) appendFileSync(join(rootfs, 'etc/shadow'), 'node:*:20000:0:99999:7:::\n');
    mkdirSync(join(rootfs, 'home/node'), { recursive: true });
    chownSync(join(rootfs, 'home/node'), 1000, 1000);
    const changes = [
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      `ENV npm_config_registry=${npm.registry}`,
      'CMD ["node"]',
    ];
    if (npm.cafile) {
      const dest = join(rootfs, 'usr/local/share/conduit-remediator-test/npm-ca.crt');
      mkdirSync(dirname(dest), { recursive: true });
      cpSync(npm.cafile, dest);
      changes.push('ENV npm_config_cafile=/usr/local/share/conduit-remediator-test/npm-ca.crt');
    }
    writeFileSync(join(rootfs, 'etc/conduit-remediator-test-base'), `${tag}\n`);
    const archive = join(CACHE_DIR, `rootfs-${key}.tar`);
    try {
      const t = await run('tar', ['-C', rootfs, '--numeric-owner', '-cf', archive, '.'], { timeoutMs: left() });
      if (t.code !== 0) throw new Error(`tar of the base root failed: ${t.stderr}`);
      const imp = await d.docker(['import', ...changes.flatMap((c) => ['--change', c]), archive, tag], left());
      if (imp.code !== 0) throw new Error(`docker import failed: ${imp.stderr}`);
    } finally {
      rmSync(archive, { force: true });
    }
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
  return tag;
}
