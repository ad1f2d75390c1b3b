/**
 * pp-node handshake: mutual proof of a shared secret plus an ephemeral X25519 key exchange, after which
 * every frame goes through a Session (secure-channel.ts). Pure: the transport calls `receive` with each
 * whole message and sends what comes back; no sockets, no timers.
 *
 * Every message is fixed-size binary, starting with MAGIC = "PPN" 0x01 and a type byte; integers are
 * big-endian. A message of the wrong size, magic or type is an error before anything else is read, and
 * nothing is allocated from peer-supplied lengths (there are none). Layouts (bytes):
 *
 *   0x01 CLIENT_HELLO      C→S  73 = magic 4 | type 1 | minVersion u16 | maxVersion u16 | nonceC 32 | pubC 32
 *   0x02 SERVER_HELLO      S→C  71 = magic 4 | type 1 | version u16 | nonceS 32 | pubS 32
 *   0x03 CLIENT_PROOF      C→S  37 = magic 4 | type 1 | HMAC 32
 *   0x04 SERVER_PROOF      S→C  37 = magic 4 | type 1 | HMAC 32
 *   0x05 VERSION_MISMATCH  S→C   9 = magic 4 | type 1 | node minVersion u16 | node maxVersion u16
 *   0x06 REJECTED          S→C   8 = magic 4 | type 1 | reason u8 (1 bad secret, 2 rate-limited) | retry-after s u16
 *
 * Flow: C→S CLIENT_HELLO; S→C SERVER_HELLO (highest version both support) or VERSION_MISMATCH (then the
 * node closes; both sides report both ranges); C→S CLIENT_PROOF; S→C SERVER_PROOF if the client's proof
 * verifies, else REJECTED(1). The node proves itself only to a client that proved first, so a peer
 * without the secret never obtains a MAC from a node. REJECTED(2) (`rateLimitedMessage`) says that
 * the peer's address is rate-limited; today's node does not send it (it refuses at the HTTP upgrade
 * with 429, or closes with 4004, which clients retry: see protocol/rate-limit.ts).
 *
 * Keys (the secret itself never crosses the wire and is never used directly as a key):
 *   K_auth ‖ K_bind = HKDF-SHA-256(ikm = secret, salt = "pp-node auth v1", info = "pp-node handshake keys", 64)
 *   H               = SHA-256("pp-node transcript v1" ‖ CLIENT_HELLO ‖ SERVER_HELLO)   (both messages verbatim)
 *   client proof    = HMAC-SHA-256(K_auth, "pp-node client proof" ‖ H)
 *   server proof    = HMAC-SHA-256(K_auth, "pp-node server proof" ‖ H)  (a different label: no reflection)
 *   kC2S ‖ kS2C     = HKDF-SHA-256(ikm = X25519(ephemeral keys), salt = K_bind, info = "pp-node session keys v1" ‖ H, 64)
 * Both nonces, both ephemeral public keys and the version ranges are in H, so a replayed, reordered,
 * spliced or tampered handshake (including a downgraded version range) fails the proofs, and the
 * session keys are bound to both the secret and this transcript. An all-zero X25519 result (low-order
 * public key) is refused. The node makes its ephemeral key at the HELLO (Node's own X25519,
 * x25519.ts: the same bytes as the client's tweetnacl) and computes the shared X25519 secret only
 * after the client has proved itself.
 *
 * Notes for the transport:
 * - Drop any handshake message larger than MAX_HANDSHAKE_MESSAGE before calling `receive`.
 * - After `{error}`, send `send` if present, then close. A node counts every HELLO (the first message,
 *   whatever it is) in its HandshakeLimiter when it arrives, and gives the count back on success.
 * - VERSION_MISMATCH and REJECTED are unauthenticated (nothing to authenticate with yet): report them,
 *   but never retry automatically with a narrower version range on their word.
 * - The CLIENT_HELLO layout and the VERSION_MISMATCH / REJECTED layouts are frozen for all future versions
 *   so that version negotiation keeps working between old and new peers.
 * - With a shared secret, every holder of it can act as a node or a client; the proofs show knowledge of
 *   the cluster secret, not which machine is talking.
 */

