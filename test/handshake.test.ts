import assert from 'node:assert/strict';
import { createHash, createHmac, hkdfSync } from 'node:crypto';
import { describe, it } from 'node:test';
import nacl from 'tweetnacl';
import { PPError } from '../src/errors.ts';
import {
  ClientHandshake,
  HandshakeError,
  type HandshakeStep,
  MAX_HANDSHAKE_MESSAGE,
  MIN_PROTOCOL_VERSION,
  NodeHandshake,
  PROTOCOL_VERSION,
  rateLimitedMessage,
} from '../src/protocol/handshake.ts';
import type { Session } from '../src/protocol/secure-channel.ts';

const SECRET = Buffer.from('0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef');
const OTHER = Buffer.from('fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210');
const MAGIC = Buffer.from([0x50, 0x50, 0x4e, 0x01]);

/** The key schedule exactly as documented at the top of handshake.ts, written independently. */
function spec(secret: Uint8Array) {
  const okm = Buffer.from(hkdfSync('sha256', secret, 'pp-node auth v1', 'pp-node handshake keys', 64));
  const auth = okm.subarray(0, 32);
  const transcript = (clientHello: Uint8Array, serverHello: Uint8Array) =>
    createHash('sha256').update('pp-node transcript v1').update(clientHello).update(serverHello).digest();
  const mac = (label: string, h: Buffer) => createHmac('sha256', auth).update(label).update(h).digest();
  return { transcript, mac };
}

function message(type: number, body: Uint8Array): Buffer {
  return Buffer.concat([MAGIC, Buffer.from([type]), body]);
}

function complete(client: ClientHandshake, server: NodeHandshake): { c: Session; s: Session } {
  const s1 = server.receive(client.start());
  assert.equal(s1.error, undefined);
  const c1 = client.receive(s1.send!);
  assert.equal(c1.error, undefined);
  const s2 = server.receive(c1.send!);
  assert.equal(s2.error, undefined);
  const c2 = client.receive(s2.send!);
  assert.equal(c2.error, undefined);
  assert.ok(s2.session && c2.session);
  return { c: c2.session, s: s2.session };
}

interface Outcome {
  clientSession?: Session;
  serverSession?: Session;
  clientError?: HandshakeError;
  serverError?: HandshakeError;
  /** The step at which the message of step `k` was received. */
  steps: HandshakeStep[];
}

/** Runs a handshake, passing every message (step 0 = client HELLO, 1, 2, 3...) through mutate. */
function drive(
  mutate: (step: number, m: Uint8Array) => Uint8Array,
  opts: { clientSecret?: Uint8Array; serverSecret?: Uint8Array } = {},
): Outcome {
  const client = new ClientHandshake(opts.clientSecret ?? SECRET);
  const server = new NodeHandshake(opts.serverSecret ?? SECRET);
  const out: Outcome = { steps: [] };
  let msg: Uint8Array | undefined = mutate(0, client.start());
  let toServer = true;
  for (let step = 1; msg && step < 10; step++) {
    const r: HandshakeStep = (toServer ? server : client).receive(msg);
    out.steps.push(r);
    for (const v of Object.values(r)) assert.ok(v !== undefined);
    if (r.error) {
      assert.ok(r.error instanceof HandshakeError, `not a HandshakeError: ${r.error}`);
      assert.equal(r.session, undefined);
      if (toServer) out.serverError = r.error;
      else out.clientError = r.error;
    }
    if (r.session) {
      if (toServer) out.serverSession = r.session;
      else out.clientSession = r.session;
    }
    msg = r.send ? mutate(step, r.send) : undefined;
    toServer = !toServer;
  }
  return out;
}

