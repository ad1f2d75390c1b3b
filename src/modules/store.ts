/**
 * The module cache: packs (bundled modules, see pack.ts) stored on disk by content hash, per
 * user, under `~/.cache/pp-node/modules/<hash>/` (mode 0700). A client writes the packs its
 * own workers load; a node writes the packs its clients send. Each entry is verified against
 * its hash whenever a worker loads it, and the least recently used entries are evicted when
 * the cache grows past its cap.
 *
 * Nothing in a received pack names a place outside its entry: every path is checked (relative,
 * no `..`, no empty or dot segments, no backslashes or NUL), files are written by this code
 * (never links), and loading refuses an entry holding a symbolic link or anything but files
 * and folders.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PPError } from '../errors.ts';

/** One file of a pack: a relative path inside the entry, and its bytes. */
export interface PackFile {
  readonly path: string;
  readonly bytes: Uint8Array;
}

/** What travels: a module's files, the one to import, and the hash of both. */
export interface PackData {
  readonly hash: string;
  /** Path of the ES module to import, one of the files. */
  readonly entry: string;
  readonly files: readonly PackFile[];
}

/** Default cap of a cache folder's packs, in MiB (`--cache-max-mb`). */
export const DEFAULT_CACHE_MAX_MB = 1024;
const MANIFEST = '.pp-pack.json';
const HASH_RE = /^[0-9a-f]{64}$/;

/** `~/.cache/pp-node` (XDG_CACHE_HOME when set), or PP_NODE_CACHE_DIR. */
export function defaultCacheDir(): string {
  const env = process.env.PP_NODE_CACHE_DIR;
  if (env) return env;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.cache'), 'pp-node');
}

/** Content hash of a pack: every part length-prefixed, files in path order. */
export function packHash(entry: string, files: readonly PackFile[]): string {
  const h = createHash('sha256');
  const part = (data: string | Uint8Array) => {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    h.update(`${bytes.byteLength}:`);
    h.update(bytes);
  };
  part('pp-node/pack/1');
  part(entry);
  const sorted = [...files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const f of sorted) {
    part(f.path);
    part(f.bytes);
  }
  return h.digest('hex');
}

/** Why `path` may not name a file inside a pack entry, or undefined when it may. */
export function badPackPath(path: string): string | undefined {
  if (typeof path !== 'string' || path.length === 0 || path.length > 1024) return 'empty or too long';
  if (path.includes('\0') || path.includes('\\')) return 'contains NUL or a backslash';
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return 'is absolute';
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') return `has a '${seg}' segment`;
  }
  if (path === MANIFEST) return 'is reserved';
  return undefined;
}

/** Checks a received pack before anything is written: paths, entry, hash. Throws what is wrong. */
export function checkPack(pack: PackData): void {
  if (!HASH_RE.test(pack.hash)) throw new PPError(`module pack: '${pack.hash.slice(0, 80)}' is not a hash`);
  const seen = new Set<string>();
  for (const f of pack.files) {
    const bad = badPackPath(f.path);
    if (bad)
      throw new PPError(`module pack ${pack.hash.slice(0, 12)}: path ${JSON.stringify(f.path)} ${bad}`);
    // A file may not also be a folder of another (a/b and a/b/c).
    if (seen.has(f.path)) throw new PPError(`module pack ${pack.hash.slice(0, 12)}: ${f.path} twice`);
    seen.add(f.path);
  }
  for (const p of seen) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      if (seen.has(parts.slice(0, i).join('/')))
        throw new PPError(`module pack ${pack.hash.slice(0, 12)}: ${p} is inside a file`);
    }
  }
  if (!seen.has(pack.entry)) throw new PPError(`module pack ${pack.hash.slice(0, 12)}: no entry file`);
  const actual = packHash(pack.entry, pack.files);
  if (actual !== pack.hash)
    throw new PPError(`module pack ${pack.hash.slice(0, 12)}: its content hashes to ${actual.slice(0, 12)}`);
}

