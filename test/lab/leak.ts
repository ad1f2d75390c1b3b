/**
 * Proof that lab traffic stays in the lab: tcpdump on every interface of the root namespace
 * (`-i any`; loopback is looked at separately) while the LAN tests run.
 *
 * A packet is a leak when it goes through a non-loopback interface and
 *   - comes from or goes to a lab address (10.231.0.0/16), or
 *   - carries "pp-node" (every packet of our discovery names `_pp-node._tcp`), or
 *   - is outgoing mDNS (udp/5353) at all, in strict mode (CI: a bare machine sends none).
 * "pp-node" mDNS on loopback of the root namespace means an mDNS stack ran there: also reported.
 *
 * The capture checks itself: a canary UDP datagram to 127.0.0.1 (loopback only, never multicast)
 * must show up at start and at the end, or the capture is declared broken.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { LAB_SUPERNET } from './netlab.ts';

export interface CapturedPacket {
  iface: string;
  dir: string;
  header: string;
  payload: string;
}

export interface LeakReport {
  packets: CapturedPacket[];
  /** Leaks through a real interface. */
  leaks: CapturedPacket[];
  /** pp-node mDNS on the root namespace's loopback. */
  rootMdns: CapturedPacket[];
  /** Other mDNS seen on real interfaces (other machines, a local avahi) that is not a leak. */
  foreign: CapturedPacket[];
  summary: string;
}

export function tcpdumpAvailable(): { what: string; ok: boolean; reason: string } {
  const r = spawnSync('tcpdump', ['--version'], { encoding: 'utf8' });
  return { what: 'tcpdump', ok: !r.error && r.status === 0, reason: 'tcpdump (apt-get install tcpdump)' };
}

const CANARY_PORT = 45353;

export class LeakCapture {
  readonly #child: ChildProcess;
  readonly #strict: boolean;
  #stdout = '';
  #stderr = '';
  #exited: Promise<void>;

  private constructor(child: ChildProcess, strict: boolean) {
    this.#child = child;
    this.#strict = strict;
    child.stdout!.setEncoding('latin1').on('data', (d: string) => (this.#stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.#stderr += d));
    this.#exited = new Promise((r) => child.on('exit', () => r()));
  }

  /** Starts tcpdump and waits until it provably captures (canary seen). */
  static async start(opts: { strict: boolean }): Promise<LeakCapture> {
    const filter = `udp port 5353 or net ${LAB_SUPERNET} or (udp port ${CANARY_PORT} and host 127.0.0.1)`;
    const child = spawn('tcpdump', ['-i', 'any', '-n', '-l', '-A', '-s', '1024', filter], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const cap = new LeakCapture(child, opts.strict);
    await cap.#until(() => /listening on/.test(cap.#stderr), 5000, 'tcpdump did not start');
    await cap.#canary('start');
    return cap;
  }

  async #until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (this.#child.exitCode !== null) throw new Error(`${what}: tcpdump exited: ${this.#stderr}`);
      if (Date.now() > deadline) throw new Error(`${what} within ${ms} ms: ${this.#stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async #canary(tag: string): Promise<void> {
    const word = `pp-leak-canary-${tag}-${process.pid}`;
    const s = createSocket('udp4');
    await new Promise<void>((resolve, reject) =>
      s.send(Buffer.from(word), CANARY_PORT, '127.0.0.1', (e) => (e ? reject(e) : resolve())),
    );
    s.close();
    await this.#until(
      () => this.#stdout.includes(word),
      5000,
      `capture self-check (${tag}): canary not seen`,
    );
  }

  /** Stops the capture and classifies what it saw. */
  async stop(): Promise<LeakReport> {
    await this.#canary('end');
    this.#child.kill('SIGINT');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#exited, new Promise((r) => (timer = setTimeout(r, 3000)))]);
    clearTimeout(timer); // else it holds the test file open 3 s after its end
    if (this.#child.exitCode === null) this.#child.kill('SIGKILL');
    const counts = /(\d+) packets? captured/.exec(this.#stderr)?.[1] ?? '?';
    const report = analyzeCapture(this.#stdout, this.#strict);
    report.summary = `tcpdump -i any: ${counts} packets matched the filter (incl. 2 canaries on lo); ${report.summary}`;
    return report;
  }
}

/** Classifies `tcpdump -i any -n -A` output (see the top of this file). */
export function analyzeCapture(text: string, strict: boolean): LeakReport {
  const packets = parse(text);
  const labRe = /\b10\.231\.\d+\.\d+/;
  const leaks: CapturedPacket[] = [];
  const rootMdns: CapturedPacket[] = [];
  const foreign: CapturedPacket[] = [];
  for (const p of packets) {
    const ours = /pp-node/i.test(p.payload) && !p.payload.includes('pp-leak-canary');
    if (p.iface === 'lo') {
      if (ours || labRe.test(p.header)) rootMdns.push(p);
      continue;
    }
    const mdnsOut = p.dir === 'Out' && /\.5353[ :]/.test(p.header);
    if (labRe.test(p.header) || ours || (strict && mdnsOut)) leaks.push(p);
    else foreign.push(p);
  }
  return {
    packets,
    leaks,
    rootMdns,
    foreign,
    summary: `leaks: ${leaks.length}; pp-node mDNS on root loopback: ${rootMdns.length}; foreign mDNS ignored: ${foreign.length}`,
  };
}

/** tcpdump -i any -n -A output: a header line `HH:MM:SS.us IFACE DIR ...` then payload lines. */
function parse(text: string): CapturedPacket[] {
  const out: CapturedPacket[] = [];
  let cur: CapturedPacket | undefined;
  for (const line of text.split('\n')) {
    const m = /^\d\d:\d\d:\d\d\.\d+\s+(\S+)\s+(In|Out|B|M|P)\s+(.*)$/.exec(line);
    if (m) {
      cur = { iface: m[1]!, dir: m[2]!, header: line, payload: '' };
      out.push(cur);
    } else if (cur) {
      cur.payload += `${line}\n`;
    }
  }
  return out;
}
