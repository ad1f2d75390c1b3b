/**
 * A throw-away LAN made of Linux network namespaces, for tests of code that multicasts (mDNS).
 * Same model as the `netlab` shell tool, with no dependency on it:
 *
 *            namespace NAME-sw  (bridge br0: no STP delay, no multicast snooping, no IP, no IPv6)
 *         ┌──────────┬──────────┬──────────┐
 *         p1         p2         p3   ...     veth pairs, both ends inside the lab
 *         │          │          │
 *  NAME-h1:lan0  NAME-h2:lan0  NAME-h3:lan0  one namespace per host (+ lo)
 *  10.231.K.1    10.231.K.2    10.231.K.3    fd10:231:K::i/64, route 224.0.0.0/4 on lan0, NO default route
 *
 * Nothing is created in the calling (root) namespace and nothing there is linked to the lab, so no
 * packet of the lab can reach a real interface. `rootFingerprint()` lets a test check that.
 * Labs carry netlab's marker (alias of br0), so `netlab ls` / `netlab down NAME` see them too.
 *
 * Needs root and iproute2 (`ip`); `unshare` (util-linux) for per-host host names.
 */
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { createInterface } from 'node:readline';

export const LAB_NET4 = '10.231';
export const LAB_NET6 = 'fd10:231';
/** Every lab's IPv4 addresses are in here (for capture filters). */
export const LAB_SUPERNET = `${LAB_NET4}.0.0/16`;
const OWNER = 'pp-node-test';
const MAX_INDEX = 254;

// ------------------------------------------------------------------ environment checks

export interface LabSupport {
  ok: boolean;
  reason: string;
}

/** Can this process build labs? (root, `ip`, working `ip netns`.) */
export function labSupport(): LabSupport {
  if (process.platform !== 'linux') return { ok: false, reason: 'network namespaces need Linux' };
  if (process.getuid?.() !== 0)
    return { ok: false, reason: 'needs root (network namespaces need CAP_SYS_ADMIN/CAP_NET_ADMIN)' };
  const ip = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (ip.error || ip.status !== 0) return { ok: false, reason: "'ip' not found: install iproute2" };
  const ns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (ns.status !== 0) return { ok: false, reason: `'ip netns' does not work here: ${ns.stderr.trim()}` };
  return { ok: true, reason: '' };
}

/**
 * For `test(..., { skip })`: false when labs work. Without them, under CI=true this throws (LAN tests
 * must run in CI, never skip silently); elsewhere it returns the reason to skip.
 */
export function labSkip(extra: { what: string; ok: boolean; reason: string }[] = []): string | false {
  const problems = [labSupport(), ...extra].filter((s) => !s.ok).map((s) => s.reason);
  if (problems.length === 0) return false;
  const msg = `LAN tests need: ${problems.join('; ')}`;
  if (process.env.CI === 'true') throw new Error(`${msg} (CI=true: these tests must run, not skip)`);
  return msg;
}

function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryIp(args: string[]): boolean {
  return spawnSync('ip', args, { stdio: 'ignore' }).status === 0;
}

