/**
 * Where the cluster secret comes from. There is no built-in default: without a secret, pp-node refuses
 * to run. Sources, first match wins: the `secret` option, the `secretFile` option, the PP_SECRET
 * environment variable, then the default file ($XDG_CONFIG_HOME/pp-node/secret or
 * ~/.config/pp-node/secret), which `create: true` makes when it is absent (256 random bits as 64 hex
 * characters). The secret is the text's UTF-8 bytes with trailing whitespace removed (wherever it comes
 * from, so a file copied into PP_SECRET or read into the option gives the same bytes).
 */

import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  type Stats,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { PPError } from './errors.ts';
import { homeDir, posixPermissions, secretOpenFlags } from './platform.ts';

/**
 * The secret is missing, empty, unreadable, too widely readable, or in a file or directory that someone
 * else could change; the message says how to fix it.
 */
export class SecretError extends PPError {}

export interface ResolvedSecret {
  secret: Uint8Array;
  /** 'option', 'PP_SECRET', or the path of the file it was read from. */
  source: string;
  /** True when this call created the default secret file. */
  created: boolean;
}

/** A secret file is a line of text; anything bigger is a wrong path, not a secret. */
const MAX_SECRET_FILE = 64 * 1024;

export function defaultSecretPath(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  // The XDG spec says relative values are invalid and must be ignored.
  if (xdg && isAbsolute(xdg)) return join(xdg, 'pp-node', 'secret');
  // The OS's home, as os.homedir() finds it (platform.ts): not HOME on Windows.
  return join(homeDir(env), '.config', 'pp-node', 'secret');
}

function howToGetOne(path: string): string {
  return `run \`npx pp-node\` once on this machine to create ${path}, then copy that file to every machine of the cluster (keep it mode 600), or set PP_SECRET`;
}

function isSpace(b: number): boolean {
  return b === 0x20 || (b >= 0x09 && b <= 0x0d);
}

/** A copy of bytes without trailing whitespace; null when nothing but whitespace is left. */
function clean(bytes: Uint8Array): Uint8Array | null {
  let end = bytes.length;
  while (end > 0 && isSpace(bytes[end - 1]!)) end--;
  return end === 0 ? null : Uint8Array.prototype.slice.call(bytes, 0, end);
}

function errorCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | null)?.code;
}

type FileRead = { kind: 'missing' } | { kind: 'empty' } | { kind: 'ok'; secret: Uint8Array };

/** A path as a shell word, for commands in messages (quoted only when it needs to be). */
function shellWord(path: string): string {
  return /^[\w@%+=:,./-]+$/.test(path) ? path : `'${path.replace(/'/g, `'\\''`)}'`;
}

function modeText(st: Stats): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

function fileKind(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a file';
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

function symlinkError(path: string): SecretError {
  return new SecretError(
    `secret file ${path} is a symbolic link, which pp-node does not follow (whoever can change the link would choose the secret): ` +
      'replace the link with a copy of the file it points to (mode 600), or point --secret-file / secretFile at that file',
  );
}

/** This process's user on POSIX, or undefined where files have no meaningful owner (Windows). */
function currentUid(): number | undefined {
  return posixPermissions() ? process.geteuid?.() : undefined;
}

/**
 * The directory holding the secret must be this user's (or root's) and not writable by group or others:
 * whoever can write to it can replace the secret file with one of their own (POSIX only).
 */
function checkDirectory(dir: string): void {
  if (!posixPermissions()) return;
  let st: Stats;
  try {
    st = statSync(dir); // follows links: what matters is the directory the file is really in
  } catch (e) {
    throw new SecretError(`cannot check directory ${dir} of the secret file (${errorCode(e) ?? e})`, {
      cause: e,
    });
  }
  const uid = currentUid();
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    throw new SecretError(
      `directory ${dir} of the secret file is owned by uid ${st.uid}, neither this user (uid ${uid}) nor root, ` +
        `so its owner could replace the secret: run \`sudo chown ${uid} ${shellWord(dir)}\` if it is yours, or keep the secret in a directory of your own`,
    );
  }
  if ((st.mode & 0o022) !== 0) {
    throw new SecretError(
      `directory ${dir} of the secret file is writable by group or others (mode ${modeText(st)}), ` +
        `so they could replace the secret: run \`chmod go-w ${shellWord(dir)}\``,
    );
  }
}

