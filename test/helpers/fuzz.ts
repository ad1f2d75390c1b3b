/**
 * A seeded fuzzer for what a peer's bytes reach before and just after authentication: the
 * handshake (both roles, every state), the secure channel's frame opening, the length-prefixed
 * frame reader and the message decoder. Inputs are mutations of valid messages (bit flips,
 * interesting bytes, inserted, deleted and duplicated runs, truncations, splices of two
 * messages, rewritten length fields) and plain random bytes, from a xorshift generator: the same
 * seed gives the same inputs, so a failure names its seed and input number.
 *
 * Each target either returns or throws one of its documented error classes; anything else, a
 * change to Object.prototype or Array.prototype, or an input that takes longer than `maxInputMs`,
 * is a finding.
 */
import {
  ClientHandshake,
  HandshakeError,
  type HandshakeStep,
  NodeHandshake,
} from '../../src/protocol/handshake.ts';
import { decodeMessage, encodeMessage, type Message, MessageError } from '../../src/protocol/messages.ts';
import { SecureChannelError, Session } from '../../src/protocol/secure-channel.ts';
import { FrameReader, FrameTooLargeError, joinFrame } from '../../src/transport/frames.ts';

/** xorshift32: small, fast, and the same sequence everywhere for a seed. */
export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.#s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.#s = x;
    return x;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0xc7, 0xc9, 0xcb, 0xd0, 0xb0, 0xa0];

/** One mutation of `input` (or of a splice with `other`). Never longer than `maxLength`. */
export function mutate(rng: Rng, input: Uint8Array, other: Uint8Array, maxLength = 4096): Uint8Array {
  let b: Uint8Array = Uint8Array.from(input);
  const rounds = 1 + rng.int(4);
  for (let r = 0; r < rounds; r++) {
    const at = rng.int(b.length + 1);
    switch (rng.int(9)) {
      case 0: // flip a bit
        if (b.length) b[rng.int(b.length)]! ^= 1 << rng.int(8);
        break;
      case 1: // an interesting byte
        if (b.length) b[rng.int(b.length)] = INTERESTING[rng.int(INTERESTING.length)]!;
        break;
      case 2: // random bytes inserted
        b = concat(b.subarray(0, at), rng.bytes(1 + rng.int(16)), b.subarray(at));
        break;
      case 3: // a run deleted
        b = concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + rng.int(16))));
        break;
      case 4: // truncated
        b = b.subarray(0, at);
        break;
      case 5: {
        // a run duplicated
        const len = 1 + rng.int(32);
        b = concat(b.subarray(0, at), b.subarray(at, at + len), b.subarray(at));
        break;
      }
      case 6: // spliced with another message
        b = concat(b.subarray(0, at), other.subarray(rng.int(other.length + 1)));
        break;
      case 7: {
        // a 32-bit length field rewritten (big-endian, as frames and message heads have them)
        if (b.length >= 4) {
          const p = rng.int(b.length - 3);
          const v = [0, 1, 0xff, 0xffff, 0x7fffffff, 0xffffffff, b.length, b.length + 1][rng.int(8)]!;
          new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(p, v >>> 0);
        }
        break;
      }
      default: // random bytes altogether
        b = rng.bytes(rng.int(96));
    }
    if (b.length > maxLength) b = b.subarray(0, maxLength);
  }
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function join(parts: readonly Uint8Array[]): Uint8Array {
  return concat(...parts);
}

const SECRET = new TextEncoder().encode('fuzz-secret-0123456789abcdef0123456789');

/** A handshake run to the end in memory: every message of it. */
function validHandshake(): Uint8Array[] {
  const c = new ClientHandshake(SECRET);
  const n = new NodeHandshake(SECRET);
  const clientHello = c.start();
  const s1 = n.receive(clientHello);
  const s2 = c.receive(s1.send!);
  const s3 = n.receive(s2.send!);
  const s4 = c.receive(s3.send!);
  if (!s3.session || !s4.session) throw new Error('the in-memory handshake did not complete');
  return [clientHello, s1.send!, s2.send!, s3.send!];
}

