// File: lan_cluster.ts
// Desc: A laptop and a desktop (or any number of machines on one LAN) working as one.
// The nodes announce themselves on the LAN (mDNS) and this client finds them: no address
// is configured anywhere.
//
//   1. On each machine that lends its CPUs, run `npx pp-node`.
//      Every machine must share one secret: `npx pp-node` creates ~/.config/pp-node/secret
//      on its first run; copy that file (mode 600) to the same place on every other machine
//      of the cluster, this one included (or set PP_SECRET to its content everywhere).
//   2. On your machine: `npx tsx examples/lan_cluster.ts [seconds to wait for nodes] [jobs]`
//
// The jobs run on this machine's CPUs and on every node found; nodes that come later or
// go away are used or dropped as they come and go. `npx pp-node ls` lists the nodes on the
// LAN and whether they accept this machine's secret.

import { Server } from 'pp-node';

/** Returns true if n is prime and false otherwise */
function isprime(n: number): boolean {
  if (n < 2) {
    return false;
  }
  if (n === 2) {
    return true;
  }
  const max = Math.ceil(Math.sqrt(n));
  let i = 2;
  while (i <= max) {
    if (n % i === 0) {
      return false;
    }
    i += 1;
  }
  return true;
}

/** Calculates sum of all primes below given integer n */
function sum_primes(n: number): number {
  let sum = 0;
  for (let x = 2; x < n; x++) {
    if (isprime(x)) {
      sum += x;
    }
  }
  return sum;
}

const waitSeconds = Number(process.argv[2] ?? 2);
const count = Number.parseInt(process.argv[3] ?? '48', 10);

// Local CPUs too (ncpus defaults to all of them), and every pp-node on the LAN.
const server = new Server({ autodiscover: true });

server.on('node-up', (node) => {
  console.log(`node up: ${node.name} at ${node.id}, ${node.ncpus} CPUs, pp-node ${node.version}`);
});
server.on('node-down', (node, reason) => {
  console.log(`node down: ${node.name} at ${node.id} (${reason}); its jobs run elsewhere`);
});
server.on('node-error', (_node, error) => {
  // For instance a node with another secret: it is reported once and not used.
  // (The message names the node.)
  console.log(`node error: ${error.message}`);
});

console.log(
  `Starting pp-node with ${server.getNcpus()} local workers; looking for nodes for ${waitSeconds} s...`,
);
await new Promise((resolve) => setTimeout(resolve, waitSeconds * 1000));

// A batch of jobs, spread over the local workers and the nodes found so far.
const inputs = Array.from({ length: count }, (_, i) => 500_000 + i * 1000);
const jobs = inputs.map((input) => [input, server.submit(sum_primes, [input], { deps: [isprime] })] as const);
for (const [input, job] of jobs) {
  console.log(`Sum of primes below ${input} is ${await job}`);
}

const nodes = server.getActiveNodes();
console.log(`Nodes used: ${nodes.length}`);
for (const node of nodes) {
  console.log(`  ${node.id.padEnd(28)} ${node.name.padEnd(16)} ${node.ncpus} CPUs`);
}
server.printStats();

await server.close();