/**
 * Reads and cleans a secret file, refusing links, non-files (a FIFO is refused, not waited on), files
 * of another user, loose permissions, a directory others can write to, and oversized files. `fix` says
 * how to get a secret; `occupied` what to do when something that is not the secret is at the path.
 */
function readSecretFile(path: string, fix: string, occupied = fix): FileRead {
  const { flags, noFollow } = secretOpenFlags();
  let fd: number;
  try {
    // Without O_NOFOLLOW (Windows), look first: a race remains there, but not the plain case.
    if (!noFollow && isSymlink(path)) throw symlinkError(path);
    fd = openSync(path, flags);
  } catch (e) {
    if (e instanceof SecretError) throw e;
    const code = errorCode(e);
    if (code === 'ENOENT') return { kind: 'missing' };
    // O_NOFOLLOW on a link: ELOOP (Linux, macOS), EMLINK (FreeBSD).
    if ((code === 'ELOOP' || code === 'EMLINK') && isSymlink(path)) throw symlinkError(path);
    throw new SecretError(`cannot open secret file ${path} (${code ?? e}): ${fix}`, { cause: e });
  }
  try {
    // fstat the open file, not the path, so the checks apply to what we actually read.
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new SecretError(`secret file ${path} is not a regular file (${fileKind(st)}): ${occupied}`);
    const uid = currentUid();
    if (uid !== undefined && st.uid !== uid) {
      throw new SecretError(
        `secret file ${path} is owned by uid ${st.uid}, not by this user (uid ${uid}), so someone else chose its content: ` +
          `run \`sudo chown ${uid} ${shellWord(path)}\` if it is yours; if not, ${occupied}`,
      );
    }
    if (posixPermissions() && (st.mode & 0o077) !== 0) {
      throw new SecretError(
        `secret file ${path} is accessible by group or others (mode ${modeText(st)}): run \`chmod 600 ${shellWord(path)}\``,
      );
    }
    checkDirectory(dirname(path));
    const buf = Buffer.alloc(MAX_SECRET_FILE + 1);
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
      if (n > MAX_SECRET_FILE) {
        throw new SecretError(
          `secret file ${path} is larger than ${MAX_SECRET_FILE} bytes: is it the right file? ${fix}`,
        );
      }
    }
    const secret = clean(buf.subarray(0, n));
    buf.fill(0);
    return secret ? { kind: 'ok', secret } : { kind: 'empty' };
  } finally {
    closeSync(fd);
  }
}

function emptyFileError(path: string): SecretError {
  return new SecretError(
    `secret file ${path} is empty or only whitespace: write the cluster's secret into it, or delete it and ${howToGetOne(path)}`,
  );
}

function fromText(value: string | Uint8Array, what: string, env: NodeJS.ProcessEnv): Uint8Array {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  const secret = clean(bytes);
  if (!secret) {
    throw new SecretError(
      `${what} is empty or only whitespace: pp-node never runs without a secret. Pass the cluster's secret, or ${howToGetOne(defaultSecretPath(env))}`,
    );
  }
  return secret;
}

/** Blocks the thread for ms (only used while another process finishes writing the secret file). */
function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Creates the default secret file so that concurrent creators agree: the secret is written and synced
 * to a private temporary file (O_EXCL, 0600), then hard-linked to its final name, which fails with
 * EEXIST if another process got there first; the loser then reads the winner's complete file.
 */
