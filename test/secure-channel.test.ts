import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { PPError } from '../src/errors.ts';
import { ClientHandshake, NodeHandshake } from '../src/protocol/handshake.ts';
import { MAX_FRAMES, SecureChannelError, Session } from '../src/protocol/secure-channel.ts';

/** A connected pair built directly (cheap, so each test can break its own). */
function pair(maxFrames?: number): { c: Session; s: Session } {
  const c2s = randomBytes(32);
  const s2c = randomBytes(32);
  const transcriptHash = randomBytes(32);
  const base = { version: 1, transcriptHash, ...(maxFrames ? { maxFrames } : {}) };
  return {
    c: new Session({
      ...base,
      role: 'client',
      clientToNodeKey: Buffer.from(c2s),
      nodeToClientKey: Buffer.from(s2c),
    }),
    s: new Session({
      ...base,
      role: 'node',
      clientToNodeKey: Buffer.from(c2s),
      nodeToClientKey: Buffer.from(s2c),
    }),
  };
}

/** A pair from a real handshake. */
function handshakePair(): { c: Session; s: Session } {
  const secret = Buffer.from('a secret long enough to be taken seriously');
  const client = new ClientHandshake(secret);
  const server = new NodeHandshake(secret);
  const s1 = server.receive(client.start());
  const c1 = client.receive(s1.send!);
  const s2 = server.receive(c1.send!);
  const c2 = client.receive(s2.send!);
  return { c: c2.session!, s: s2.session! };
}

const isChannelError = (e: unknown) => e instanceof SecureChannelError && e instanceof PPError;

