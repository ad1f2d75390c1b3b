/**
 * An attacker on the LAN, for test/discovery-attack.test.ts; runs inside a lab host only:
 *
 *   ip netns exec LAB-h3 node --import tsx test/lab/flood.ts '{"n":2000,"realId":"...","loopbackPort":4000}'
 *
 * Answers every query for _pp-node._tcp.local (and announces once at start) with `n` fake nodes
 * (ids fake-0..fake-n-1) at this host's address, all on one port where a WebSocket server counts
 * connections and feeds each a 2 MiB message before any handshake; 20 more fakes at 127.0.0.1:
 * `loopbackPort` and 224.0.0.1; and an impostor that announces `realId` with this host's address,
 * where a node with another secret answers (REJECTED). Prints {ev:'ready'} then, every second,
 * {ev:'count', flood, impostor} (connections accepted so far). Bounded: it exits after `seconds`.
 */
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { print, refuseOutsideLab } from './guard.ts';

refuseOutsideLab('flood');

const cfg = JSON.parse(process.argv[2] ?? '{}') as {
  n: number;
  realId: string;
  loopbackPort: number;
  seconds?: number;
  /** Feed each connection a 2 MiB message (default true). */
  feed?: boolean;
};
const addr = process.env.PP_LAB_ADDR!;
const { WebSocketServer } = await import('ws');
const { startFakeNode } = await import('../helpers/fake-node.ts');

const flood = new WebSocketServer({ port: 0, host: addr, maxPayload: 128 });
await new Promise((r) => flood.once('listening', r));
let floodCount = 0;
flood.on('connection', (ws) => {
  floodCount++;
  ws.on('error', () => {});
  if (cfg.feed !== false) ws.send(Buffer.alloc(2 << 20, 7));
});
const floodPort = (flood.address() as AddressInfo).port;
// On the real node's port too: the attack (an announcement keyed by id and port).
const impostor = await startFakeNode({
  secret: 'not-the-cluster-secret-0000000000000',
  host: addr,
  port: 60000,
});

const SERVICE = '_pp-node._tcp.local';
type Rec = { name: string; type: string; ttl: number; data: unknown };
function instance(name: string, id: string, port: number, a: string): Rec[] {
  const fqdn = `${name}.${SERVICE}`;
  const host = `${name}-host.local`;
  return [
    { name: SERVICE, type: 'PTR', ttl: 4500, data: fqdn },
    { name: fqdn, type: 'SRV', ttl: 120, data: { port, target: host, priority: 0, weight: 0 } },
    {
      name: fqdn,
      type: 'TXT',
      ttl: 4500,
      data: [`proto=2`, `id=${id}`, 'cpus=8', 'ver=0.1.0'].map((s) => Buffer.from(s)),
    },
    { name: host, type: 'A', ttl: 120, data: a },
  ];
}
// The impostor first, so that it is heard whatever a browser's cap on instances.
const all: Rec[][] = [instance('impostor', cfg.realId, impostor.port, addr)];
for (let i = 0; i < cfg.n; i++) all.push(instance(`fake${i}`, `fake-${i}`, floodPort, addr));
for (let i = 0; i < 10; i++) all.push(instance(`lo${i}`, `lo-${i}`, cfg.loopbackPort, '127.0.0.1'));
for (let i = 0; i < 10; i++) all.push(instance(`mc${i}`, `mc-${i}`, floodPort, '224.0.0.1'));
const packets: Rec[][] = [];
for (let i = 0; i < all.length; i += 8) packets.push(all.slice(i, i + 8).flat());

const mdns = createRequire(import.meta.url)('multicast-dns')({ interface: addr });
const sendAll = () => {
  for (const answers of packets) mdns.respond({ answers });
};
mdns.on('query', (q: { questions?: { name: string; type: string }[] }) => {
  if (q.questions?.some((x) => x.name.toLowerCase() === SERVICE && x.type === 'PTR')) sendAll();
});
sendAll();
print({ ev: 'ready', floodPort, impostorPort: impostor.port, instances: all.length });
const timer = setInterval(
  () => print({ ev: 'count', flood: floodCount, impostor: impostor.connections }),
  1000,
);
setTimeout(
  () => {
    clearInterval(timer);
    mdns.destroy();
    flood.close();
    void impostor.close().then(() => process.exit(0));
  },
  (cfg.seconds ?? 120) * 1000,
);
process.on('SIGTERM', () => process.exit(0));