/** Runs `sh -c script` inside a namespace (for /proc/sys writes). */
function nsSh(ns: string, script: string): void {
  execFileSync('ip', ['netns', 'exec', ns, 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
}

export function allNamespaces(): string[] {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  return (r.stdout ?? '')
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter(Boolean);
}

/**
 * The calling namespace's interfaces, addresses and routes (like netlab's check). Compare a value
 * taken before a lab with one taken after: they must be equal.
 */
export function rootFingerprint(): string {
  const run = (args: string[]) => spawnSync('ip', args, { encoding: 'utf8' }).stdout ?? '';
  const links = run(['-o', 'link', 'show'])
    .split('\n')
    .map((l) => l.split(/\s+/)[1] ?? '')
    .filter(Boolean);
  const addrs = run(['-o', 'addr', 'show'])
    .split('\n')
    .map((l) => l.split(/\s+/).slice(1, 4).join(' '))
    .filter((l) => l.trim());
  const r4 = run(['-4', 'route', 'show', 'table', 'main']);
  const r6 = run(['-6', 'route', 'show', 'table', 'main']).replace(/ expires \d+sec/g, '');
  return [...links, ...addrs, r4, r6].join('\n');
}

/** Inode of this process's network namespace, e.g. `net:[4026531833]`. */
export function ownNetns(): string {
  return readlinkSync('/proc/self/ns/net');
}

// ------------------------------------------------------------------ labs

interface Marker {
  lab: string;
  idx: number;
  hosts: number;
  owner?: string;
  pid?: number;
}

function readMarker(lab: string): Marker | null {
  const r = spawnSync('ip', ['-n', `${lab}-sw`, '-o', 'link', 'show', 'dev', 'br0'], { encoding: 'utf8' });
  const m = /alias (netlab lab=.*)$/.exec((r.stdout ?? '').trim());
  if (!m) return null;
  const f = (k: string) => new RegExp(` ${k}=([^ ]*)`).exec(` ${m[1]} `)?.[1];
  const idx = Number(f('idx'));
  const hosts = Number(f('hosts'));
  if (f('lab') !== lab || !Number.isInteger(idx) || !Number.isInteger(hosts)) return null;
  const pid = f('pid');
  return { lab, idx, hosts, owner: f('owner'), pid: pid === undefined ? undefined : Number(pid) };
}

function existingLabs(): Marker[] {
  return allNamespaces()
    .filter((ns) => ns.endsWith('-sw'))
    .map((ns) => readMarker(ns.slice(0, -3)))
    .filter((m): m is Marker => m !== null);
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function labNamespaces(lab: string): string[] {
  const re = new RegExp(`^${lab}-(sw|h\\d+)$`);
  return allNamespaces().filter((n) => re.test(n));
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Kills every process in the namespaces (TERM, then KILL after `graceMs`) and deletes them. */
function teardownSync(namespaces: string[], graceMs = 1500): void {
  const pids = new Set<number>();
  for (const ns of namespaces) {
    const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
    for (const p of (r.stdout ?? '').split(/\s+/).filter(Boolean)) {
      const pid = Number(p);
      if (pid && pid !== process.pid) pids.add(pid);
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
  }
  const deadline = Date.now() + graceMs;
  while ([...pids].some(pidAlive) && Date.now() < deadline) sleepSync(50);
  for (const pid of pids) {
    try {
      if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
    } catch {}
  }
  // hosts first, the switch last
  const order = [
    ...namespaces.filter((n) => !n.endsWith('-sw')),
    ...namespaces.filter((n) => n.endsWith('-sw')),
  ];
  for (const ns of order) tryIp(['netns', 'del', ns]);
}

/** Labs of this process that are still up, torn down on exit as a last resort. */
const liveLabs = new Set<Lab>();
let exitHooks = false;

function installExitHooks(): void {
  if (exitHooks) return;
  exitHooks = true;
  const destroyAll = () => {
    for (const lab of liveLabs) {
      try {
        lab.destroySync();
      } catch (e) {
        process.stderr.write(`${(e as Error).message}\n`);
      }
    }
  };
  process.on('exit', destroyAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      destroyAll();
      process.exit(128 + ({ SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const)[sig]);
    });
  }
}

/** Removes labs left behind by test processes that died (their pid is gone). */
export function sweepStaleLabs(): string[] {
  const removed: string[] = [];
  for (const m of existingLabs()) {
    if (m.owner === OWNER && m.pid !== undefined && !pidAlive(m.pid)) {
      teardownSync(labNamespaces(m.lab), 500);
      removed.push(m.lab);
    }
  }
  return removed;
}

export interface SpawnOptions {
  /** Host name seen inside (private UTS namespace); default: the machine's. */
  hostname?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export class Lab {
  readonly name: string;
  readonly index: number;
  readonly hosts: number;
  readonly processes: LabProcess[] = [];
  #destroyed = false;

  private constructor(name: string, index: number, hosts: number) {
    this.name = name;
    this.index = index;
    this.hosts = hosts;
  }

  /** Creates a lab with hosts 1..n. Name: `prefix` + pid + random, unique per run. */
  static create(n: number, prefix = 'ppt'): Lab {
    if (!Number.isInteger(n) || n < 1 || n > 250) throw new RangeError('hosts: 1..250');
    sweepStaleLabs();
    const name = `${prefix}${process.pid.toString(36)}${Math.random().toString(36).slice(2, 6)}`.slice(0, 20);
    const used = new Set(existingLabs().map((m) => m.idx));
    const free = Array.from({ length: MAX_INDEX }, (_, i) => i + 1).filter((i) => !used.has(i));
    if (free.length === 0) throw new Error('all lab subnets are in use');
    const index = free[Math.floor(Math.random() * free.length)]!;
    const lab = new Lab(name, index, n);
    installExitHooks();
    liveLabs.add(lab);
    try {
      lab.#build();
    } catch (e) {
      lab.destroySync();
      throw e;
    }
    return lab;
  }

  ns(i: number | 'sw'): string {
    if (i === 'sw') return `${this.name}-sw`;
    if (!Number.isInteger(i) || i < 1 || i > this.hosts)
      throw new RangeError(`host ${i} is not in lab ${this.name}`);
    return `${this.name}-h${i}`;
  }

  /** IPv4 (default), ULA IPv6 or link-local IPv6 address of host i. */
  addr(i: number, kind: '4' | '6' | 'll' = '4'): string {
    this.ns(i);
    if (kind === '4') return `${LAB_NET4}.${this.index}.${i}`;
    if (kind === '6') return `${LAB_NET6}:${this.index}::${i}`;
    const out = ip(['-n', this.ns(i), '-6', '-o', 'addr', 'show', 'dev', 'lan0', 'scope', 'link']);
    return /inet6 (\S+)\//.exec(out)?.[1] ?? '';
  }

  get subnet(): string {
    return `${LAB_NET4}.${this.index}.0/24`;
  }

  #build(): void {
    const sw = this.ns('sw');
    const mark = `netlab lab=${this.name} idx=${this.index} hosts=${this.hosts} owner=${OWNER} pid=${process.pid}`;
    ip(['netns', 'add', sw]);
    ip(['-n', sw, 'link', 'set', 'lo', 'up']);
    nsSh(
      sw,
      'for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6; do [ -w "$f" ] && echo 1 > "$f"; done; true',
    );
    ip([
      '-n',
      sw,
      'link',
      'add',
      'br0',
      'type',
      'bridge',
      'stp_state',
      '0',
      'forward_delay',
      '0',
      'mcast_snooping',
      '0',
    ]);
    ip(['-n', sw, 'link', 'set', 'br0', 'alias', mark, 'up']);
    for (let i = 1; i <= this.hosts; i++) {
      const h = this.ns(i);
      const mac = `02:4e:4c:${hex(this.index)}:00:${hex(i)}`;
      ip(['netns', 'add', h]);
      ip(['-n', h, 'link', 'set', 'lo', 'up']);
      // the veth is created in the switch namespace with its peer directly in the host namespace
      ip(['-n', sw, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'lan0', 'netns', h]);
      ip(['-n', sw, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      ip([
        '-n',
        h,
        'link',
        'set',
        'lan0',
        'address',
        mac,
        'alias',
        `netlab lab=${this.name} host=${i}`,
        'multicast',
        'on',
      ]);
      // IPv6 usable at once: no duplicate address detection, no router solicitations
      nsSh(
        h,
        'd=/proc/sys/net/ipv6/conf/lan0; [ -d "$d" ] || exit 0; echo 0 > $d/accept_dad; echo 0 > $d/router_solicitations; echo 0 > $d/accept_ra',
      );
      ip(['-n', h, 'addr', 'add', `${this.addr(i)}/24`, 'brd', '+', 'dev', 'lan0']);
      if (
        tryIp(['-n', h, '-6', 'addr', 'add', `${this.addr(i, '6')}/64`, 'dev', 'lan0', 'nodad']) === false
      ) {
        // kernel without IPv6: IPv4 only
      }
      ip(['-n', h, 'link', 'set', 'lan0', 'up']);
      ip(['-n', h, 'route', 'add', '224.0.0.0/4', 'dev', 'lan0']);
    }
    // wait for carrier and forwarding bridge ports
    const deadline = Date.now() + 5000;
    for (;;) {
      let ready = true;
      for (let i = 1; i <= this.hosts && ready; i++) {
        ready = /LOWER_UP/.test(ip(['-n', this.ns(i), '-o', 'link', 'show', 'dev', 'lan0']));
      }
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`lab ${this.name}: links did not come up within 5 s`);
      sleepSync(50);
    }
    this.verify();
  }

  /** Throws if the wiring is not the closed model (each host: lo + lan0, no default route). */
  verify(): void {
    for (let i = 1; i <= this.hosts; i++) {
      const h = this.ns(i);
      const links = ip(['-n', h, '-o', 'link', 'show'])
        .split('\n')
        .map((l) => (l.split(/\s+/)[1] ?? '').replace(/[:@].*$/, ''))
        .filter(Boolean)
        .sort();
      if (links.join(',') !== 'lan0,lo')
        throw new Error(`${h}: interfaces are ${links.join(',')}, expected lan0,lo`);
      const def =
        ip(['-n', h, 'route', 'show', 'default']).trim() +
        ip(['-n', h, '-6', 'route', 'show', 'default']).trim();
      if (def) throw new Error(`${h}: has a default route: ${def}`);
      if (!ip(['-n', h, '-o', 'link', 'show', 'dev', 'lan0']).includes(`link-netns ${this.ns('sw')}`)) {
        throw new Error(`${h}: lan0 is not peered with ${this.ns('sw')}`);
      }
    }
  }

  /** Runs a command in host i and waits for it. */
  exec(
    i: number,
    cmd: string,
    args: string[] = [],
    opts: SpawnOptions = {},
  ): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', this.ns(i), cmd, ...args], {
      encoding: 'utf8',
      env: this.#env(i, opts.env),
      cwd: opts.cwd,
    });
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /**
   * Starts a command in host i (`ip netns exec` execs it: the child's pid is the command's own).
   * Its stdout is read as JSON lines (see LabProcess).
   */
  spawn(i: number, cmd: string, args: string[] = [], opts: SpawnOptions = {}): LabProcess {
    const ns = this.ns(i);
    const argv = opts.hostname
      ? [
          'netns',
          'exec',
          ns,
          'unshare',
          '--uts',
          'sh',
          '-c',
          'echo "$0" > /proc/sys/kernel/hostname && exec "$@"',
          opts.hostname,
          cmd,
          ...args,
        ]
      : ['netns', 'exec', ns, cmd, ...args];
    const child = spawn('ip', argv, {
      env: this.#env(i, opts.env),
      cwd: opts.cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const shown = [cmd, ...args].map((a) => (a.length > 40 ? `${a.slice(0, 37)}...` : a)).join(' ');
    const p = new LabProcess(`h${i}: ${shown}`, child);
    this.processes.push(p);
    return p;
  }

  #env(i: number, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    return {
      ...process.env,
      PP_LAB: this.name,
      PP_LAB_HOST: String(i),
      PP_LAB_ADDR: this.addr(i),
      PP_LAB_ROOT_NETNS: ownNetns(),
      ...extra,
    };
  }

  /** Disconnects host i: its switch port goes down (host sees NO-CARRIER), or, silent, frames are dropped. */
  cut(i: number, opts: { silent?: boolean } = {}): void {
    if (opts.silent)
      ip(['netns', 'exec', this.ns('sw'), 'bridge', 'link', 'set', 'dev', `p${i}`, 'state', '0']);
    else ip(['-n', this.ns('sw'), 'link', 'set', `p${i}`, 'down']);
  }

  heal(i: number): void {
    const sw = this.ns('sw');
    ip(['-n', sw, 'link', 'set', `p${i}`, 'up']);
    tryIp(['netns', 'exec', sw, 'bridge', 'link', 'set', 'dev', `p${i}`, 'state', '3']);
    const deadline = Date.now() + 3000;
    while (!/LOWER_UP/.test(ip(['-n', this.ns(i), '-o', 'link', 'show', 'dev', 'lan0']))) {
      if (Date.now() > deadline) throw new Error(`heal ${i}: no carrier after 3 s`);
      sleepSync(20);
    }
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** Ends every process in the lab and deletes its namespaces. Idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    // give our own children a chance to exit cleanly first
    const running = this.processes.filter((p) => p.running);
    for (const p of running) p.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise((r) => (timer = setTimeout(r, 1500)));
    await Promise.race([Promise.all(running.map((p) => p.exited)), grace]);
    clearTimeout(timer); // else it holds the test file open 1.5 s after its end
    this.destroySync();
  }

  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    liveLabs.delete(this);
    for (const p of this.processes) if (p.running) p.kill('SIGKILL');
    teardownSync(labNamespaces(this.name));
    const left = labNamespaces(this.name);
    if (left.length) throw new Error(`lab ${this.name}: could not delete ${left.join(', ')}`);
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(2, '0');
}

// ------------------------------------------------------------------ processes

export type LabEvent = { ev: string; t?: number; [k: string]: unknown };

/** A process in a lab host whose stdout is JSON lines (events). */
export class LabProcess {
  readonly label: string;
  readonly child: ChildProcess;
  readonly events: LabEvent[] = [];
  /** stdout lines that were not JSON, and all of stderr. */
  readonly output: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly #waiters = new Set<() => void>();

  constructor(label: string, child: ChildProcess) {
    this.label = label;
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let ev: unknown;
      try {
        ev = JSON.parse(line);
      } catch {
        this.output.push(line);
        return;
      }
      if (ev && typeof ev === 'object' && typeof (ev as LabEvent).ev === 'string')
        this.events.push(ev as LabEvent);
      else this.output.push(line);
      for (const w of [...this.#waiters]) w();
    });
    createInterface({ input: child.stderr! }).on('line', (line) => this.output.push(`stderr: ${line}`));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        for (const w of [...this.#waiters]) w();
        resolve(this.exit);
      });
      child.on('error', (err) => {
        this.output.push(`spawn error: ${err.message}`);
        this.exit = { code: -1, signal: null };
        for (const w of [...this.#waiters]) w();
        resolve(this.exit);
      });
    });
  }

  get running(): boolean {
    return this.exit === undefined;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.child.kill(signal);
  }

  /**
   * The first event at index >= `since` that matches (one already received, or the next to come).
   * Rejects after `ms`, or if the process exits first, with its output for diagnosis.
   */
  waitFor(
    match: (ev: LabEvent) => boolean,
    opts: { ms?: number; since?: number; what?: string } = {},
  ): Promise<LabEvent> {
    const { ms = 5000, since = 0, what = 'event' } = opts;
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = () => {
        const ev = this.events.slice(since).find(match);
        if (ev) return finish(() => resolve(ev));
        if (!this.running) {
          return finish(() =>
            reject(
              new Error(
                `${this.label}: exited (${JSON.stringify(this.exit)}) before ${what}\n${this.dump()}`,
              ),
            ),
          );
        }
      };
      const finish = (f: () => void) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        f();
      };
      timer = setTimeout(
        () => finish(() => reject(new Error(`${this.label}: no ${what} within ${ms} ms\n${this.dump()}`))),
        ms,
      );
      this.#waiters.add(check);
      check();
    });
  }

  /** Waits for the process to exit (SIGKILL after `ms`). */
  async stop(
    signal: NodeJS.Signals = 'SIGTERM',
    ms = 3000,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<void>((r) => (timer = setTimeout(r, ms)));
    await Promise.race([this.exited, t]);
    clearTimeout(timer);
    if (this.running) {
      this.kill('SIGKILL');
      await this.exited;
    }
    return this.exit!;
  }

  dump(): string {
    const evs = this.events.slice(-30).map((e) => `  ${JSON.stringify(e)}`);
    const out = this.output.slice(-30).map((l) => `  ${l}`);
    return [`--- ${this.label}: events`, ...evs, `--- ${this.label}: other output`, ...out].join('\n');
  }
}

/** One JSON log line of a pp-node (`--log-format json`). */
export type Log = Record<string, unknown>;

/** A lab process's JSON log lines (pp-node logs to stderr, which LabProcess keeps as 'stderr: ...'). */
export function logsOf(p: LabProcess): Log[] {
  const out: Log[] = [];
  for (const line of p.output) {
    if (!line.startsWith('stderr: {')) continue;
    try {
      out.push(JSON.parse(line.slice('stderr: '.length)) as Log);
    } catch {}
  }
  return out;
}
