/**
 * Client side of module shipping: every module a job names that is not one of Node's own
 * (a package, or a file of the user's project) is bundled here, where it resolves, into one
 * ES module with everything it imports (esbuild): a *pack*, named by the hash of its bytes.
 * Workers load packs from the module cache (store.ts); a node that lacks one asks for it once.
 *
 * Resolution is the client's: from the folder of the file that called submit (its
 * node_modules, the package's `exports`, TypeScript for local files), else from the working
 * directory. Whatever cannot travel is an error here, at submit: a specifier that does not
 * resolve, a pack over `maxModuleBytes`, and (checked by the server against its nodes) a
 * native addon for a node of another platform, arch or Node ABI.
 */
import { existsSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSync, type Message as EsbuildMessage } from 'esbuild';
import { PPError } from '../errors.ts';
import { type PackData, type PackFile, packHash } from './store.ts';

/** Default `maxModuleBytes`: room for big real packages bundled whole (mathjs is about 2 MiB). */
export const DEFAULT_MAX_MODULE_BYTES = 32 * 1024 * 1024;

/** A module that cannot travel, said at submit. */
export class ModuleError extends PPError {
  override name = 'ModuleError';
  constructor(
    message: string,
    /** The specifier as the job names it. */
    readonly specifier: string,
  ) {
    super(message);
  }
}

/** A module bundled for travel. */
export interface Pack extends PackData {
  /** The specifier as the job names it. */
  readonly specifier: string;
  /** Where it was resolved from. */
  readonly from: string;
  /** Total bytes of its files. */
  readonly bytes: number;
  /** Packages of it that hold native addons (`.node` files, or built by node-gyp): they load only on the same platform, arch and Node ABI. */
  readonly native: readonly string[];
  /** How long bundling took, ms. */
  readonly buildMs: number;
}

const BUILTINS = new Set(builtinModules);

/** Node's own modules ('node:crypto', 'fs/promises') load everywhere and never travel. */
export function isBuiltinSpecifier(specifier: string): boolean {
  return specifier.startsWith('node:') || BUILTINS.has(specifier);
}

function isPathSpecifier(s: string): boolean {
  return /^(\.{1,2}([\\/]|$)|\/|file:|[A-Za-z]:[\\/])/.test(s);
}

const byKey = new Map<string, Pack>();
const byHash = new Map<string, Pack>();

/** A pack this process built, by its hash (what a node asks for). */
export function packByHash(hash: string): Pack | undefined {
  return byHash.get(hash);
}

/** pp-node's own folder: frames inside it are not the caller. */
const OWN_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const OWN_DIRS = [join(OWN_ROOT, 'src') + sep, join(OWN_ROOT, 'dist') + sep];

/** The folder of the file that called into pp-node (submit), or undefined. */
export function callerDir(): string | undefined {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  let sites: NodeJS.CallSite[] = [];
  try {
    Error.stackTraceLimit = 40;
    Error.prepareStackTrace = (_e, s) => s;
    const holder: { stack?: unknown } = {};
    Error.captureStackTrace(holder);
    sites = holder.stack as NodeJS.CallSite[];
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = limit;
  }
  for (const site of sites) {
    let file = site.getFileName();
    if (!file || file.startsWith('node:')) continue;
    if (file.startsWith('file:')) {
      try {
        file = fileURLToPath(file);
      } catch {
        continue;
      }
    }
    if (!isAbsolute(file) || OWN_DIRS.some((d) => file!.startsWith(d))) continue;
    return dirname(file);
  }
  return undefined;
}

/**
 * The pack for `specifier` as resolved from `fromDir` (then the working directory), built once
 * per process. Throws a {@link ModuleError} that says what to do when it cannot travel.
 */
