/**
 * Weak secrets (issue 13, item 10). A client proves the secret first to whoever answers, and the
 * proof is an HMAC under a key derived from the secret without salt or work factor: anyone who
 * poses as a node (or records a handshake) can test guesses offline, at ~100,000 a second on one
 * core (far more on a GPU). A secret made of 256 random bits is out of reach; a human password is
 * not. So clients and nodes refuse a weak secret unless told otherwise (`allowWeakSecret`,
 * `--allow-weak-secret`).
 *
 * Weak means: fewer than MIN_SECRET_BYTES bytes, or an estimated strength below
 * MIN_SECRET_BITS. The estimate (estimateSecretBits) is characters × log2(alphabet), where the
 * alphabet is the sum of the character classes the secret uses (hex digits only: 16; else
 * lowercase 26, uppercase 26, digits 10, other ASCII 33, anything else 128), and where a
 * character that repeats the one before or steps by one from it (aaa, abc, 321), and a secret
 * that is a shorter one repeated (abcabc), count once. It is an upper bound: dictionary words
 * count as random letters, so it catches short and patterned secrets, not a guessable phrase.
 */
import { randomBytes } from 'node:crypto';
import { PPError } from './errors.ts';
import { resolveSecret } from './secret.ts';

/** Fewer bytes than this is weak, whatever they are. */
export const MIN_SECRET_BYTES = 16;
/** Below this estimate (estimateSecretBits) is weak: 2^80 guesses are beyond any attacker's reach offline. */
export const MIN_SECRET_BITS = 80;

/** The secret is too weak and weak secrets were not allowed; the message says how to make a strong one. */
export class WeakSecretError extends PPError {}

/** A new secret: 256 random bits as 64 hex characters (what the default secret file holds). */
export function generateSecret(): string {
  return randomBytes(32).toString('hex');
}

function classOf(b: number): 'lower' | 'upper' | 'digit' | 'ascii' | 'other' {
  if (b >= 0x61 && b <= 0x7a) return 'lower';
  if (b >= 0x41 && b <= 0x5a) return 'upper';
  if (b >= 0x30 && b <= 0x39) return 'digit';
  if (b >= 0x20 && b < 0x7f) return 'ascii';
  return 'other';
}

const CLASS_SIZE = { lower: 26, upper: 26, digit: 10, ascii: 33, other: 128 } as const;

/** The shortest unit the secret is a repetition of (the secret itself when it is none). */
function unit(bytes: Uint8Array): Uint8Array {
  const n = bytes.length;
  for (let p = 1; p <= n / 2; p++) {
    if (n % p !== 0) continue;
    let periodic = true;
    for (let i = p; i < n && periodic; i++) periodic = bytes[i] === bytes[i - p];
    if (periodic) return bytes.subarray(0, p);
  }
  return bytes;
}

/** The estimate described at the top of this file, in bits. */
export function estimateSecretBits(secret: Uint8Array): number {
  const bytes = unit(secret);
  if (bytes.length === 0) return 0;
  const hexOnly = bytes.every(
    (b) => (b >= 0x30 && b <= 0x39) || (b >= 0x61 && b <= 0x66) || (b >= 0x41 && b <= 0x46),
  );
  let alphabet = 16;
  if (!hexOnly) {
    const used = new Set(Array.from(bytes, classOf));
    alphabet = 0;
    for (const c of used) alphabet += CLASS_SIZE[c];
  }
  let counted = 1;
  for (let i = 1; i < bytes.length; i++) {
    const step = bytes[i]! - bytes[i - 1]!;
    if (step < -1 || step > 1) counted++;
  }
  return counted * Math.log2(alphabet);
}

/** Why the secret is weak, or null when it is not. */
export function secretWeakness(secret: Uint8Array): string | null {
  if (secret.length < MIN_SECRET_BYTES) return `it is only ${secret.length} bytes long`;
  const bits = estimateSecretBits(secret);
  if (bits < MIN_SECRET_BITS)
    return `its estimated strength is ${Math.floor(bits)} bits (repeats and runs like aaa or 123 count once)`;
  return null;
}

/**
 * Throws WeakSecretError when the secret is weak, unless `allowWeak`; returns a warning to log
 * when it is weak and allowed, else null. `source` says where it came from; `allowHow` how to
 * allow it anyway (the option or flag of the caller).
 */
export function checkSecretStrength(
  secret: Uint8Array,
  opts: { allowWeak?: boolean; source: string; allowHow: string },
): string | null {
  const why = secretWeakness(secret);
  if (!why) return null;
  const risk =
    'anyone who poses as a node, or records a handshake, can guess it offline (a client proves the secret first)';
  if (opts.allowWeak) return `the pp-node secret (${opts.source}) is weak: ${why}; ${risk}`;
  throw new WeakSecretError(
    `the pp-node secret (${opts.source}) is too weak: ${why}; ${risk}. Use a secret of ${MIN_SECRET_BITS}+ bits: ` +
      '`npx pp-node secret` prints a new one (256 random bits) to put in ~/.config/pp-node/secret (mode 600) or PP_SECRET ' +
      `on every machine; or, knowing the risk, ${opts.allowHow}`,
  );
}

/**
 * The secret a command-line tool (`ls`, `top`) uses to ask nodes: resolved like the node's
 * (never created), held to the strength rule unless `allowWeak`, a warning written to stderr
 * as `pp-node <command>: ...` when it is weak and allowed. Throws what resolveSecret or
 * checkSecretStrength throws.
 */
export function cliSecret(
  command: string,
  opts: { secretFile: string | undefined; allowWeakSecret: boolean },
): Uint8Array {
  const resolved = resolveSecret({ secretFile: opts.secretFile, create: false });
  const weak = checkSecretStrength(resolved.secret, {
    allowWeak: opts.allowWeakSecret,
    source: resolved.source,
    allowHow: 'add --allow-weak-secret',
  });
  if (weak) process.stderr.write(`pp-node ${command}: ${weak}\n`);
  return resolved.secret;
}
