/**
 * `pp-node doctor`: for "discovery finds nothing" and "it is slow". Runs the checks below, prints a
 * verdict and what to do for each, and exits 0 when all is well, 1 otherwise (`--json`: the same
 * as one JSON document).
 *
 *   secret      this machine's secret: where from, the file's mode (src/secret.ts refuses unsafe ones)
 *   interfaces  the network interfaces, and the one mDNS would use (the route to 224.0.0.251)
 *   mdns        whether an mDNS query gets any answer within --timeout seconds
 *   nodes       the nodes found (mDNS and --nodes); per node: its port reachable, the secret
 *               accepted, its status (clock skew)
 *   versions    version skew between the nodes and this machine
 *   clocks      clock skew between this machine and each node (from its status)
 *   /dev/shm    its size and free space (large arguments go through it)
 */
import { spawnSync } from 'node:child_process';
import { statfsSync, statSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { resolveInterface } from '../discovery/addresses.ts';
import { printable } from '../log.ts';
import { discoveryHint } from '../platform.ts';
import { resolveSecret } from '../secret.ts';
import { secretWeakness } from '../secret-strength.ts';
import { VERSION } from '../version.ts';
import type { DoctorConfig } from './args.ts';
import { formatBytes } from './top.ts';
import { ClusterWatch, type WatchedNode } from './watch.ts';

export type Verdict = 'ok' | 'info' | 'warn' | 'fail';

export interface Check {
  check: string;
  verdict: Verdict;
  /** What was found. */
  detail: string;
  /** What to do about it (warn / fail). */
  fix?: string;
}

/** Clocks further apart than this matter: logs of two machines no longer line up. */
export const CLOCK_SKEW_LIMIT_MS = 1000;
/** Below this much free /dev/shm, pp-node does without it (README: Troubleshooting). */
const SHM_MIN_FREE = 64 * 1024 * 1024;

export async function doctor(cfg: DoctorConfig): Promise<number> {
  const checks: Check[] = [];
  const secret = checkSecret(cfg, checks);
  if (cfg.mdns) checkInterfaces(cfg, checks);
  const watch = new ClusterWatch(cfg, secret, { statusTimeoutMs: 3000 });
  await watch.start();
  try {
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    if (cfg.mdns) await sleep(cfg.timeoutS * 1000);
    const deadline = Date.now() + 10_000;
    while (!watch.settled && Date.now() < deadline) await sleep(50);
    if (cfg.mdns) checkMdns(cfg, watch.responders, checks);
    checkNodes(cfg, watch.nodes, secret !== null, checks);
  } finally {
    await watch.stop();
  }
  checkShm(checks);
  const problems = checks.filter((c) => c.verdict === 'warn' || c.verdict === 'fail');
  if (cfg.json) {
    process.stdout.write(
      `${JSON.stringify({ version: VERSION, ok: problems.length === 0, checks }, null, 2)}\n`,
    );
  } else {
    process.stdout.write(formatChecks(checks));
  }
  return problems.length === 0 ? 0 : 1;
}

/** The text report: a line per check, what to do under each problem, a summary. */
export function formatChecks(checks: readonly Check[]): string {
  const w = Math.max(...checks.map((c) => c.check.length));
  const lines = [`pp-node doctor ${VERSION}`];
  for (const c of checks) {
    const mark = { ok: 'ok  ', info: 'info', warn: 'WARN', fail: 'FAIL' }[c.verdict];
    lines.push(`${mark}  ${c.check.padEnd(w)}  ${printable(c.detail)}`);
    if (c.fix && (c.verdict === 'warn' || c.verdict === 'fail'))
      lines.push(`${' '.repeat(6 + w + 2)}-> ${printable(c.fix)}`);
  }
  const problems = checks.filter((c) => c.verdict === 'warn' || c.verdict === 'fail');
  lines.push(
    problems.length === 0
      ? 'all is well'
      : `${problems.length} problem${problems.length === 1 ? '' : 's'}: ${problems.map((c) => c.check).join(', ')}`,
  );
  return `${lines.join('\n')}\n`;
}

function checkSecret(cfg: DoctorConfig, checks: Check[]): Uint8Array | null {
  try {
    const r = resolveSecret({ secretFile: cfg.secretFile, create: false });
    let detail = `from ${r.source}`;
    if (r.source !== 'PP_SECRET' && r.source !== 'option') {
      const mode = statSync(r.source).mode & 0o777;
      detail += ` (mode ${mode.toString(8).padStart(4, '0')}, ${r.secret.length} bytes)`;
    } else {
      detail += ` (${r.secret.length} bytes)`;
    }
    const weak = secretWeakness(r.secret);
    checks.push(
      weak
        ? {
            check: 'secret',
            verdict: cfg.allowWeakSecret ? 'warn' : 'fail',
            detail: `${detail}: weak, ${weak}`,
            fix: '`npx pp-node secret` prints a strong one (256 random bits); put it on every machine',
          }
        : { check: 'secret', verdict: 'ok', detail },
    );
    return r.secret;
  } catch (error) {
    checks.push({
      check: 'secret',
      verdict: 'fail',
      detail: (error as Error).message,
      fix: 'without a secret nothing can be checked beyond discovery; the message above says how to fix it',
    });
    return null;
  }
}

function checkInterfaces(cfg: DoctorConfig, checks: Check[]): void {
  const ifaces = networkInterfaces();
  const usable = Object.entries(ifaces)
    .filter(([, list]) => list?.some((i) => !i.internal && i.family === 'IPv4'))
    .map(
      ([name, list]) =>
        `${name} ${list!
          .filter((i) => !i.internal)
          .map((i) => i.address)
          .join(' ')}`,
    );
  if (usable.length === 0) {
    checks.push({
      check: 'interfaces',
      verdict: 'fail',
      detail: 'no network interface is up with an IPv4 address',
      fix: 'connect this machine to the network (mDNS runs over IPv4)',
    });
    return;
  }
  checks.push({ check: 'interfaces', verdict: 'info', detail: usable.join('; ') });
  if (cfg.interface !== undefined) {
    const r = resolveInterface(cfg.interface);
    if (r instanceof Error) {
      checks.push({
        check: 'mDNS interface',
        verdict: 'fail',
        detail: r.message,
        fix: 'pass one of the interfaces above (name or address) to --interface',
      });
    } else {
      checks.push({ check: 'mDNS interface', verdict: 'ok', detail: `${r.name} ${r.ipv4} (--interface)` });
    }
    return;
  }
  if (process.platform !== 'linux') {
    checks.push({
      check: 'mDNS interface',
      verdict: 'info',
      detail: "the system's default multicast interface (pick one with --interface if it is the wrong one)",
    });
    return;
  }
  const r = spawnSync('ip', ['-o', 'route', 'get', '224.0.0.251'], { encoding: 'utf8' });
  const dev = / dev (\S+)/.exec(r.stdout ?? '')?.[1];
  if (r.error) {
    checks.push({
      check: 'mDNS interface',
      verdict: 'info',
      detail: "the system's default multicast interface ('ip' is not installed to say which)",
    });
  } else if (!dev) {
    checks.push({
      check: 'mDNS interface',
      verdict: 'fail',
      detail: `no route for multicast 224.0.0.251: ${printable((r.stderr ?? '').trim()) || 'none'}`,
      fix: 'add a default route or one for 224.0.0.0/4 (ip route add 224.0.0.0/4 dev eth0), or pass --interface to nodes and clients',
    });
  } else {
    const more =
      usable.length > 1
        ? ` (${usable.length} interfaces: if the nodes are on another one, pass --interface)`
        : '';
    checks.push({
      check: 'mDNS interface',
      verdict: 'ok',
      detail: `${dev}, the route to 224.0.0.251${more}`,
    });
  }
}

function checkMdns(cfg: DoctorConfig, responders: string[], checks: Check[]): void {
  if (responders.length > 0) {
    const list = responders.slice(0, 8).join(', ') + (responders.length > 8 ? ', ...' : '');
    checks.push({
      check: 'mDNS answers',
      verdict: 'ok',
      detail: `${responders.length} host${responders.length === 1 ? '' : 's'} answered within ${cfg.timeoutS} s: ${list}`,
    });
  } else {
    checks.push({
      check: 'mDNS answers',
      verdict: 'fail',
      detail: `no mDNS answer at all within ${cfg.timeoutS} s`,
      fix: `is a node running (npx pp-node)? Check ${discoveryHint()}; or give nodes by address (--nodes, ppservers)`,
    });
  }
}

function checkNodes(
  cfg: DoctorConfig,
  nodes: readonly WatchedNode[],
  haveSecret: boolean,
  checks: Check[],
): void {
  if (nodes.length === 0) {
    checks.push({
      check: 'nodes',
      verdict: 'fail',
      detail: cfg.mdns ? `no pp-node found within ${cfg.timeoutS} s` : 'none given',
      fix: cfg.mdns
        ? 'start one (npx pp-node) or give nodes with --nodes host:port; see the mDNS checks above'
        : 'give nodes with --nodes host:port',
    });
    return;
  }
  const up = nodes.filter((n) => n.state === 'up');
  checks.push({
    check: 'nodes',
    verdict: up.length === nodes.length ? 'ok' : 'info',
    detail: `${nodes.length} found, ${up.length} accept${up.length === 1 ? 's' : ''} this secret: ${nodes
      .map((n) => `${n.name} (${n.address})`)
      .join(', ')}`,
  });
  for (const n of nodes) checks.push(nodeCheck(n, haveSecret));
  // Version skew: between the nodes, and with this machine.
  const versions = new Map<string, string[]>();
  versions.set(VERSION, ['this machine']);
  for (const n of nodes) {
    const v = n.info?.version || n.announced.version;
    if (!v) continue;
    versions.set(v, [...(versions.get(v) ?? []), n.name]);
  }
  if (versions.size <= 1) {
    checks.push({ check: 'versions', verdict: 'ok', detail: `all run pp-node ${VERSION}` });
  } else {
    checks.push({
      check: 'versions',
      verdict: 'warn',
      detail: [...versions].map(([v, who]) => `${printable(v)}: ${who.join(', ')}`).join('; '),
      fix: 'run the same pp-node release everywhere (npm install pp-node@<version> on the older machines)',
    });
  }
  // Clocks: from each status (± half the round trip).
  const skews = up
    .filter((n) => n.sample)
    .map((n) => ({ n, skew: n.sample!.clockSkewMs, rtt: n.sample!.rttMs }));
  if (skews.length > 0) {
    const bad = skews.filter((s) => Math.abs(s.skew) > CLOCK_SKEW_LIMIT_MS + s.rtt / 2);
    const fmt = (s: (typeof skews)[number]) =>
      `${s.n.name} ${s.skew >= 0 ? '+' : ''}${Math.round(s.skew)} ms (±${Math.ceil(s.rtt / 2)})`;
    checks.push(
      bad.length === 0
        ? {
            check: 'clocks',
            verdict: 'ok',
            detail: `within ${CLOCK_SKEW_LIMIT_MS} ms of this machine: ${skews.map(fmt).join(', ')}`,
          }
        : {
            check: 'clocks',
            verdict: 'warn',
            detail: `more than ${CLOCK_SKEW_LIMIT_MS / 1000} s off this machine's clock: ${bad.map(fmt).join(', ')}`,
            fix: 'turn on time synchronisation on those machines (timedatectl set-ntp true; Windows: Settings > Time > Sync now): logs of the cluster do not line up otherwise',
          },
    );
  }
}

function nodeCheck(n: WatchedNode, haveSecret: boolean): Check {
  const check = `node ${n.name}`;
  const where = n.address;
  switch (n.state) {
    case 'up': {
      const status = n.sample?.status;
      if (!status)
        return {
          check,
          verdict: 'warn',
          detail: `${where}: port open, accepts the secret; ${n.why || 'no status'}`,
          fix: 'upgrade pp-node on that machine',
        };
      return {
        check,
        verdict: 'ok',
        detail: `${where}: port open, accepts the secret; pp-node ${printable(status.version)}, ${status.ready}/${status.ncpus} workers ready, load ${status.load[0].toFixed(2)}`,
      };
    }
    case 'rejected':
      return {
        check,
        verdict: 'fail',
        detail: `${where}: port open, but it rejects this machine's secret`,
        fix: "copy the cluster's secret file (~/.config/pp-node/secret, mode 600) to the odd one out, or set the same PP_SECRET everywhere, and restart it",
      };
    case 'refused':
      return {
        check,
        verdict: 'fail',
        detail: `${where}: ${n.why}`,
        fix: 'wait a minute, then check the secret',
      };
    case 'version':
      return { check, verdict: 'fail', detail: `${where}: ${n.why}`, fix: 'upgrade the older side' };
    case 'no-secret':
      return {
        check,
        verdict: haveSecret ? 'info' : 'fail',
        detail: `${where}: not checked (no secret here)`,
        fix: 'see the secret check',
      };
    case 'down':
    case 'connecting':
      return {
        check,
        verdict: 'fail',
        detail: `${where}: ${n.why || 'no answer'}`,
        fix: `start npx pp-node there, and let TCP port ${n.port} through its firewall (ufw allow ${n.port}/tcp)`,
      };
    default:
      return { check, verdict: 'fail', detail: `${where}: ${n.why || n.state}` };
  }
}

function checkShm(checks: Check[]): void {
  if (process.platform !== 'linux') {
    checks.push({
      check: '/dev/shm',
      verdict: 'info',
      detail: 'not used on this platform (large arguments go through pipes)',
    });
    return;
  }
  let st: ReturnType<typeof statfsSync>;
  try {
    st = statfsSync('/dev/shm');
  } catch {
    checks.push({
      check: '/dev/shm',
      verdict: 'warn',
      detail: 'no /dev/shm: arguments of 64 KiB or more reach local workers through pipes (slower)',
      fix: 'mount a tmpfs at /dev/shm, or pass sharedMemory: false to silence this',
    });
    return;
  }
  const size = st.blocks * st.bsize;
  const free = st.bavail * st.bsize;
  const detail = `${formatBytes(size)}, ${formatBytes(free)} free`;
  if (free < SHM_MIN_FREE) {
    checks.push({
      check: '/dev/shm',
      verdict: 'warn',
      detail: `${detail}: below ${formatBytes(SHM_MIN_FREE)} free pp-node does without it (large arguments are slower)`,
      fix: 'give it more (docker run --shm-size=1g), or free it',
    });
  } else {
    checks.push({ check: '/dev/shm', verdict: 'ok', detail });
  }
}
