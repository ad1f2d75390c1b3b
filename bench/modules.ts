// What it costs to send modules to a node (issue 16): per module, bundling it on the client,
// the bytes sent, the first job on a node that lacks it (ask, send, store, verify, import),
// the first job of a second client once the node has it, and later jobs against jobs that
// use no module.
//
//   npm run bench -- --only modules
//   node --import tsx bench/modules.ts          (after `npm run build`)
//
// One `pp-node` (1 worker) on 127.0.0.1, started in an empty folder with an empty HOME, so
// its module cache starts empty; the client has ncpus: 0. Modules are pp-node's own
// dependencies (installed here, resolved from this folder) and examples/lib/js-stats.ts.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Server } from 'pp-node';
import { DEFAULT_MAX_MODULE_BYTES, packModule } from '../src/modules/pack.ts';
import { startNode } from '../test/helpers/nodes.ts';

declare const m: unknown;
declare const K: number;

const HERE = dirname(fileURLToPath(import.meta.url));
const MODULES: Array<[label: string, specifier: string]> = [
  ['periscopic (ESM-only, 2 deps)', 'periscopic'],
  ['acorn (ESM + CJS)', 'acorn'],
  ['bonjour-service (CJS, 4 deps)', 'bonjour-service'],
  ['examples/lib/js-stats.ts (local TS + acorn)', '../examples/lib/js-stats.ts'],
];
const LATER_JOBS = 400;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** µs per job for bursts of LATER_JOBS jobs of `a` and `b`, alternating: medians of 5 each. */
async function bursts(
  server: Server,
  a: [fn: (x: number) => number, opts: object],
  b: [fn: (x: number) => number, opts: object],
): Promise<[number, number]> {
  const samples: [number[], number[]] = [[], []];
  for (let r = 0; r < 10; r++) {
    const [fn, opts] = r % 2 === 0 ? a : b;
    const t = performance.now();
    await Promise.all(Array.from({ length: LATER_JOBS }, (_, i) => server.submit(fn, [i], opts)));
    samples[r % 2]!.push(((performance.now() - t) * 1000) / LATER_JOBS);
  }
  return [median(samples[0]), median(samples[1])];
}

export async function runModules(): Promise<void> {
  const secret = randomBytes(32).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'pp-bench-modules-'));
  const node = await startNode({
    secret,
    workers: 1,
    cwd: dir,
    env: { HOME: dir, PP_NODE_CACHE_DIR: '', XDG_CACHE_HOME: '' },
    logLevel: 'info',
  });
  const address = `127.0.0.1:${node.port}`;
  const connect = async () => {
    const server = new Server({
      ncpus: 0,
      ppservers: [address],
      secret,
      cacheDir: join(dir, 'client-cache'),
    });
    await new Promise((resolve) => server.once('node-up', resolve));
    return server;
  };
  const sent = (server: Server) =>
    server.getActiveNodes().find((n) => n.id === address)?.modulesSent ?? { packs: 0, bytes: 0 };
  try {
    const rows: string[][] = [];
    let server = await connect();
    const plain = (x: number) => x + K;
    const firstMs: number[] = [];
    // Warm the link and the worker first.
    for (let r = 0; r < 3; r++)
      await Promise.all(
        Array.from({ length: LATER_JOBS }, (_, i) => server.submit(plain, [i], { globals: { K: -1 } })),
      );
    for (const [i, [label, spec]] of MODULES.entries()) {
      const t0 = performance.now();
      const pack = packModule(spec, HERE, DEFAULT_MAX_MODULE_BYTES);
      const bundleMs = performance.now() - t0;
      // The first job of a function new to the node that uses no module, for comparison.
      let t = performance.now();
      await server.submit(plain, [1], { globals: { K: i } });
      const plainFirstMs = performance.now() - t;
      const before = sent(server).bytes;
      const fn = (x: number) => (m ? x + 1 : -1);
      t = performance.now();
      await server.submit(fn, [1], { modules: [{ m: spec }] });
      firstMs.push(performance.now() - t);
      const bytes = sent(server).bytes - before;
      const [none, later] = await bursts(
        server,
        [plain, { globals: { K: i } }],
        [fn, { modules: [{ m: spec }] }],
      );
      rows.push([
        label,
        String(pack.bytes),
        String(bytes),
        bundleMs.toFixed(0),
        `${firstMs[i]!.toFixed(0)} (${plainFirstMs.toFixed(0)})`,
        '',
        `${later.toFixed(1)} (${none.toFixed(1)})`,
      ]);
    }
    await server.close();
    // A second client: the node has every module now.
    server = await connect();
    for (let i = 0; i < MODULES.length; i++) {
      const fn = (x: number) => (m ? x + 1 : -1);
      const t = performance.now();
      await server.submit(fn, [1], { modules: [{ m: MODULES[i]![1] }] });
      rows[i]![5] = `${(performance.now() - t).toFixed(0)} (sent ${sent(server).bytes} B)`;
    }
    await server.close();

    const head = [
      'module',
      'bundle bytes',
      'bytes sent',
      'bundle ms',
      'first job ms, node lacks it (no module)',
      'first job ms, 2nd client',
      'later jobs µs/job (no module)',
    ];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
    console.log(line(head));
    console.log(`| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`);
    for (const r of rows) console.log(line(r));
    console.log(
      `\nbundle ms: esbuild on the client, once per process (the first call also starts esbuild). ` +
        `first job: submit to result, bundling excluded; (no module): the first job of a function that uses none. ` +
        `later jobs: ${LATER_JOBS} jobs at once, median of 5, alternating with the same jobs without the module.`,
    );
  } finally {
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await runModules();
