// File: packages.ts
// Desc: Jobs that need a package and a module of your own project run on a node that has
// neither installed. pp-node bundles each module here, where it resolves (your node_modules,
// TypeScript included), and sends it once to each node that lacks it; the node keeps it in
// its cache (~/.cache/pp-node), so a later run sends nothing.
//
//   npx tsx examples/packages.ts [host:port]
//
// With a node's address, the jobs run there (it needs the cluster's secret, see
// lan_cluster.ts). Without one, this starts a throwaway `pp-node` on 127.0.0.1, in an empty
// folder with an empty cache, to show what a fresh machine needs: nothing.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Server } from 'pp-node';

// Bound in the worker by `modules` (below); declared for TypeScript.
declare const acorn: typeof import('acorn');
declare const jsStats: typeof import('./lib/js-stats.ts');

/** Top-level statements of a JavaScript source: uses the package directly. */
function statements(source: string): number {
  return acorn.parse(source, { ecmaVersion: 'latest', sourceType: 'module' }).body.length;
}

/** Functions it defines: uses the local module, which imports acorn and ./walk.ts. */
function functions(source: string): number {
  return jsStats.countFunctions(source);
}

/** Starts `pp-node` on 127.0.0.1 in an empty folder with an empty HOME (so an empty cache). */
async function throwawayNode(secret: string): Promise<{ address: string; child: ChildProcess; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'pp-node-example-'));
  const bin = fileURLToPath(new URL('../bin/pp-node.js', import.meta.url));
  const child = spawn(
    process.execPath,
    [bin, '--port', '0', '--bind', '127.0.0.1', '--workers', '1', '--no-announce', '--log-format', 'json'],
    {
      cwd: dir,
      env: { ...process.env, HOME: dir, PP_SECRET: secret, PP_NODE_CACHE_DIR: '' },
      stdio: ['ignore', 'inherit', 'pipe'],
    },
  );
  for await (const line of createInterface({ input: child.stderr! })) {
    const entry = JSON.parse(line) as { msg: string; port?: number };
    if (entry.msg === 'pp-node ready') return { address: `127.0.0.1:${entry.port}`, child, dir };
  }
  throw new Error('pp-node did not start');
}

const given = process.argv[2];
const secret = given ? undefined : randomBytes(32).toString('hex');
const node = given ? undefined : await throwawayNode(secret!);
const address = given ?? node!.address;

try {
  // ncpus: 0: every job runs on the node, none here.
  const server = new Server({ ncpus: 0, ppservers: [address], ...(secret ? { secret } : {}) });
  await new Promise((resolve) => server.once('node-up', resolve));

  // pp-node's own compiled JavaScript, as the jobs' input.
  const distDir = fileURLToPath(new URL('../dist/protocol/', import.meta.url));
  const files = readdirSync(distDir)
    .filter((f) => f.endsWith('.js'))
    .sort();
  const sources = files.map((f) => readFileSync(join(distDir, f), 'utf8'));

  const started = performance.now();
  const counts = await Promise.all(
    sources.map(async (source) => [
      await server.submit(statements, [source], { modules: ['acorn'] }),
      await server.submit(functions, [source], { modules: [{ jsStats: './lib/js-stats.ts' }] }),
    ]),
  );
  const firstMs = performance.now() - started;
  for (const [i, f] of files.entries()) {
    console.log(`${f}: ${counts[i]![0]} statements, ${counts[i]![1]} functions`);
  }

  const again = performance.now();
  await Promise.all(sources.map((s) => server.submit(statements, [s], { modules: ['acorn'] })));
  const laterMs = performance.now() - again;

  const sent = server.getActiveNodes().find((n) => n.id === address)?.modulesSent ?? { packs: 0, bytes: 0 };
  console.log(`Modules sent to ${address}: ${sent.packs} (${sent.bytes} bytes)`);
  console.log(
    `First ${2 * files.length} jobs: ${firstMs.toFixed(0)} ms (bundling and sending included); the next ${files.length}: ${laterMs.toFixed(0)} ms`,
  );
  await server.close();
} finally {
  if (node) {
    node.child.kill('SIGTERM');
    await new Promise((resolve) => node.child.once('exit', resolve));
    rmSync(node.dir, { recursive: true, force: true });
  }
}