import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import nacl from 'tweetnacl';
import { PPError } from '../errors.ts';
import { Session } from './secure-channel.ts';
import {
  generateKeyPair,
  keyPairFromSeed,
  type NativeKeyPair,
  sharedSecret as nativeSharedSecret,
} from './x25519.ts';

/**
 * 2: a client may ask a node for jobs back ('withdraw', answered by 'withdrawn'); a node says
 * how many of its workers are ready ('ncpus').
 * 3: a client may ask a node for its 'status' (answered by 'status-report'; `pp-node top`, `doctor`);
 * modules travel: definitions name packs, a node asks for those it lacks ('need', answered
 * by 'pack'); its welcome says its platform, arch and Node ABI.
 */
export const PROTOCOL_VERSION = 3;
/** The first protocol version with 'withdraw'/'withdrawn' and 'ncpus'. */
export const STEALING_PROTOCOL = 2;
/** The first protocol version with 'status'/'status-report' (a node of 2 would close on 'status'). */
export const STATUS_PROTOCOL = 3;
/** The first protocol version with 'need'/'pack' (modules sent to nodes). */
export const PACKAGES_PROTOCOL = 3;
export const MIN_PROTOCOL_VERSION = 1;

const MAGIC = [0x50, 0x50, 0x4e, 0x01] as const; // "PPN" 0x01
const HEADER = 5;
const NONCE = 32;
const KEY = 32;
const MAC = 32;

const CLIENT_HELLO = 0x01;
const SERVER_HELLO = 0x02;
const CLIENT_PROOF = 0x03;
const SERVER_PROOF = 0x04;
const VERSION_MISMATCH = 0x05;
const REJECTED = 0x06;

const SIZES: Record<number, number> = {
  [CLIENT_HELLO]: HEADER + 2 + 2 + NONCE + KEY,
  [SERVER_HELLO]: HEADER + 2 + NONCE + KEY,
  [CLIENT_PROOF]: HEADER + MAC,
  [SERVER_PROOF]: HEADER + MAC,
  [VERSION_MISMATCH]: HEADER + 2 + 2,
  [REJECTED]: HEADER + 1 + 2,
};

const NAMES: Record<number, string> = {
  [CLIENT_HELLO]: 'client HELLO',
  [SERVER_HELLO]: 'node HELLO',
  [CLIENT_PROOF]: 'client PROOF',
  [SERVER_PROOF]: 'node PROOF',
  [VERSION_MISMATCH]: 'VERSION_MISMATCH',
  [REJECTED]: 'REJECTED',
};

/** Max size of any handshake message: transports can drop anything larger before calling receive. */
export const MAX_HANDSHAKE_MESSAGE: number = Math.max(...Object.values(SIZES));

const AUTH_SALT = Buffer.from('pp-node auth v1');
const AUTH_INFO = Buffer.from('pp-node handshake keys');
const TRANSCRIPT_LABEL = Buffer.from('pp-node transcript v1');
const CLIENT_PROOF_LABEL = Buffer.from('pp-node client proof');
const SERVER_PROOF_LABEL = Buffer.from('pp-node server proof');
const SESSION_INFO_LABEL = Buffer.from('pp-node session keys v1');

/** Why a node sent REJECTED. */
export type RejectReason = 'bad-secret' | 'rate-limited' | 'unknown';
const REJECT_BAD_SECRET = 1;
const REJECT_RATE_LIMITED = 2;

export interface VersionRange {
  min: number;
  max: number;
}

export type HandshakeErrorCode = 'malformed' | 'version' | 'rejected' | 'bad-proof' | 'state';

export class HandshakeError extends PPError {
  readonly code: HandshakeErrorCode;
  /** For 'version': the range this side supports and the peer's (when the peer said it). */
  readonly localVersions?: VersionRange;
  readonly peerVersions?: VersionRange;
  /** For 'rejected': why the node said it rejected us, and when to retry (rate limiting). */
  readonly rejectReason?: RejectReason;
  readonly retryAfterMs?: number;

