/**
 * The client-side packages of the modules-travel tests (issue 16; test/packages.test.ts and
 * test/packages-lab.test.ts): nanoid (ESM-only) and qs (CommonJS with dependencies of its own),
 * installed from the registry into test/fixtures/packages, never where a node could find them,
 * and the client script (client.mjs) that runs jobs needing them there.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** test/fixtures/packages/: the client's folder (package.json, node_modules, lib/query.ts). */
export const FIXTURE = fileURLToPath(new URL('../fixtures/packages/', import.meta.url));

/**
 * The client script: runs jobs needing nanoid, qs and lib/query.ts on the node at
 * PP_TEST_NODE (host:port) alone and prints one JSON line (results, modulesSent, timings).
 * Run it with its cwd at {@link FIXTURE}; it imports the built dist/ (`npm run build`).
 */
export const CLIENT_SCRIPT = join(FIXTURE, 'client.mjs');

/** Installs the fixture's packages from the registry, exactly as pinned (package-lock.json), once. */
export function installFixturePackages(): void {
  if (existsSync(join(FIXTURE, 'node_modules', 'qs', 'package.json'))) return;
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts'], {
    cwd: FIXTURE,
    stdio: 'inherit',
  });
}

/** What client.mjs prints: the values of its jobs, what it sent the node, and how long it took. */
export interface ClientRun {
  /** [nanoid of 'x'/'y' (16 chars), qs.stringify result, lib/query.ts round trip]. */
  results: [string, string, string];
  /** 20 later qs jobs: `i=0` .. `i=19`. */
  more: string[];
  modulesSent: { packs: number; bytes: number };
  firstSubmitMs: number;
  firstJobMs: number;
  laterMs: number;
}

/** The values client.mjs's jobs must return (besides the random id, which must match /^[xy]{16}$/). */
export const EXPECTED = {
  str: 'a%5Bb%5D%5B0%5D=1&a%5Bb%5D%5B1%5D=2',
  trip: 'a%5Bc%5D=d&z=1',
  more: Array.from({ length: 20 }, (_, i) => `i=${i}`),
};

/** The content-addressed entries in a node's module cache under `home` (~/.cache/pp-node/modules). */
export function cacheEntries(home: string): string[] {
  const dir = join(home, '.cache', 'pp-node', 'modules');
  return existsSync(dir) ? readdirSync(dir).filter((n) => /^[0-9a-f]{64}$/.test(n)) : [];
}