describe('secure channel', () => {
  it('round-trips multi-part frames in both directions', () => {
    for (const { c, s } of [pair(), handshakePair()]) {
      for (let i = 0; i < 5; i++) {
        const parts = [randomBytes(i * 100), randomBytes(1), new Uint8Array(0), randomBytes(70_000 * i)];
        assert.deepEqual(s.open(c.seal(parts)), Buffer.concat(parts));
        assert.deepEqual(c.open(s.seal(parts)), Buffer.concat(parts));
      }
      assert.equal(c.framesSent, 5);
      assert.equal(c.framesReceived, 5);
      assert.equal(s.framesSent, 5);
    }
  });

  it('a frame is ciphertext plus a 16-byte tag, with no plaintext in it', () => {
    const { c } = pair();
    const text = Buffer.from('attack at dawn, attack at dawn, attack at dawn');
    const frame = c.seal([text]);
    assert.equal(frame.length, text.length + 16);
    assert.equal(frame.indexOf('attack'), -1);
    assert.equal(c.seal([]).length, 16);
  });

  it('detects a tampered byte anywhere', () => {
    const plain = [Buffer.from('header'), randomBytes(40)];
    const { c } = pair();
    const length = c.seal(plain).length;
    for (let i = 0; i < length; i++) {
      for (const mask of [0x01, 0x80]) {
        const { c, s } = pair();
        const frame = c.seal(plain);
        frame[i]! ^= mask;
        assert.throws(() => s.open(frame), isChannelError, `byte ${i} mask ${mask}`);
      }
    }
  });

  it('detects a replayed frame', () => {
    const { c, s } = handshakePair();
    const f1 = c.seal([Buffer.from('pay 10')]);
    assert.equal(s.open(f1).toString(), 'pay 10');
    assert.throws(() => s.open(f1), isChannelError);
  });

  it('detects two frames in swapped order', () => {
    const { c, s } = handshakePair();
    const f1 = c.seal([Buffer.from('one')]);
    const f2 = c.seal([Buffer.from('two')]);
    assert.throws(() => s.open(f2), isChannelError);
    // The receive side stays broken: the caller must close.
    assert.throws(() => s.open(f1), isChannelError);
  });

  it('detects a dropped frame', () => {
    const { c, s } = pair();
    c.seal([Buffer.from('lost')]);
    assert.throws(() => s.open(c.seal([Buffer.from('next')])), isChannelError);
  });

  it('a frame reflected back to its sender fails', () => {
    for (const { c, s } of [pair(), handshakePair()]) {
      assert.throws(() => c.open(c.seal([Buffer.from('from client')])), isChannelError);
      assert.throws(() => s.open(s.seal([Buffer.from('from server')])), isChannelError);
    }
  });

  it('detects truncated, extended and empty frames', () => {
    const make = () => {
      const p = pair();
      return { ...p, frame: p.c.seal([Buffer.from('some payload bytes')]) };
    };
    for (let n = 0; n < make().frame.length; n++) {
      const { s, frame } = make();
      assert.throws(() => s.open(frame.subarray(0, n)), isChannelError, `truncated to ${n}`);
    }
    {
      const { s, frame } = make();
      assert.throws(() => s.open(frame.subarray(1)), isChannelError);
    }
    {
      const { s, frame } = make();
      assert.throws(() => s.open(Buffer.concat([frame, Buffer.from([0])])), isChannelError);
    }
    const { s } = pair();
    assert.throws(() => s.open(new Uint8Array(0)), /shorter than its 16-byte tag/);
  });

  it('uses a different key per direction', () => {
    const { c, s } = handshakePair();
    // Same counter (0), same plaintext: equal ciphertexts would mean equal keys and nonces.
    const text = [Buffer.alloc(64, 0x41)];
    const fromClient = c.seal(text);
    const fromServer = s.seal(text);
    assert.notDeepEqual(fromClient, fromServer);
    assert.deepEqual(s.open(fromClient), text[0]);
    assert.deepEqual(c.open(fromServer), text[0]);
  });

  it('never reuses a nonce: the counter advances on every seal', () => {
    const { c, s } = pair();
    const text = [Buffer.alloc(32, 7)];
    const seen = new Set<string>();
    for (let i = 0; i < 100; i++) {
      assert.equal(c.framesSent, i);
      const f = c.seal(text);
      seen.add(f.toString('hex'));
      assert.deepEqual(s.open(f), text[0]);
    }
    assert.equal(seen.size, 100);
  });

  it('refuses to seal or open past the frame limit', () => {
    assert.equal(MAX_FRAMES, 2 ** 48);
    const { c, s } = pair(2);
    s.open(c.seal([Buffer.from('1')]));
    s.open(c.seal([Buffer.from('2')]));
    assert.throws(() => c.seal([Buffer.from('3')]), isChannelError);
    // A peer that keeps sending past the limit is refused too.
    const sender = new Session({
      version: 1,
      role: 'client',
      clientToNodeKey: Buffer.alloc(32, 1),
      nodeToClientKey: Buffer.alloc(32, 2),
      transcriptHash: Buffer.alloc(32),
    });
    const receiver = new Session({
      version: 1,
      role: 'node',
      clientToNodeKey: Buffer.alloc(32, 1),
      nodeToClientKey: Buffer.alloc(32, 2),
      transcriptHash: Buffer.alloc(32),
      maxFrames: 2,
    });
    receiver.open(sender.seal([]));
    receiver.open(sender.seal([]));
    assert.throws(() => receiver.open(sender.seal([])), isChannelError);
  });

  it('wipes the key bytes it was given and checks their size', () => {
    const c2s = randomBytes(32);
    const s2c = randomBytes(32);
    new Session({
      version: 1,
      role: 'client',
      clientToNodeKey: c2s,
      nodeToClientKey: s2c,
      transcriptHash: randomBytes(32),
    });
    assert.ok(c2s.every((b) => b === 0));
    assert.ok(s2c.every((b) => b === 0));
    assert.throws(
      () =>
        new Session({
          version: 1,
          role: 'client',
          clientToNodeKey: new Uint8Array(16),
          nodeToClientKey: new Uint8Array(32),
          transcriptHash: new Uint8Array(32),
        }),
      isChannelError,
    );
  });
});