  constructor(
    code: HandshakeErrorCode,
    message: string,
    details: {
      localVersions?: VersionRange;
      peerVersions?: VersionRange;
      rejectReason?: RejectReason;
      retryAfterMs?: number;
    } = {},
  ) {
    super(message);
    this.code = code;
    if (details.localVersions) this.localVersions = details.localVersions;
    if (details.peerVersions) this.peerVersions = details.peerVersions;
    if (details.rejectReason) this.rejectReason = details.rejectReason;
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
  }
}

export interface HandshakeStep {
  send?: Uint8Array;
  session?: Session;
  error?: HandshakeError;
}

export interface HandshakeOptions {
  /** Narrow (or, in tests, move) the advertised version range; defaults MIN_PROTOCOL_VERSION..PROTOCOL_VERSION. */
  minVersion?: number;
  maxVersion?: number;
  /** Source of randomness for nonces and ephemeral keys (tests); default crypto.randomBytes. */
  random?: (n: number) => Uint8Array;
}

// ---------------------------------------------------------------------------------------------------
// Helpers

interface AuthKeys {
  auth: Buffer;
  bind: Buffer;
}

function deriveAuthKeys(secret: Uint8Array): AuthKeys {
  if (!(secret instanceof Uint8Array) || secret.length === 0) {
    throw new PPError(
      'pp-node refuses an empty secret: pass the cluster secret (see resolveSecret in src/secret.ts)',
    );
  }
  const okm = Buffer.from(hkdfSync('sha256', secret, AUTH_SALT, AUTH_INFO, 64));
  return { auth: okm.subarray(0, 32), bind: okm.subarray(32, 64) };
}

function versionRange(opts: HandshakeOptions): VersionRange {
  const min = opts.minVersion ?? MIN_PROTOCOL_VERSION;
  const max = opts.maxVersion ?? PROTOCOL_VERSION;
  for (const v of [min, max]) {
    if (!Number.isInteger(v) || v < 1 || v > 0xffff) {
      throw new PPError(`protocol versions must be integers in 1..65535, got ${v}`);
    }
  }
  if (min > max) throw new PPError(`minVersion ${min} is above maxVersion ${max}`);
  return { min, max };
}

function formatRange(r: VersionRange): string {
  return r.min === r.max ? `version ${r.min}` : `versions ${r.min}-${r.max}`;
}

function takeRandom(random: (n: number) => Uint8Array, n: number): Uint8Array {
  const bytes = random(n);
  if (!(bytes instanceof Uint8Array) || bytes.length !== n) {
    throw new PPError(`random(${n}) must return ${n} bytes`);
  }
  return bytes;
}

function header(type: number): Buffer {
  const m = Buffer.alloc(SIZES[type]!);
  m.set(MAGIC, 0);
  m[4] = type;
  return m;
}

function u16(m: Uint8Array, at: number): number {
  return (m[at]! << 8) | m[at + 1]!;
}

/** Checks magic, type and exact size; returns the type, or the error to report. */
function check(
  message: Uint8Array,
  expected: readonly number[],
  waitingFor: string,
): number | HandshakeError {
  if (!(message instanceof Uint8Array)) {
    return new HandshakeError('malformed', 'handshake message is not binary data');
  }
  if (message.length < HEADER || message.length > MAX_HANDSHAKE_MESSAGE) {
    return new HandshakeError(
      'malformed',
      `handshake message of ${message.length} bytes while waiting for ${waitingFor} (handshake messages are ${HEADER}-${MAX_HANDSHAKE_MESSAGE} bytes)`,
    );
  }
  for (let i = 0; i < MAGIC.length; i++) {
    if (message[i] !== MAGIC[i]) {
      return new HandshakeError(
        'malformed',
        `not a pp-node handshake message (wrong magic bytes) while waiting for ${waitingFor}: is the peer a pp-node of a compatible release?`,
      );
    }
  }
  const type = message[4]!;
  const size = SIZES[type];
  if (size === undefined) {
    return new HandshakeError('malformed', `unknown handshake message type 0x${type.toString(16)}`);
  }
  if (!expected.includes(type)) {
    return new HandshakeError('state', `unexpected ${NAMES[type]} while waiting for ${waitingFor}`);
  }
  if (message.length !== size) {
    return new HandshakeError(
      'malformed',
      `${NAMES[type]} of ${message.length} bytes (it is always ${size} bytes)`,
    );
  }
  return type;
}

