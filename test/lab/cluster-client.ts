/**
 * A pp-node client for the LAN cluster tests (test/cluster.test.ts), run inside a lab host only:
 *
 *   ip netns exec LAB-h1 node --import tsx test/lab/cluster-client.ts '{"interface":"lan0"}'
 *
 * It creates `new Server({ ncpus: 0, autodiscover: true, secret: $PP_SECRET })` and prints one JSON
 * object per line, {ev, t: Date.now(), ...}:
 *   ready | node-up {node} | node-down {node, reason} | node-error {node, name, message}
 *   discovery-error {message} | job-error {tag, i, message}
 *   result {tag, i, value, node, done}      one per callback call; `node` is the node that ran it
 *   run-done {tag, ms, values, failed, stats, active, ncpus, table}
 *   nodes {active, stats} | deliveries {runs: {tag: [count per job]}} | closed
 * Commands, one JSON object per line on stdin:
 *   {"cmd":"run","tag":"r1","inputs":[400000, ...]}   sum_primes(n) for each n, with a callback
 *   {"cmd":"nodes"}  {"cmd":"deliveries"}  {"cmd":"close"}
 * stdin closing or SIGTERM closes the server and exits.
 *
 * Before loading anything that could multicast it checks that it is in a lab host (another network
 * namespace than the test runner's, only `lo` and `lan0`, no default route); otherwise it exits 2.
 */

import { createInterface } from 'node:readline';
import { print, refuseOutsideLab } from './guard.ts';

refuseOutsideLab('cluster-client');

/** Returns true if n is prime and false otherwise (pp's sum_primes example). */
function isprime(n: number): boolean {
  if (n < 2) return false;
  if (n === 2) return true;
  const max = Math.ceil(Math.sqrt(n));
  let i = 2;
  while (i <= max) {
    if (n % i === 0) return false;
    i += 1;
  }
  return true;
}

/** Sum of all primes below n (~30 ms for n = 400 000). */
function sum_primes(n: number): number {
  let sum = 0;
  for (let x = 2; x < n; x++) if (isprime(x)) sum += x;
  return sum;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as { interface?: string };
const { Server } = await import('../../src/index.ts');
const server = new Server({
  ncpus: 0,
  autodiscover: true,
  secret: process.env.PP_SECRET,
  ...(cfg.interface ? { interface: cfg.interface } : {}),
});

server.on('node-up', (node) => print({ ev: 'node-up', node }));
server.on('node-down', (node, reason) => print({ ev: 'node-down', node, reason }));
server.on('node-error', (node, error) =>
  print({ ev: 'node-error', node, name: error.name, message: error.message }),
);
server.on('discovery-error', (error) => print({ ev: 'discovery-error', message: error.message }));

/** Jobs each node has run so far, to tell which node ran the job whose callback is running. */
const seen = new Map<string, number>();
/** The node whose job count went up since the last call (the Server counts a job, then calls back). */
function whoRanIt(): string | null {
  let who: string | null = null;
  for (const row of server.getStats().nodes) {
    if (row.jobs > (seen.get(row.node) ?? 0)) who = row.node;
    seen.set(row.node, row.jobs);
  }
  return who;
}

const deliveries = new Map<string, number[]>();
const tags = new Map<number, [string, number]>();
server.on('job-error', (job, error) => {
  whoRanIt();
  const [tag, i] = tags.get(job.id) ?? ['?', -1];
  print({ ev: 'job-error', tag, i, message: (error as Error)?.message ?? String(error) });
});

async function run(tag: string, inputs: number[]): Promise<void> {
  const counts = new Array<number>(inputs.length).fill(0);
  deliveries.set(tag, counts);
  let done = 0;
  const t0 = Date.now();
  const onResult = (i: number, value: number) => {
    counts[i]!++;
    done++;
    print({ ev: 'result', tag, i, value, node: whoRanIt(), done });
  };
  const jobs = inputs.map((n, i) => {
    const job = server.submit(sum_primes, [n], { deps: [isprime], callback: onResult, callbackArgs: [i] });
    tags.set(job.id, [tag, i]);
    return job;
  });
  const settled = await Promise.allSettled(jobs.map((j) => j.result()));
  const stats = server.getStats();
  let table = '';
  server.printStats((text) => (table = text));
  print({
    ev: 'run-done',
    tag,
    ms: Date.now() - t0,
    values: settled.map((s) => (s.status === 'fulfilled' ? s.value : null)),
    failed: settled.flatMap((s, i) => (s.status === 'rejected' ? [{ i, message: String(s.reason) }] : [])),
    stats: stats.nodes,
    ncpus: stats.ncpus,
    active: server.getActiveNodes(),
    table,
  });
}

let closing: Promise<void> | null = null;
function close(): Promise<void> {
  closing ??= server.close().then(() => {
    print({ ev: 'closed' });
    process.exit(0);
  });
  return closing;
}
process.on('SIGTERM', () => void close());
process.on('uncaughtException', (e) => {
  print({ ev: 'crash', message: e.message, stack: e.stack });
  process.exit(70);
});

createInterface({ input: process.stdin })
  .on('line', (line) => {
    if (!line.trim()) return;
    const c = JSON.parse(line) as { cmd: string; tag?: string; inputs?: number[] };
    switch (c.cmd) {
      case 'run':
        void run(String(c.tag), c.inputs ?? []);
        return;
      case 'nodes':
        print({ ev: 'nodes', active: server.getActiveNodes(), stats: server.getStats() });
        return;
      case 'deliveries':
        print({ ev: 'deliveries', runs: Object.fromEntries(deliveries) });
        return;
      case 'close':
        void close();
        return;
      default:
        print({ ev: 'bad-command', line });
    }
  })
  .on('close', () => void close());

print({ ev: 'ready' });