/** A pair of sessions as a handshake makes them (fixed keys: cheap to make again once broken). */
function sessionPair(): { client: Session; node: Session } {
  const k1 = new Uint8Array(32).fill(1);
  const k2 = new Uint8Array(32).fill(2);
  const transcriptHash = new Uint8Array(32).fill(3);
  const init = { version: 2, clientToNodeKey: k1, nodeToClientKey: k2, transcriptHash };
  return { client: new Session({ ...init, role: 'client' }), node: new Session({ ...init, role: 'node' }) };
}

/** Valid messages of every type a peer may send, as whole frames. */
function validMessages(): Uint8Array[] {
  const blob = new Uint8Array([1, 0x2a]);
  const msgs: Message[] = [
    { type: 'define', defs: [{ hash: 'h', source: 'function f(x) { return x }', name: 'f' } as never] },
    { type: 'run', fns: ['h'], jobs: [[1, 0, 0, []]], blobs: [blob] },
    { type: 'cancel', ids: [1, 2] },
    { type: 'withdraw', ids: [3] },
    { type: 'put', refs: ['r1'], blobs: [blob] },
    { type: 'release', refs: ['r1'] },
    { type: 'done', results: [[1, 0, 1.5]], blobs: [blob] },
    { type: 'welcome', info: { id: 'n', name: 'n', ncpus: 2, version: '0.1.0', protocol: 2 } },
    { type: 'requeue', ids: [4] },
    { type: 'withdrawn', ids: [5] },
    { type: 'failed', ids: [6], blobs: [blob] },
    { type: 'ping', t: 12.5 },
    { type: 'pong', t: 12.5 },
    { type: 'ncpus', ncpus: 2 },
    { type: 'bye', reason: 'done' },
  ];
  const out: Uint8Array[] = [];
  for (const m of msgs) {
    try {
      out.push(join(encodeMessage(m)));
    } catch {
      // a shape this build does not encode: not part of the corpus
    }
  }
  return out;
}

export interface FuzzReport {
  inputs: number;
  /** Inputs per target. */
  perTarget: Record<string, number>;
  slowestMs: number;
}

export class FuzzFinding extends Error {}

/**
 * Runs the targets on generated inputs until `deadline` (performance.now()) and `minInputs`,
 * or `maxInputs`.
 * Throws a FuzzFinding that names seed, input number, target and input bytes (hex).
 */