function transcriptHash(clientHello: Uint8Array, serverHello: Uint8Array): Buffer {
  return createHash('sha256').update(TRANSCRIPT_LABEL).update(clientHello).update(serverHello).digest();
}

function proof(keys: AuthKeys, label: Buffer, transcript: Buffer): Buffer {
  return createHmac('sha256', keys.auth).update(label).update(transcript).digest();
}

/**
 * X25519 with tweetnacl (the client's side: one per connection); null for an all-zero result (the
 * peer sent a low-order point, so the result is not secret). The node uses Node's own (x25519.ts):
 * it answers every HELLO, so there its cost matters; both give the same bytes.
 */
function sharedSecret(secretKey: Uint8Array, peerPublic: Uint8Array): Uint8Array | null {
  const shared = nacl.scalarMult(secretKey, peerPublic);
  let acc = 0;
  for (const b of shared) acc |= b;
  return acc === 0 ? null : shared;
}

function makeSession(
  role: 'client' | 'node',
  version: number,
  keys: AuthKeys,
  shared: Uint8Array,
  transcript: Buffer,
): Session {
  const info = Buffer.concat([SESSION_INFO_LABEL, transcript]);
  const okm = new Uint8Array(hkdfSync('sha256', shared, keys.bind, info, 64));
  shared.fill(0);
  return new Session({
    version,
    role,
    clientToNodeKey: okm.subarray(0, 32),
    nodeToClientKey: okm.subarray(32, 64),
    transcriptHash: transcript,
  });
}

function encodeRejected(reason: number, retryAfterMs: number): Buffer {
  const m = header(REJECTED);
  m[5] = reason;
  m.writeUInt16BE(Math.min(0xffff, Math.max(0, Math.ceil(retryAfterMs / 1000))), 6);
  return m;
}

/**
 * REJECTED(rate-limited): what a node may send instead of SERVER_HELLO to a rate-limited address,
 * so that the client reports it instead of seeing a bare close (not sent today: see the top).
 */
export function rateLimitedMessage(retryAfterMs: number): Uint8Array {
  return encodeRejected(REJECT_RATE_LIMITED, retryAfterMs);
}

function rejectedError(message: Uint8Array): HandshakeError {
  const code = message[5]!;
  const retryAfterMs = u16(message, 6) * 1000;
  if (code === REJECT_BAD_SECRET) {
    return new HandshakeError(
      'rejected',
      "the node rejected our secret: this client and the node use different secrets. Copy the node's secret file " +
        '(~/.config/pp-node/secret) to this machine, or set the same PP_SECRET on both',
      { rejectReason: 'bad-secret' },
    );
  }
  if (code === REJECT_RATE_LIMITED) {
    return new HandshakeError(
      'rejected',
      `the node refused the connection: too many failed handshakes from this address; retry in ${retryAfterMs / 1000} s`,
      { rejectReason: 'rate-limited', retryAfterMs },
    );
  }
  return new HandshakeError('rejected', `the node rejected the handshake (reason code ${code})`, {
    rejectReason: 'unknown',
  });
}

// ---------------------------------------------------------------------------------------------------
// Client

type ClientState = 'new' | 'hello-sent' | 'proof-sent' | 'done' | 'failed';

export class ClientHandshake {
  readonly #keys: AuthKeys;
  readonly #range: VersionRange;
  readonly #random: (n: number) => Uint8Array;
  #state: ClientState = 'new';
  #hello: Buffer | null = null;
  #ephemeral: nacl.BoxKeyPair | null = null;
  #transcript: Buffer | null = null;
  #shared: Uint8Array | null = null;
  #version = 0;

  constructor(secret: Uint8Array, opts: HandshakeOptions = {}) {
    this.#range = versionRange(opts);
    this.#random = opts.random ?? randomBytes;
    this.#keys = deriveAuthKeys(secret);
  }

