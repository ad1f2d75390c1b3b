/**
 * A client under attack, for test/discovery-attack.test.ts; runs inside a lab host only.
 * `new Server({ ncpus: 1, autodiscover: true, interface: 'lan0' })` from PP_ATTACK_SRC (default
 * this tree's src/, so the same run can measure another tree). Listens on 127.0.0.1:loopbackPort
 * and counts connections (a client must never dial its own loopback for an announcement).
 * Prints node-up / node-down events, and every 2 s {ev:'stats', rss, heap, nodes, active,
 * p50, max, loopback, errors}: nodes = rows of getStats() (one per RemoteNode it keeps),
 * p50/max = latency of 10 sequential trivial jobs, ms.
 */
import { createServer } from 'node:net';
import { print, refuseOutsideLab } from './guard.ts';

refuseOutsideLab('attack-client');

const cfg = JSON.parse(process.argv[2] ?? '{}') as { loopbackPort: number };
let loopback = 0;
const lo = createServer((s) => {
  loopback++;
  s.destroy();
});
await new Promise<void>((r) => lo.listen(cfg.loopbackPort, '127.0.0.1', r));

const src = process.env.PP_ATTACK_SRC ?? new URL('../../src', import.meta.url).pathname;
const { Server } = (await import(`${src}/index.ts`)) as typeof import('../../src/index.ts');
const server = new Server({ ncpus: 1, autodiscover: true, interface: 'lan0', secret: process.env.PP_SECRET });
let errors = 0;
server.on('node-up', (node) => print({ ev: 'node-up', id: node.id, ncpus: node.ncpus }));
server.on('node-down', (node, reason) => print({ ev: 'node-down', id: node.id, reason }));
server.on('node-error', () => errors++);
server.on('discovery-error', (e) => print({ ev: 'discovery-error', message: e.message }));
await server.ready();
print({ ev: 'ready' });

for (;;) {
  const ms: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    await server.submit((x: number) => x + 1, [i]);
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  const mem = process.memoryUsage();
  print({
    ev: 'stats',
    rss: mem.rss,
    heap: mem.heapUsed,
    nodes: server.getStats().nodes.length,
    active: server.getActiveNodes().map((n) => n.id),
    p50: Math.round(ms[5]! * 10) / 10,
    max: Math.round(ms[9]! * 10) / 10,
    loopback,
    errors,
  });
  await new Promise((r) => setTimeout(r, 2000));
}
