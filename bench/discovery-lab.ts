// Discovery on a lab LAN: the time from starting a node (`pp-node`, as `npx pp-node` runs it) to
// a client that browses (`new Server({ autodiscover: true })`) having it up, and having run a
// first job on it. Trees side by side, in one run, alternating, so that the host's load falls
// on each alike:
//
//   node --import tsx bench/discovery-lab.ts [--rounds 5] TREE [TREE...]
//
// Each TREE is a checkout with node_modules and a built dist/ (`npm ci && npm run build`) and
// test/lab/cluster-client.ts; its own client and node are measured. Needs root and iproute2:
// everything runs in the network namespaces of a throw-away lab (test/lab/netlab.ts); nothing
// announces or browses in the namespace this runs in. Prints one line a measurement, then the
// medians.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Lab, LabProcess, labSkip, ownNetns } from '../test/lab/netlab.ts';

const { values, positionals } = parseArgs({
  options: { rounds: { type: 'string', default: '5' } },
  allowPositionals: true,
});
const rounds = Number(values.rounds);
const trees = positionals.map((t) => resolve(t));
if (trees.length === 0 || !Number.isInteger(rounds) || rounds < 1) {
  console.error('usage: node --import tsx bench/discovery-lab.ts [--rounds N] TREE [TREE...]');
  process.exit(2);
}
const skip = labSkip();
if (skip) {
  console.error(`discovery-lab: ${skip}`);
  process.exit(2);
}

const SECRET = randomBytes(32).toString('hex');
const lab = Lab.create(2, 'ppb');

/** The tree's cluster client in h1, with a stdin for its commands (Lab.spawn gives none). */
function startClient(tree: string): { p: LabProcess; send: (cmd: object) => void } {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      lab.ns(1),
      process.execPath,
      '--import',
      'tsx',
      resolve(tree, 'test/lab/cluster-client.ts'),
      '{}',
    ],
    {
      cwd: tree,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        PP_LAB: lab.name,
        PP_LAB_HOST: '1',
        PP_LAB_ADDR: lab.addr(1),
        PP_LAB_ROOT_NETNS: ownNetns(),
        PP_SECRET: SECRET,
      },
    },
  );
  child.stdin!.on('error', () => {});
  const p = new LabProcess('h1: cluster-client', child);
  lab.processes.push(p);
  return { p, send: (cmd) => child.stdin!.write(`${JSON.stringify(cmd)}\n`) };
}

async function once(tree: string, round: number): Promise<{ upMs: number; firstJobMs: number }> {
  const client = startClient(tree);
  await client.p.waitFor((e) => e.ev === 'ready', { ms: 60_000, what: 'client ready' });
  const t0 = Date.now();
  const node = lab.spawn(
    2,
    process.execPath,
    [resolve(tree, 'bin/pp-node.js'), '--workers', '1', '--log-format', 'json', '--name', `n${round}`],
    { cwd: tree, hostname: 'node', env: { PP_SECRET: SECRET } },
  );
  try {
    const up = await client.p.waitFor((e) => e.ev === 'node-up', { ms: 60_000, what: 'node-up' });
    client.send({ cmd: 'run', tag: 'first', inputs: [1000] });
    const done = await client.p.waitFor((e) => e.ev === 'run-done', { ms: 60_000, what: 'run-done' });
    if ((done.failed as unknown[]).length) throw new Error(`the job failed: ${JSON.stringify(done)}`);
    return { upMs: up.t! - t0, firstJobMs: done.t! - t0 };
  } finally {
    client.send({ cmd: 'close' });
    await Promise.all([client.p.stop('SIGTERM', 5000), node.stop('SIGTERM', 5000)]);
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const results = new Map<string, { up: number[]; job: number[] }>(trees.map((t) => [t, { up: [], job: [] }]));
try {
  for (let r = 0; r < rounds; r++) {
    const order = trees.map((_, i) => trees[(i + r) % trees.length]!);
    for (const tree of order) {
      const m = await once(tree, r);
      results.get(tree)!.up.push(m.upMs);
      results.get(tree)!.job.push(m.firstJobMs);
      console.log(`[round ${r + 1}] ${tree}: node-up ${m.upMs} ms, first job done ${m.firstJobMs} ms`);
    }
  }
  console.log(`medians over ${rounds} rounds (ms from the node's start):`);
  for (const [tree, m] of results) {
    console.log(
      `  ${tree}: node-up ${median(m.up)}, first job done ${median(m.job)}  (up: ${m.up.join(' ')})`,
    );
  }
} finally {
  await lab.destroy();
}