  /** The CLIENT_HELLO to send first. */
  start(): Uint8Array {
    if (this.#state !== 'new') throw new HandshakeError('state', 'ClientHandshake.start() called twice');
    const m = header(CLIENT_HELLO);
    m.writeUInt16BE(this.#range.min, 5);
    m.writeUInt16BE(this.#range.max, 7);
    m.set(takeRandom(this.#random, NONCE), 9);
    this.#ephemeral = nacl.box.keyPair.fromSecretKey(takeRandom(this.#random, KEY));
    m.set(this.#ephemeral.publicKey, 9 + NONCE);
    this.#hello = m;
    this.#state = 'hello-sent';
    return m;
  }

  receive(message: Uint8Array): HandshakeStep {
    switch (this.#state) {
      case 'new':
        return this.#fail(new HandshakeError('state', 'received a handshake message before start()'));
      case 'hello-sent':
        return this.#onHello(message);
      case 'proof-sent':
        return this.#onProof(message);
      default:
        return this.#fail(
          new HandshakeError('state', `handshake message received after the handshake ${this.#state}`),
        );
    }
  }

  #onHello(message: Uint8Array): HandshakeStep {
    const type = check(message, [SERVER_HELLO, VERSION_MISMATCH, REJECTED], "the node's HELLO");
    if (type instanceof HandshakeError) return this.#fail(type);
    if (type === REJECTED) return this.#fail(rejectedError(message));
    if (type === VERSION_MISMATCH) {
      const peer = { min: u16(message, 5), max: u16(message, 7) };
      if (peer.min === 0 || peer.min > peer.max) {
        return this.#fail(new HandshakeError('malformed', 'VERSION_MISMATCH with an invalid version range'));
      }
      return this.#fail(
        new HandshakeError(
          'version',
          `protocol version mismatch: this client supports ${formatRange(this.#range)}, the node supports ${formatRange(peer)}; upgrade the older side`,
          { localVersions: this.#range, peerVersions: peer },
        ),
      );
    }
    const version = u16(message, 5);
    if (version < this.#range.min || version > this.#range.max) {
      return this.#fail(
        new HandshakeError(
          'version',
          `the node chose protocol version ${version}, but this client supports ${formatRange(this.#range)}`,
          { localVersions: this.#range },
        ),
      );
    }
    const shared = sharedSecret(this.#ephemeral!.secretKey, message.subarray(5 + 2 + NONCE));
    if (!shared) return this.#fail(new HandshakeError('malformed', 'the node sent an invalid X25519 key'));
    this.#shared = shared;
    this.#version = version;
    this.#transcript = transcriptHash(this.#hello!, message);
    const m = header(CLIENT_PROOF);
    m.set(proof(this.#keys, CLIENT_PROOF_LABEL, this.#transcript), HEADER);
    this.#state = 'proof-sent';
    return { send: m };
  }

  #onProof(message: Uint8Array): HandshakeStep {
    const type = check(message, [SERVER_PROOF, REJECTED], "the node's PROOF");
    if (type instanceof HandshakeError) return this.#fail(type);
    if (type === REJECTED) return this.#fail(rejectedError(message));
    const expected = proof(this.#keys, SERVER_PROOF_LABEL, this.#transcript!);
    if (!timingSafeEqual(message.subarray(HEADER), expected)) {
      return this.#fail(
        new HandshakeError(
          'bad-proof',
          'node failed to prove it knows the secret: impostor or different secret',
        ),
      );
    }
    const session = makeSession('client', this.#version, this.#keys, this.#shared!, this.#transcript!);
    this.#shared = null;
    this.#finish('done');
    return { session };
  }

  #fail(error: HandshakeError): HandshakeStep {
    this.#finish('failed');
    return { error };
  }

  #finish(state: 'done' | 'failed'): void {
    this.#state = state;
    this.#ephemeral?.secretKey.fill(0);
    this.#shared?.fill(0);
    this.#keys.auth.fill(0);
    this.#keys.bind.fill(0);
  }
}

// ---------------------------------------------------------------------------------------------------
// Server (node)

type NodeState = 'await-hello' | 'await-proof' | 'done' | 'failed';

export class NodeHandshake {
  readonly #keys: AuthKeys;
  readonly #range: VersionRange;
  readonly #random: (n: number) => Uint8Array;
  /** Tests' randomness makes the key too; else OpenSSL makes it (faster than importing random bytes). */
  readonly #fixedRandom: boolean;
  #state: NodeState = 'await-hello';
  #ephemeral: NativeKeyPair | null = null;
  #clientPublic: Uint8Array | null = null;
  #transcript: Buffer | null = null;
  #version = 0;

  constructor(secret: Uint8Array, opts: HandshakeOptions = {}) {
    this.#range = versionRange(opts);
    this.#random = opts.random ?? randomBytes;
    this.#fixedRandom = opts.random !== undefined;
    this.#keys = deriveAuthKeys(secret);
  }

  receive(message: Uint8Array): HandshakeStep {
    switch (this.#state) {
      case 'await-hello':
        return this.#onHello(message);
      case 'await-proof':
        return this.#onProof(message);
      default:
        return this.#fail(
          new HandshakeError('state', `handshake message received after the handshake ${this.#state}`),
        );
    }
  }

  #onHello(message: Uint8Array): HandshakeStep {
    const type = check(message, [CLIENT_HELLO], "the client's HELLO");
    if (type instanceof HandshakeError) return this.#fail(type);
    const peer = { min: u16(message, 5), max: u16(message, 7) };
    if (peer.min === 0 || peer.min > peer.max) {
      return this.#fail(new HandshakeError('malformed', 'client HELLO with an invalid version range'));
    }
    const version = Math.min(peer.max, this.#range.max);
    if (version < Math.max(peer.min, this.#range.min)) {
      const reply = header(VERSION_MISMATCH);
      reply.writeUInt16BE(this.#range.min, 5);
      reply.writeUInt16BE(this.#range.max, 7);
      return this.#fail(
        new HandshakeError(
          'version',
          `protocol version mismatch: the client supports ${formatRange(peer)}, this node supports ${formatRange(this.#range)}; upgrade the older side`,
          { localVersions: this.#range, peerVersions: peer },
        ),
        reply,
      );
    }
    // Copy: the caller may reuse its buffer, and the transcript must be the bytes we hashed.
    const clientHello = Buffer.from(message);
    this.#clientPublic = clientHello.subarray(9 + NONCE);
    const reply = header(SERVER_HELLO);
    reply.writeUInt16BE(version, 5);
    reply.set(takeRandom(this.#random, NONCE), 7);
    if (this.#fixedRandom) {
      const seed = takeRandom(this.#random, KEY);
      this.#ephemeral = keyPairFromSeed(seed);
      seed.fill(0);
    } else {
      this.#ephemeral = generateKeyPair();
    }
    reply.set(this.#ephemeral.publicKey, 7 + NONCE);
    this.#transcript = transcriptHash(clientHello, reply);
    this.#version = version;
    this.#state = 'await-proof';
    return { send: reply };
  }

  #onProof(message: Uint8Array): HandshakeStep {
    const type = check(message, [CLIENT_PROOF], "the client's PROOF");
    if (type instanceof HandshakeError) return this.#fail(type);
    const expected = proof(this.#keys, CLIENT_PROOF_LABEL, this.#transcript!);
    if (!timingSafeEqual(message.subarray(HEADER), expected)) {
      return this.#fail(
        new HandshakeError(
          'bad-proof',
          'client failed to prove it knows the secret (different secret, or a tampered handshake)',
        ),
        encodeRejected(REJECT_BAD_SECRET, 0),
      );
    }
    // Only now, for a client that proved itself, spend the X25519.
    const shared = nativeSharedSecret(this.#ephemeral!.privateKey, this.#clientPublic!);
    if (!shared) return this.#fail(new HandshakeError('malformed', 'the client sent an invalid X25519 key'));
    const reply = header(SERVER_PROOF);
    reply.set(proof(this.#keys, SERVER_PROOF_LABEL, this.#transcript!), HEADER);
    const session = makeSession('node', this.#version, this.#keys, shared, this.#transcript!);
    this.#finish('done');
    return { send: reply, session };
  }

  #fail(error: HandshakeError, send?: Uint8Array): HandshakeStep {
    this.#finish('failed');
    return send ? { send, error } : { error };
  }

  #finish(state: 'done' | 'failed'): void {
    this.#state = state;
    // An OpenSSL key cannot be wiped from JavaScript: it is dropped (freed with its KeyObject).
    this.#ephemeral = null;
    this.#keys.auth.fill(0);
    this.#keys.bind.fill(0);
  }
}