export function packModule(specifier: string, fromDir: string | undefined, maxBytes: number): Pack {
  const cwd = process.cwd();
  const bases = fromDir && fromDir !== cwd ? [fromDir, cwd] : [cwd];
  for (const base of bases) {
    const hit = byKey.get(`${maxBytes}\0${base}\0${specifier}`);
    if (hit) return hit;
  }
  let target: string | undefined;
  let base = bases[0]!;
  if (isPathSpecifier(specifier)) {
    const path = specifier.startsWith('file:') ? fileURLToPath(specifier) : specifier;
    const tried: string[] = [];
    for (const b of bases) {
      const full = resolve(b, path);
      tried.push(full);
      if (existsSync(full) && statSync(full).isFile()) {
        target = full;
        base = b;
        break;
      }
    }
    if (!target) {
      throw new ModuleError(
        `module '${specifier}' does not resolve: no file ${tried.join(' nor ')}. Local modules are relative to the file that calls submit, or to the working directory.`,
        specifier,
      );
    }
  }
  let firstError: EsbuildMessage[] | undefined;
  for (const b of target ? [base] : bases) {
    const started = performance.now();
    let result: ReturnType<typeof bundle>;
    try {
      result = bundle(target ?? specifier, b);
    } catch (error) {
      const errors = (error as { errors?: EsbuildMessage[] }).errors;
      if (!errors) throw error;
      firstError ??= errors;
      if (!errors.some((e) => /Could not resolve/.test(e.text))) break;
      continue;
    }
    const buildMs = performance.now() - started;
    const bytes = result.files.reduce((n, f) => n + f.bytes.byteLength, 0);
    if (bytes > maxBytes) {
      throw new ModuleError(
        `module '${specifier}' is ${mib(bytes)} bundled, over maxModuleBytes (${mib(maxBytes)}): ` +
          `pass a larger maxModuleBytes to new Server(), or import only the part of it the job uses (e.g. 'pkg/sub')`,
        specifier,
      );
    }
    const hash = packHash('index.mjs', result.files);
    const pack: Pack = Object.freeze({
      hash,
      entry: 'index.mjs',
      files: result.files,
      specifier,
      from: b,
      bytes,
      native: result.native,
      buildMs,
    });
    byKey.set(`${maxBytes}\0${b}\0${specifier}`, pack);
    byHash.set(hash, pack);
    return pack;
  }
  const text = (firstError ?? []).map((e) => e.text).join('; ');
  if (/Could not resolve/.test(text) && !target) {
    throw new ModuleError(
      `module '${specifier}' does not resolve here (from ${bases.join(' or ')}): install it in your project ` +
        `(npm install ${packageName(specifier)}) or fix its name; pp-node sends it to the nodes from here`,
      specifier,
    );
  }
  throw new ModuleError(`module '${specifier}' cannot be bundled to travel: ${text}`, specifier);
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

function mib(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

// Bundled CommonJS code calls `require` for Node's own modules and native addons: an ES
// module has none, so the pack makes one (relative to itself, where copied addons lie).
const BANNER =
  "import { createRequire as __ppNodeCreateRequire } from 'node:module';\n" +
  'const require = __ppNodeCreateRequire(import.meta.url);';

function bundle(what: string, base: string): { files: PackFile[]; native: string[] } {
  const result = buildSync({
    stdin: {
      // The module's namespace, as `import()` would give it (see runtime.ts).
      contents: `import * as ns from ${JSON.stringify(what)};\nexport default ns;\n`,
      resolveDir: base,
      sourcefile: 'pp-node-entry.mjs',
      loader: 'js',
    },
    absWorkingDir: base,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    outdir: '/pp-node-pack',
    entryNames: 'index',
    outExtension: { '.js': '.mjs' },
    loader: { '.node': 'copy' },
    banner: { js: BANNER },
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
  });
  const files: PackFile[] = [];
  const native = new Set<string>();
  for (const f of result.outputFiles) {
    const path = relative('/pp-node-pack', f.path).split(sep).join('/');
    files.push({ path, bytes: f.contents });
  }
  for (const input of Object.keys(result.metafile.inputs)) {
    const abs = resolve(base, input);
    const root = packageRoot(abs);
    if (input.endsWith('.node')) native.add(root ?? input);
    else if (root && !native.has(root) && existsSync(join(root, 'binding.gyp'))) native.add(root);
  }
  return { files, native: [...native].map((r) => packageLabel(r)) };
}

/** `/x/node_modules/@s/p/lib/a.js` → `/x/node_modules/@s/p`. */
function packageRoot(file: string): string | undefined {
  const parts = file.split(sep);
  const i = parts.lastIndexOf('node_modules');
  if (i < 0 || i + 1 >= parts.length) return undefined;
  const n = parts[i + 1]!.startsWith('@') ? 3 : 2;
  return parts.slice(0, i + n).join(sep);
}

function packageLabel(root: string): string {
  const parts = root.split(sep);
  const i = parts.lastIndexOf('node_modules');
  return i < 0 ? root : parts.slice(i + 1).join('/');
}

/** The packs of one function's modules: `hashes[i]` for its module i ('' for Node's own). */
export interface ModulePlan {
  readonly hashes: string[];
  readonly packs: Pack[];
  /** Those with native addons. */
  readonly native: Pack[];
}

/**
 * Packs for a function's modules, or undefined when none travels: Node's own, and those in
 * `installed` (loaded from each worker's own installation, as before modules travelled).
 */
export function planModules(
  modules: ReadonlyArray<readonly [string, string]>,
  fromDir: string | undefined,
  maxBytes: number,
  installed: ReadonlySet<string> = new Set(),
): ModulePlan | undefined {
  const stays = (s: string) => isBuiltinSpecifier(s) || installed.has(s);
  if (modules.every(([, s]) => stays(s))) return undefined;
  const hashes: string[] = [];
  const packs: Pack[] = [];
  for (const [, s] of modules) {
    if (stays(s)) {
      hashes.push('');
      continue;
    }
    const pack = packModule(s, fromDir, maxBytes);
    hashes.push(pack.hash);
    packs.push(pack);
  }
  return { hashes, packs, native: packs.filter((p) => p.native.length > 0) };
}