/**
 * Makes `dir` (and its parents) if needed; it must be a folder of ours, and is made 0700
 * (the cache holds code that workers run: nobody else may write, or read, it).
 */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory())
    throw new PPError(`cache folder ${dir} is not a folder: remove it or pass --cache-dir`);
  if (process.platform === 'win32') return;
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) {
    throw new PPError(
      `cache folder ${dir} is owned by uid ${st.uid}, not you (${uid}): remove it, or pass another --cache-dir`,
    );
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

interface Manifest {
  entry: string;
  files: string[];
  bytes: number;
}

/** The packs of one cache folder. */
export class PackStore {
  /** Where entries live: `<cacheDir>/modules`. */
  readonly dir: string;
  private ready = false;

  constructor(
    /** The cache folder (`--cache-dir`). */
    readonly cacheDir: string = defaultCacheDir(),
    /** Cap on the packs' bytes (`--cache-max-mb`); least recently used entries go first. */
    readonly maxBytes: number = DEFAULT_CACHE_MAX_MB * 1024 * 1024,
  ) {
    this.dir = join(cacheDir, 'modules');
  }

  private prepare(): void {
    if (this.ready) return;
    ensurePrivateDir(this.cacheDir);
    ensurePrivateDir(this.dir);
    this.ready = true;
  }

  private entryDir(hash: string): string {
    if (!HASH_RE.test(hash)) throw new PPError(`'${hash.slice(0, 80)}' is not a module hash`);
    return join(this.dir, hash);
  }

  /** True when the entry is stored (its use counts as a use: see evict). */
  has(hash: string): boolean {
    const manifest = join(this.entryDir(hash), MANIFEST);
    try {
      const now = new Date();
      utimesSync(manifest, now, now);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stores a pack (checked first: see checkPack), written to a temporary folder and renamed
   * into place, so a reader never sees half an entry; then evicts past the cap, sparing
   * `pinned` and this pack. Returns false if it was there already.
   */
  put(pack: PackData, pinned: ReadonlySet<string> = new Set()): boolean {
    checkPack(pack);
    this.prepare();
    if (this.has(pack.hash)) return false;
    const tmp = join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`);
    mkdirSync(tmp, { mode: 0o700 });
    try {
      let bytes = 0;
      for (const f of pack.files) {
        const target = join(tmp, ...f.path.split('/'));
        mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
        writeFileSync(target, f.bytes, { mode: 0o600, flag: 'wx' });
        bytes += f.bytes.byteLength;
      }
      const manifest: Manifest = { entry: pack.entry, files: pack.files.map((f) => f.path), bytes };
      writeFileSync(join(tmp, MANIFEST), JSON.stringify(manifest), { mode: 0o600, flag: 'wx' });
      try {
        renameSync(tmp, this.entryDir(pack.hash));
      } catch (error) {
        // Written meanwhile by another process (same content, by its hash): fine.
        if (!this.has(pack.hash)) throw error;
        rmSync(tmp, { recursive: true, force: true });
        return false;
      }
    } catch (error) {
      rmSync(tmp, { recursive: true, force: true });
      throw error;
    }
    this.evict(new Set([...pinned, pack.hash]));
    return true;
  }

  /**
   * The file URL of a stored pack's entry, after checking the entry against its hash: the
   * files the manifest lists, each a regular file reached through folders only (no link),
   * hashing to the folder's name. Throws what is wrong; a stored entry that fails is removed.
   */
  verifiedEntry(hash: string): string {
    const dir = this.entryDir(hash);
    let manifest: Manifest;
    try {
      manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as Manifest;
    } catch {
      throw new PPError(
        `module ${hash.slice(0, 12)} is not in the cache ${this.dir} (evicted? raise --cache-max-mb)`,
      );
    }
    const files: PackFile[] = [];
    try {
      if (!Array.isArray(manifest.files) || typeof manifest.entry !== 'string')
        throw new PPError('its manifest is malformed');
      for (const path of manifest.files) {
        const bad = badPackPath(path);
        if (bad) throw new PPError(`path ${JSON.stringify(path)} ${bad}`);
        let at = dir;
        for (const seg of path.split('/')) {
          at = join(at, seg);
          const st = lstatSync(at);
          if (st.isSymbolicLink()) throw new PPError(`${path} goes through a symbolic link`);
        }
        if (!lstatSync(at).isFile()) throw new PPError(`${path} is not a regular file`);
        files.push({ path, bytes: readFileSync(at) });
      }
      if (packHash(manifest.entry, files) !== hash) throw new PPError('its files do not match its hash');
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw new PPError(
        `module ${hash.slice(0, 12)} in the cache was damaged and removed: ${(error as Error).message}`,
      );
    }
    const now = new Date();
    try {
      utimesSync(join(dir, MANIFEST), now, now);
    } catch {
      // Read-only cache: loading still works; only its LRU order is not updated.
    }
    return pathToFileURL(join(dir, ...manifest.entry.split('/'))).href;
  }

  /** Entries and their sizes, least recently used first. */
  entries(): Array<{ hash: string; bytes: number; usedMs: number }> {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const out: Array<{ hash: string; bytes: number; usedMs: number }> = [];
    for (const name of names) {
      if (!HASH_RE.test(name)) continue;
      try {
        const file = join(this.dir, name, MANIFEST);
        const m = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
        out.push({ hash: name, bytes: Number(m.bytes) || 0, usedMs: statSync(file).mtimeMs });
      } catch {
        // Half-removed or foreign: skipped.
      }
    }
    return out.sort((a, b) => a.usedMs - b.usedMs);
  }

  /** Removes least recently used entries until the cache is within its cap; returns those removed. */
  evict(pinned: ReadonlySet<string> = new Set()): string[] {
    const all = this.entries();
    let total = 0;
    for (const e of all) total += e.bytes;
    const removed: string[] = [];
    for (const e of all) {
      if (total <= this.maxBytes) break;
      if (pinned.has(e.hash)) continue;
      rmSync(join(this.dir, e.hash), { recursive: true, force: true });
      total -= e.bytes;
      removed.push(e.hash);
    }
    return removed;
  }
}