export function fuzz(
  seed: number,
  deadline: number,
  maxInputs: number,
  maxInputMs = 1000,
  minInputs = 0,
): FuzzReport {
  const rng = new Rng(seed);
  const handshakeCorpus = validHandshake();
  const messages = validMessages();
  // Frames sealed by the node, in order: the client opens them (a mutated one breaks the session,
  // so each input gets a fresh pair of sessions from a fresh handshake every so often).
  const protoKeys = Object.getOwnPropertyNames(Object.prototype).join();
  const arrayKeys = Object.getOwnPropertyNames(Array.prototype).join();
  const report: FuzzReport = { inputs: 0, perTarget: {}, slowestMs: 0 };
  let sessions = sessionPair();

  // [name, weight, run]: the cheap targets get more of the inputs.
  const targets: Array<[string, number, (input: Uint8Array) => void]> = [
    ['node handshake, HELLO', 1, (m) => expectStep(new NodeHandshake(SECRET).receive(m))],
    [
      'node handshake, PROOF',
      1,
      (m) => {
        const n = new NodeHandshake(SECRET);
        n.receive(new ClientHandshake(SECRET).start());
        expectStep(n.receive(m));
      },
    ],
    [
      'client handshake, HELLO',
      1,
      (m) => {
        const c = new ClientHandshake(SECRET);
        c.start();
        expectStep(c.receive(m));
      },
    ],
    [
      'client handshake, PROOF',
      1,
      (m) => {
        const c = new ClientHandshake(SECRET);
        const n = new NodeHandshake(SECRET);
        const hello = n.receive(c.start());
        expectStep(c.receive(hello.send!));
        expectStep(c.receive(m));
      },
    ],
    [
      'secure channel, open',
      4,
      (m) => {
        try {
          sessions.client.open(m);
        } catch (e) {
          if (!(e instanceof SecureChannelError)) throw e;
          sessions = sessionPair(); // this pair is broken now
        }
      },
    ],
    [
      'message decoder',
      8,
      (m) => {
        try {
          decodeMessage(m);
        } catch (e) {
          if (!(e instanceof MessageError)) throw e;
        }
      },
    ],
    [
      'frame reader',
      4,
      (m) => {
        const reader = new FrameReader((bytes, start, end) => {
          if (!(start >= 0 && start <= end && end <= bytes.length))
            throw new Error(`bad range ${start}..${end}`);
        }, 1 << 16);
        try {
          // The same bytes in random chunks, as a socket delivers them.
          for (let p = 0; p < m.length; ) {
            const n = 1 + rng.int(m.length - p);
            reader.push(Buffer.from(m.subarray(p, p + n)));
            p += n;
          }
        } catch (e) {
          if (!(e instanceof FrameTooLargeError)) throw e;
        }
      },
    ],
  ];

  const schedule = targets.flatMap(([name, weight, run]) =>
    Array.from({ length: weight }, () => ({ name, run })),
  );
  for (let i = 0; i < maxInputs && (i < minInputs || performance.now() < deadline); i++) {
    const { name, run } = schedule[i % schedule.length]!;
    const corpus = name.startsWith('message') || name.startsWith('frame') ? messages : handshakeCorpus;
    let base = corpus[rng.int(corpus.length)]!;
    if (name === 'frame reader') base = joinFrame([base], true);
    if (name === 'secure channel, open') base = sessions.node.seal([corpus[0]!]);
    const input =
      rng.int(16) === 0 ? rng.bytes(rng.int(128)) : mutate(rng, base, corpus[rng.int(corpus.length)]!);
    const t0 = performance.now();
    try {
      run(input);
    } catch (e) {
      throw finding(seed, i, name, input, `threw ${(e as Error)?.name}: ${(e as Error)?.message}`);
    }
    const ms = performance.now() - t0;
    if (ms > report.slowestMs) report.slowestMs = ms;
    if (ms > maxInputMs) throw finding(seed, i, name, input, `took ${ms.toFixed(0)} ms`);
    if ((i & 255) === 0 || ({} as Record<string, unknown>).polluted !== undefined) {
      if (
        Object.getOwnPropertyNames(Object.prototype).join() !== protoKeys ||
        Object.getOwnPropertyNames(Array.prototype).join() !== arrayKeys
      )
        throw finding(seed, i, name, input, 'changed Object.prototype or Array.prototype');
    }
    report.inputs++;
    report.perTarget[name] = (report.perTarget[name] ?? 0) + 1;
  }
  if (
    Object.getOwnPropertyNames(Object.prototype).join() !== protoKeys ||
    Object.getOwnPropertyNames(Array.prototype).join() !== arrayKeys
  )
    throw new FuzzFinding(`seed ${seed}: Object.prototype or Array.prototype changed during the run`);
  return report;
}

/** A handshake step is a value: at most one of send/session/error, an error of the documented class. */
function expectStep(step: HandshakeStep): void {
  if (step === null || typeof step !== 'object') throw new Error('receive returned no step');
  if (step.error !== undefined && !(step.error instanceof HandshakeError))
    throw new Error(`an error of another class: ${(step.error as Error).name}`);
}

function finding(seed: number, i: number, target: string, input: Uint8Array, what: string): FuzzFinding {
  return new FuzzFinding(
    `seed ${seed}, input #${i} (${target}) ${what}; input (hex): ${Buffer.from(input).toString('hex').slice(0, 2000)}`,
  );
}
