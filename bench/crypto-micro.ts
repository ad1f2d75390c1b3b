// Micro-benchmark of the secure channel: seal+open of 1 MiB frames through a Session (AES-256-GCM),
// with tweetnacl's secretbox (XSalsa20-Poly1305, pure JS) as a reference point, plus handshake cost.
// Run: npx tsx bench/crypto-micro.ts
import { randomBytes } from 'node:crypto';
import nacl from 'tweetnacl';
import { ClientHandshake, NodeHandshake } from '../src/protocol/handshake.ts';
import type { Session } from '../src/protocol/secure-channel.ts';

const FRAME = 1024 * 1024;
const secret = randomBytes(32);
let sink = 0;

function handshake(): { c: Session; s: Session } {
  const client = new ClientHandshake(secret);
  const server = new NodeHandshake(secret);
  const s1 = server.receive(client.start());
  const c1 = client.receive(s1.send!);
  const s2 = server.receive(c1.send!);
  const c2 = client.receive(s2.send!);
  return { c: c2.session!, s: s2.session! };
}

/** Median MB/s (1 MB = 10^6 bytes) over several timed rounds, after warm-up. */
function mbps(fn: () => void, bytesPerCall: number, calls: number): number {
  for (let i = 0; i < 3; i++) fn();
  const rounds: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) fn();
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    rounds.push((bytesPerCall * calls) / s / 1e6);
  }
  rounds.sort((a, b) => a - b);
  return rounds[3]!;
}

const payload = randomBytes(FRAME);
const { c, s } = handshake();

const gcm = mbps(
  () => {
    sink += s.open(c.seal([payload])).length;
  },
  FRAME,
  40,
);
const gcmParts = mbps(
  () => {
    sink += s.open(c.seal([payload.subarray(0, 64), payload.subarray(64)])).length;
  },
  FRAME,
  40,
);

const key = nacl.randomBytes(32);
const nonce = nacl.randomBytes(24);
const box = mbps(
  () => {
    const sealed = nacl.secretbox(payload, nonce, key);
    sink += nacl.secretbox.open(sealed, nonce, key)!.length;
  },
  FRAME,
  4,
);

const t0 = process.hrtime.bigint();
const N = 200;
for (let i = 0; i < N; i++) sink += handshake().c.id.length;
const handshakeMs = Number(process.hrtime.bigint() - t0) / 1e6 / N;

const fmt = (n: number) => n.toFixed(0).padStart(7);
console.log(`seal+open 1 MiB frame, Session AES-256-GCM        ${fmt(gcm)} MB/s`);
console.log(`seal+open 1 MiB frame in 2 parts, AES-256-GCM     ${fmt(gcmParts)} MB/s`);
console.log(`secretbox+open 1 MiB, tweetnacl (reference)       ${fmt(box)} MB/s`);
console.log(`full handshake, both sides in one process          ${handshakeMs.toFixed(2).padStart(7)} ms`);
if (sink === 0) console.log('');
