/**
 * X25519 (RFC 7748) with Node's own crypto (OpenSSL), for the node's side of the handshake: a
 * node answers every HELLO with a fresh key, and tweetnacl's pure-JS key took 0.82 ms of CPU
 * each, which a flood of HELLOs turned into a busy core. The bytes are the same as tweetnacl's
 * (`nacl.box.keyPair.fromSecretKey`, `nacl.scalarMult`): the same 32 random bytes give the same
 * public key and the same shared secret (test/handshake.test.ts checks both against tweetnacl
 * and RFC 7748's vectors), so the wire format does not change.
 *
 * Costs measured with Node 20 / OpenSSL 3.0 (CPU per call): generateKeyPair 52 µs (tweetnacl's key
 * 870 µs); sharedSecret 55 µs (tweetnacl 610 µs). Raw keys go in and out as JWK, not DER: OpenSSL
 * 3's DER decoders cost ~500 µs a key, which keyPairFromSeed (for tests' fixed randomness) pays.
 */
import {
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';

const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

export interface NativeKeyPair {
  readonly publicKey: Uint8Array;
  readonly privateKey: KeyObject;
}

/** A fresh random key pair (OpenSSL's randomness). */
export function generateKeyPair(): NativeKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { publicKey: rawPublic(publicKey), privateKey };
}

function rawPublic(key: KeyObject): Uint8Array {
  const x = key.export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new Error('X25519 public key without x');
  return new Uint8Array(Buffer.from(x, 'base64url'));
}

/** The key pair whose secret scalar is `seed` (32 bytes, clamped as RFC 7748 says). */
export function keyPairFromSeed(seed: Uint8Array): NativeKeyPair {
  if (seed.length !== 32) throw new Error(`an X25519 seed is 32 bytes, got ${seed.length}`);
  const der = Buffer.concat([PKCS8_PREFIX, seed]);
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  der.fill(0);
  return { publicKey: rawPublic(createPublicKey(privateKey)), privateKey };
}

/**
 * X25519(privateKey, peerPublic); null when the result is all zeros (a low-order public key:
 * the result would not be secret), which OpenSSL refuses to derive.
 */
export function sharedSecret(privateKey: KeyObject, peerPublic: Uint8Array): Uint8Array | null {
  if (peerPublic.length !== 32) return null;
  let publicKey: KeyObject;
  let shared: Buffer;
  try {
    publicKey = createPublicKey({
      key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(peerPublic).toString('base64url') },
      format: 'jwk',
    });
    shared = diffieHellman({ privateKey, publicKey });
  } catch {
    return null;
  }
  let acc = 0;
  for (const b of shared) acc |= b;
  return acc === 0 ? null : new Uint8Array(shared.buffer, shared.byteOffset, shared.length);
}