describe('handshake', () => {
  it('exports the version range and message size bound', () => {
    assert.equal(PROTOCOL_VERSION, 3);
    assert.equal(MIN_PROTOCOL_VERSION, 1);
    assert.equal(MAX_HANDSHAKE_MESSAGE, 73);
  });

  it('completes on both sides with fixed-size messages and matching sessions', () => {
    const client = new ClientHandshake(SECRET);
    const server = new NodeHandshake(SECRET);
    const hello = client.start();
    assert.equal(hello.length, 73);
    assert.deepEqual(Buffer.from(hello.subarray(0, 5)), message(1, new Uint8Array(0)));
    const s1 = server.receive(hello);
    assert.equal(s1.send!.length, 71);
    assert.equal(s1.session, undefined);
    const c1 = client.receive(s1.send!);
    assert.equal(c1.send!.length, 37);
    assert.equal(c1.session, undefined);
    const s2 = server.receive(c1.send!);
    assert.equal(s2.send!.length, 37);
    const c2 = client.receive(s2.send!);
    assert.equal(c2.send, undefined);
    const c = c2.session!;
    const s = s2.session!;
    assert.equal(c.role, 'client');
    assert.equal(s.role, 'node');
    assert.equal(c.version, PROTOCOL_VERSION, 'the highest version both support');
    assert.equal(s.version, PROTOCOL_VERSION);
    assert.match(c.id, /^[0-9a-f]{16}$/);
    assert.equal(c.id, s.id);
    // The secret itself never crosses the wire.
    for (const m of [hello, s1.send!, c1.send!, s2.send!]) {
      assert.equal(Buffer.from(m).indexOf(SECRET.subarray(0, 8)), -1);
    }
  });

  it('carries multi-part frames both ways, including a 4 MiB one', () => {
    const { c, s } = complete(new ClientHandshake(SECRET), new NodeHandshake(SECRET));
    const big = Buffer.alloc(4 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
    const parts = [Buffer.from('head'), big, new Uint8Array(0), Buffer.from('tail')];
    const frame = c.seal(parts);
    assert.ok(Buffer.isBuffer(frame));
    assert.equal(frame.length, 4 + big.length + 4 + 16);
    assert.deepEqual(s.open(frame), Buffer.concat(parts));
    const back = s.seal([Buffer.from('ok '), Buffer.from('thanks')]);
    assert.equal(c.open(back).toString(), 'ok thanks');
    assert.equal(c.open(s.seal([])).length, 0);
  });

  it('sessions of different handshakes differ', () => {
    const a = complete(new ClientHandshake(SECRET), new NodeHandshake(SECRET));
    const b = complete(new ClientHandshake(SECRET), new NodeHandshake(SECRET));
    assert.notEqual(a.c.id, b.c.id);
    assert.throws(() => b.s.open(a.c.seal([Buffer.from('x')])), { name: 'SecureChannelError' });
  });

  it('wrong secret: the node reports bad-proof and sends REJECTED; the client gets a clear rejection', () => {
    const out = drive((_, m) => m, { clientSecret: OTHER });
    assert.equal(out.serverError?.code, 'bad-proof');
    assert.match(out.serverError!.message, /client failed to prove it knows the secret/);
    const rejected = out.steps[2]!;
    assert.ok(rejected.send, 'the node must answer, not close silently');
    assert.equal(rejected.send.length, 8);
    assert.equal(rejected.send[4], 6);
    assert.equal(out.clientError?.code, 'rejected');
    assert.equal(out.clientError?.rejectReason, 'bad-secret');
    assert.match(out.clientError!.message, /node rejected our secret/);
    assert.match(out.clientError!.message, /PP_SECRET/);
    assert.equal(out.clientSession, undefined);
    assert.equal(out.serverSession, undefined);
  });

  it('an impostor node with another secret cannot prove itself', () => {
    const client = new ClientHandshake(SECRET);
    const hello = client.start();
    const impostor = new NodeHandshake(OTHER);
    const serverHello = impostor.receive(hello).send!;
    assert.ok(client.receive(serverHello).send);
    // The impostor pretends the client's proof was fine and proves with the secret it has.
    const fake = spec(OTHER).mac('pp-node server proof', spec(OTHER).transcript(hello, serverHello));
    const r = client.receive(message(4, fake));
    assert.equal(r.error?.code, 'bad-proof');
    assert.equal(r.error?.message, 'node failed to prove it knows the secret: impostor or different secret');
    assert.equal(r.session, undefined);
  });

  it('a node that reflects the client proof as its own is refused', () => {
    const client = new ClientHandshake(SECRET);
    const hello = client.start();
    const serverHello = new NodeHandshake(SECRET).receive(hello).send!;
    const clientProof = client.receive(serverHello).send!;
    const reflected = Buffer.from(clientProof);
    reflected[4] = 4; // relabel CLIENT_PROOF as SERVER_PROOF
    assert.equal(client.receive(reflected).error?.code, 'bad-proof');
  });

  it('follows the documented key schedule (independent implementation interoperates)', () => {
    // Client side of the spec against the real node.
    const server = new NodeHandshake(SECRET);
    const kp = nacl.box.keyPair();
    const hello = message(1, Buffer.concat([Buffer.from([0, 1, 0, 1]), Buffer.alloc(32, 7), kp.publicKey]));
    const serverHello = server.receive(hello).send!;
    const h = spec(SECRET).transcript(hello, serverHello);
    const r = server.receive(message(3, spec(SECRET).mac('pp-node client proof', h)));
    assert.equal(r.error, undefined);
    assert.deepEqual(Buffer.from(r.send!), message(4, spec(SECRET).mac('pp-node server proof', h)));
    assert.ok(r.session);

    // Node side of the spec against the real client.
    const client = new ClientHandshake(SECRET);
    const cHello = client.start();
    const skp = nacl.box.keyPair();
    const sHello = message(2, Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(32, 9), skp.publicKey]));
    const h2 = spec(SECRET).transcript(cHello, sHello);
    assert.deepEqual(
      Buffer.from(client.receive(sHello).send!),
      message(3, spec(SECRET).mac('pp-node client proof', h2)),
    );
    assert.ok(client.receive(message(4, spec(SECRET).mac('pp-node server proof', h2))).session);
  });

  it('refuses a low-order X25519 key even from a client that knows the secret', () => {
    const server = new NodeHandshake(SECRET);
    const hello = message(
      1,
      Buffer.concat([Buffer.from([0, 1, 0, 1]), Buffer.alloc(32, 7), Buffer.alloc(32)]),
    );
    const serverHello = server.receive(hello).send!;
    const h = spec(SECRET).transcript(hello, serverHello);
    const r = server.receive(message(3, spec(SECRET).mac('pp-node client proof', h)));
    assert.equal(r.error?.code, 'malformed');
    assert.equal(r.session, undefined);

    const client = new ClientHandshake(SECRET);
    client.start();
    const bad = message(2, Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(32, 9), Buffer.alloc(32)]));
    assert.equal(client.receive(bad).error?.code, 'malformed');
  });

  it('a replayed client HELLO and PROOF do not authenticate to a fresh node', () => {
    const client = new ClientHandshake(SECRET);
    const hello = client.start();
    const s1 = new NodeHandshake(SECRET);
    const proof = client.receive(s1.receive(hello).send!).send!;
    const s2 = new NodeHandshake(SECRET);
    assert.ok(s2.receive(hello).send);
    const r = s2.receive(proof);
    assert.equal(r.error?.code, 'bad-proof');
    assert.equal(r.session, undefined);
  });

  it('negotiates the highest common version', () => {
    const { c, s } = complete(
      new ClientHandshake(SECRET, { minVersion: 1, maxVersion: 3 }),
      new NodeHandshake(SECRET, { minVersion: 1, maxVersion: 2 }),
    );
    assert.equal(c.version, 2);
    assert.equal(s.version, 2);
  });

  for (const [clientRange, serverRange, clientText, serverText] of [
    [{ minVersion: 4, maxVersion: 5 }, {}, 'versions 4-5', 'versions 1-3'],
    [{}, { minVersion: 4, maxVersion: 6 }, 'versions 1-3', 'versions 4-6'],
  ] as const) {
    it(`version ranges that do not overlap fail clearly on both sides (${clientText} vs ${serverText})`, () => {
      const client = new ClientHandshake(SECRET, clientRange);
      const server = new NodeHandshake(SECRET, serverRange);
      const s1 = server.receive(client.start());
      assert.equal(s1.error?.code, 'version');
      assert.ok(s1.send, 'the node tells the client its range');
      assert.equal(s1.send.length, 9);
      assert.match(
        s1.error!.message,
        new RegExp(`client supports ${clientText}, this node supports ${serverText}`),
      );
      const c1 = client.receive(s1.send);
      assert.equal(c1.error?.code, 'version');
      assert.match(
        c1.error!.message,
        new RegExp(`this client supports ${clientText}, the node supports ${serverText}`),
      );
      assert.deepEqual(c1.error!.peerVersions, s1.error!.localVersions);
      assert.deepEqual(c1.error!.localVersions, s1.error!.peerVersions);
      assert.equal(server.receive(new Uint8Array(37)).error?.code, 'state');
    });
  }

  it('a node that picks a version outside the client range is refused', () => {
    const client = new ClientHandshake(SECRET);
    const hello = client.start();
    const sHello = Buffer.from(
      new NodeHandshake(SECRET, { minVersion: 1, maxVersion: 5 }).receive(hello).send!,
    );
    sHello.writeUInt16BE(PROTOCOL_VERSION + 1, 5);
    assert.equal(client.receive(sHello).error?.code, 'version');
  });

  it('reports a rate-limit rejection with its retry time', () => {
    const client = new ClientHandshake(SECRET);
    client.start();
    const r = client.receive(rateLimitedMessage(42_100));
    assert.equal(r.error?.code, 'rejected');
    assert.equal(r.error?.rejectReason, 'rate-limited');
    assert.equal(r.error?.retryAfterMs, 43_000);
    assert.match(r.error!.message, /too many failed handshakes/);
  });

  it('HandshakeError is a PPError with its own name', () => {
    const client = new ClientHandshake(SECRET);
    client.start();
    const e = client.receive(new Uint8Array(3)).error!;
    assert.ok(e instanceof PPError);
    assert.equal(e.name, 'HandshakeError');
    assert.equal(e.code, 'malformed');
  });

  it('refuses an empty secret and bad version options', () => {
    assert.throws(() => new ClientHandshake(new Uint8Array(0)), PPError);
    assert.throws(() => new NodeHandshake(new Uint8Array(0)), PPError);
    assert.throws(() => new NodeHandshake(SECRET, { minVersion: 3, maxVersion: 2 }), PPError);
    assert.throws(() => new ClientHandshake(SECRET, { minVersion: 0 }), PPError);
    assert.throws(() => new ClientHandshake(SECRET, { maxVersion: 70_000 }), PPError);
  });

  describe('every mutation of every message fails (never a session for the client, never a throw)', () => {
    const names = ['client HELLO', 'node HELLO', 'client PROOF', 'node PROOF'];
    const sizes = [73, 71, 37, 37];
    const mutations: [string, (m: Uint8Array) => Uint8Array[]][] = [
      ['truncated at every length', (m) => Array.from({ length: m.length }, (_, n) => m.slice(0, n))],
      ['extended by one byte', (m) => [Buffer.concat([m, Buffer.from([0])])]],
      [
        'each byte flipped',
        (m) =>
          Array.from({ length: m.length * 2 }, (_, i) => {
            const c = Buffer.from(m);
            c[i >> 1]! ^= i & 1 ? 0x01 : 0xff;
            return c;
          }),
      ],
      [
        'wrong magic',
        (m) => {
          const a = Buffer.from(m);
          a.write('PPN\x02', 0, 'latin1');
          const b = Buffer.from(m);
          b.write('HTTP', 0, 'latin1');
          return [a, b];
        },
      ],
      ['replaced by zeros', (m) => [new Uint8Array(m.length)]],
    ];
    for (let step = 0; step < 4; step++) {
      for (const [label, variants] of mutations) {
        it(`${names[step]}: ${label}`, () => {
          let count = 0;
          // Record the original once to build the variants from.
          let original: Uint8Array | undefined;
          drive((k, m) => {
            if (k === step) original = m;
            return m;
          });
          assert.equal(original!.length, sizes[step]);
          for (const bad of variants(original!)) {
            count++;
            let out: Outcome | undefined;
            assert.doesNotThrow(() => {
              out = drive((k, m) => (k === step ? bad : m));
            });
            assert.equal(out!.clientSession, undefined, `client got a session (${label} #${count})`);
            assert.ok(out!.clientError || out!.serverError);
            // Until the final message, the node never gets a session either.
            if (step < 3) assert.equal(out!.serverSession, undefined);
            // The receiver of a message of the wrong size or magic fails right away.
            if (bad.length !== original!.length || label === 'wrong magic') {
              const receiverError = out!.steps[step]!.error;
              assert.ok(receiverError);
              assert.equal(receiverError.code, 'malformed');
            }
          }
          assert.ok(count > 0);
        });
      }
    }
  });

  describe('messages out of order', () => {
    it('client: receive before start, start twice, own HELLO reflected, PROOF before HELLO', () => {
      const c0 = new ClientHandshake(SECRET);
      assert.equal(c0.receive(new Uint8Array(71)).error?.code, 'state');

      const c1 = new ClientHandshake(SECRET);
      const hello = c1.start();
      assert.throws(() => c1.start(), HandshakeError);

      const c2 = new ClientHandshake(SECRET);
      c2.start();
      const r2 = c2.receive(hello);
      assert.equal(r2.error?.code, 'state');
      assert.match(r2.error!.message, /unexpected client HELLO/);

      const c3 = new ClientHandshake(SECRET);
      c3.start();
      assert.equal(c3.receive(message(4, Buffer.alloc(32))).error?.code, 'state');
    });

    it('node: PROOF first, its own HELLO reflected, HELLO twice', () => {
      assert.equal(new NodeHandshake(SECRET).receive(message(3, Buffer.alloc(32))).error?.code, 'state');

      const client = new ClientHandshake(SECRET);
      const server = new NodeHandshake(SECRET);
      const hello = client.start();
      const serverHello = server.receive(hello).send!;
      assert.equal(new NodeHandshake(SECRET).receive(serverHello).error?.code, 'state');
      const again = server.receive(hello);
      assert.equal(again.error?.code, 'state');
      assert.equal(again.send, undefined);
      // The handshake is dead after any error.
      assert.equal(server.receive(client.receive(serverHello).send!).error?.code, 'state');
    });

    it('anything after completion is an error on both sides', () => {
      const client = new ClientHandshake(SECRET);
      const server = new NodeHandshake(SECRET);
      const hello = client.start();
      const s1 = server.receive(hello);
      const c1 = client.receive(s1.send!);
      const s2 = server.receive(c1.send!);
      const c2 = client.receive(s2.send!);
      assert.ok(c2.session && s2.session);
      const again = server.receive(hello);
      assert.equal(again.error?.code, 'state');
      assert.equal(again.session, undefined);
      assert.equal(server.receive(c1.send!).error?.code, 'state');
      assert.equal(client.receive(s1.send!).error?.code, 'state');
      assert.equal(client.receive(s2.send!).error?.code, 'state');
    });

    it('oversized and non-handshake input', () => {
      const server = new NodeHandshake(SECRET);
      const r = server.receive(new Uint8Array(MAX_HANDSHAKE_MESSAGE + 1));
      assert.equal(r.error?.code, 'malformed');
      assert.equal(r.send, undefined);
      assert.equal(
        new NodeHandshake(SECRET).receive(Buffer.from('GET / HTTP/1.1\r\n\r\n')).error?.code,
        'malformed',
      );
      assert.equal(
        new NodeHandshake(SECRET).receive(message(0x7f, Buffer.alloc(0))).error?.code,
        'malformed',
      );
    });
  });
});