function createSecretFile(path: string): ResolvedSecret {
  const dir = dirname(path);
  const fix = howToGetOne(path);
  try {
    mkdirSync(dirname(dir), { recursive: true });
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if (errorCode(e) !== 'EEXIST') {
      throw new SecretError(`cannot create directory ${dir} for the secret (${errorCode(e) ?? e})`, {
        cause: e,
      });
    }
  }
  // Never write a secret where someone else could swap it (the read-back below checks again).
  checkDirectory(dir);
  const text = Buffer.from(`${randomBytes(32).toString('hex')}\n`);
  let created = false;
  const tmp = join(dir, `.secret.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    writeNewFile(tmp, text);
    try {
      linkSync(tmp, path);
      created = true;
    } catch (e) {
      const code = errorCode(e);
      if (code === 'EEXIST') {
        // Another process created it first: use theirs.
      } else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
        // A filesystem without hard links: create the final file exclusively and write it in place.
        try {
          writeNewFile(path, text);
          created = true;
        } catch (e2) {
          if (errorCode(e2) !== 'EEXIST') throw e2;
        }
      } else {
        throw e;
      }
    }
  } catch (e) {
    if (e instanceof SecretError) throw e;
    throw new SecretError(`cannot create secret file ${path} (${errorCode(e) ?? e})`, { cause: e });
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // Already gone (or never created).
    }
    text.fill(0);
  }
  // Read back what is on disk: ours, or the race winner's. Only the no-hard-link fallback can show a
  // file that exists but is not written yet, so give a racing writer a moment.
  for (let attempt = 0; ; attempt++) {
    const read = readSecretFile(path, fix);
    if (read.kind === 'ok') return { secret: read.secret, source: path, created };
    if (read.kind === 'missing')
      throw new SecretError(`secret file ${path} vanished while being created: ${fix}`);
    if (created || attempt >= 40) throw emptyFileError(path);
    sleepSync(50);
  }
}

function writeNewFile(path: string, data: Buffer): void {
  const fd = openSync(path, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600); // the umask can only remove bits, but be explicit
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Finds the cluster secret. Order: `secret` option, `secretFile`, PP_SECRET, default file (created when
 * `create` is true and it does not exist). Throws SecretError (a PPError) saying what to do when there
 * is none, when it is empty or readable by others, or when someone else could have chosen it (POSIX: a
 * link, not a regular file, another user's file, or a directory that is not ours or is writable by others).
 */
export function resolveSecret(opts: {
  secret?: string | Uint8Array;
  secretFile?: string;
  env?: NodeJS.ProcessEnv;
  create?: boolean;
}): ResolvedSecret {
  const env = opts.env ?? process.env;
  if (opts.secret !== undefined) {
    return { secret: fromText(opts.secret, 'the `secret` option', env), source: 'option', created: false };
  }
  if (opts.secretFile !== undefined) {
    if (opts.secretFile === '') throw new SecretError('the `secretFile` option is an empty path');
    const path = resolve(opts.secretFile);
    const fix = `point secretFile at the cluster's secret file, or ${howToGetOne(defaultSecretPath(env))}`;
    const read = readSecretFile(path, fix);
    if (read.kind === 'missing') throw new SecretError(`secret file ${path} does not exist: ${fix}`);
    if (read.kind === 'empty') throw emptyFileError(path);
    return { secret: read.secret, source: path, created: false };
  }
  if (env.PP_SECRET !== undefined) {
    return { secret: fromText(env.PP_SECRET, 'PP_SECRET', env), source: 'PP_SECRET', created: false };
  }
  const path = defaultSecretPath(env);
  const existing = readSecretFile(path, howToGetOne(path), `remove it, then ${howToGetOne(path)}`);
  if (existing.kind === 'ok') return { secret: existing.secret, source: path, created: false };
  if (existing.kind === 'empty') throw emptyFileError(path);
  if (!opts.create) throw new SecretError(`no secret: ${howToGetOne(path)}`);
  return createSecretFile(path);
}
