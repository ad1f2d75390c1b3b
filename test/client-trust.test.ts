// What a client believes of whoever answers at a node's address (issue 13, items 6, 7, 8), on
// 127.0.0.1 with fake nodes (test/helpers/fake-node.ts); no mDNS (DiscoveredNodes is fed directly).
import assert from 'node:assert/strict';
import { createServer, type Server as NetServer } from 'node:net';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { DiscoveredNodes } from '../src/api/discovered-nodes.ts';
import { linkAddresses } from '../src/discovery/addresses.ts';
import type { DiscoveredNode } from '../src/discovery/index.ts';
import { Server } from '../src/index.ts';
import { type Endpoint, RemoteNode } from '../src/nodes/remote-node.ts';
import { encodeMessage, JobStatus } from '../src/protocol/messages.ts';
import { startFakeNode } from './helpers/fake-node.ts';

const SECRET = 'test-secret-0123456789abcdef0123456789';
const OTHER = 'another-secret-entirely-00000000000000';

const waitFor = async (cond: () => boolean, ms: number, what: string) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** Answers every job with its own id. */
const echo = {
  onRun: (msg: { jobs: [number, ...unknown[]][] }, socket: { send(p: Uint8Array[]): void }) => {
    for (const [id] of msg.jobs)
      socket.send(
        encodeMessage({ type: 'done', results: [[id, JobStatus.Ok, 1]], blobs: [encodeValue(id)] }),
      );
  },
};
function encodeValue(n: number): Uint8Array {
  return new Uint8Array([1, 0xbf, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff]); // int32
}

test('a refusal is not final: reported once, retried with backoff (not in a loop), and the node is used once it authenticates', {
  timeout: 60_000,
}, async () => {
  // Whoever answers first does not have our secret (REJECTED after our proof).
  const impostor = await startFakeNode({ secret: OTHER });
  const port = impostor.port;
  const errors: Error[] = [];
  const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${port}`], secret: SECRET });
  server.on('node-error', (_n, e) => errors.push(e));
  let real: Awaited<ReturnType<typeof startFakeNode>> | null = null;
  try {
    await waitFor(() => errors.length > 0, 10_000, 'the refusal');
    assert.equal(errors[0]!.name, 'NodeRejectedError');
    assert.match(
      errors[0]!.message,
      new RegExp(`whoever answered at 127\\.0\\.0\\.1:${port} rejected our secret`),
    );
    assert.match(errors[0]!.message, /not authenticated/);
    assert.match(errors[0]!.message, /Retrying with backoff/);
    // Not in a loop: the refused address is not dialled again within 2.5 s.
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(impostor.connections, 1, 'no second dial within 2.5 s of a refusal');
    // The node itself comes back at that address, with our secret: a retry reaches it.
    await impostor.close();
    real = await startFakeNode({ secret: SECRET, port, id: 'real', ...echo });
    await waitFor(() => server.getActiveNodes().length === 1, 20_000, 'the node, once it authenticates');
    assert.equal(
      await server
        .submit((x: number) => x, [7])
        .result()
        .then(() => 'ran'),
      'ran',
    );
    assert.equal(
      errors.length,
      1,
      `the refusal is reported once: ${errors.map((e) => e.message).join('; ')}`,
    );
  } finally {
    await server.close();
    await impostor.close().catch(() => {});
    await real?.close();
  }
});

/** DiscoveredNodes with real RemoteNodes, as the Server makes them. */
function discovery(limits: ConstructorParameters<typeof DiscoveredNodes>[1] = {}, otherNodeMs?: number) {
  const secret = new TextEncoder().encode(SECRET);
  const made: RemoteNode[] = [];
  const dropped: RemoteNode[] = [];
  const up: string[] = [];
  const events = { onResult: () => {}, onJobFailed: () => {}, onRequeue: () => {}, onCapacity: () => {} };
  const listener = { onUp: (n: RemoteNode) => up.push(n.id), onDown: () => {}, onProblem: () => {} };
  const d = new DiscoveredNodes(
    {
      make: (found, endpoints: Endpoint[], expectId, dial) => {
        const n = new RemoteNode(
          {
            host: endpoints[0]!.host,
            port: endpoints[0]!.port,
            endpoints,
            expectId,
            dial,
            label: found.instance,
            secret,
            maxBackoffMs: 500,
            ...(otherNodeMs !== undefined && { otherNodeMs }),
          },
          events,
          listener,
        );
        made.push(n);
        return n;
      },
      drop: (n) => {
        dropped.push(n);
        void n.close();
      },
    },
    limits,
  );
  return { d, made, dropped, up };
}

function announced(instance: string, id: string, port: number, addresses = ['127.0.0.1']): DiscoveredNode {
  return { instance, host: `${instance}.local`, addresses, port, id, ncpus: 1, version: '0', protocol: 2 };
}

test('an impostor that announces the real node id with its own address never takes its place', {
  timeout: 60_000,
}, async () => {
  const real = await startFakeNode({ secret: SECRET, id: 'node-a' });
  // One impostor without the secret, one with it that is another node (authenticated, another id).
  const liar = await startFakeNode({ secret: OTHER, id: 'node-a' });
  const other = await startFakeNode({ secret: SECRET, id: 'node-b' });
  const { d, made } = discovery();
  try {
    d.up(announced('a', 'node-a', real.port));
    await waitFor(() => made[0]?.state === 'ready', 10_000, 'the real node');
    d.up(announced('evil', 'node-a', liar.port));
    d.up(announced('evil2', 'node-a', other.port));
    assert.equal(made.length, 1, 'one node for one id');
    // The node's connection drops (a blip): it must come back to the real node.
    for (let round = 0; round < 3; round++) {
      const before = real.authenticated;
      real.dropAll();
      await waitFor(
        () => real.authenticated > before && made[0]!.state === 'ready',
        10_000,
        `reconnect ${round}`,
      );
    }
    // While the real node is away, the impostors' endpoints are tried and never used.
    await real.close();
    await waitFor(() => liar.connections > 0 && other.authenticated > 0, 15_000, 'the impostors tried');
    assert.notEqual(made[0]!.state, 'ready', 'never ready at an impostor');
    assert.equal(made[0]!.info?.id, 'node-a');
  } finally {
    d.close();
    for (const n of made) await n.close();
    await Promise.all([real.close().catch(() => {}), liar.close(), other.close()]);
  }
});

test('an address where another node answered is tried again later: the node may come back at it (DHCP)', {
  timeout: 60_000,
}, async () => {
  // node-a is announced at an address where node-b answers (it moved, and node-b got it).
  const b = await startFakeNode({ secret: SECRET, id: 'node-b' });
  const port = b.port;
  const { d, made } = discovery({}, 300);
  let a: Awaited<ReturnType<typeof startFakeNode>> | undefined;
  try {
    d.up(announced('a', 'node-a', port));
    await waitFor(() => b.authenticated > 0, 10_000, 'node-b to answer');
    assert.notEqual(made[0]!.state, 'ready');
    // node-b leaves; node-a comes back at that address and is announced again.
    await b.close();
    a = await startFakeNode({ secret: SECRET, id: 'node-a', port });
    d.up(announced('a', 'node-a', port));
    await waitFor(() => made[0]!.state === 'ready', 15_000, 'node-a at its old address');
    assert.equal(made[0]!.info?.id, 'node-a');
  } finally {
    d.close();
    for (const n of made) await n.close();
    await Promise.all([b.close().catch(() => {}), a?.close()]);
  }
});

test('discovered nodes are capped; ids that keep failing give their place up to waiting ones', {
  timeout: 60_000,
}, async () => {
  // Ports where nothing listens: every dial fails at once.
  const closed: NetServer[] = [];
  const dead: number[] = [];
  for (let i = 0; i < 12; i++) {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    dead.push((s.address() as { port: number }).port);
    closed.push(s);
  }
  await Promise.all(closed.map((s) => new Promise((r) => s.close(r))));
  const real = await startFakeNode({ secret: SECRET, id: 'node-real' });
  const { d, made } = discovery({ maxNodes: 4, dropAfterFailures: 2 });
  try {
    for (const [i, port] of dead.entries()) d.up(announced(`fake${i}`, `fake-${i}`, port));
    d.up(announced('real', 'node-real', real.port)); // last in line
    assert.equal(d.size, 4, 'capped');
    assert.equal(d.waiting, 9);
    await waitFor(
      () => made.some((n) => n.state === 'ready'),
      40_000,
      'the real node, after the fakes gave up',
    );
    assert.ok(d.size <= 4);
  } finally {
    d.close();
    for (const n of made) await n.close();
    await real.close();
  }
});

test('before authentication a client reads at most 128 bytes a message', { timeout: 30_000 }, async () => {
  // A peer that answers the upgrade, then sends a 2 MiB message.
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await new Promise((r) => wss.once('listening', r));
  let closedWith = -1;
  wss.on('connection', (ws) => {
    ws.on('close', (code) => (closedWith = code));
    ws.send(Buffer.alloc(2 << 20, 1));
  });
  const port = (wss.address() as { port: number }).port;
  const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${port}`], secret: SECRET });
  server.on('node-error', () => {});
  try {
    await waitFor(() => closedWith !== -1, 10_000, 'the client to close');
    assert.equal(closedWith, 1009, 'message too big: closed before the payload was read');
  } finally {
    await server.close();
    await new Promise((r) => wss.close(r));
  }
});

test('only on-link addresses of an announcement are dialled', () => {
  const local = {
    lo: [
      {
        address: '127.0.0.1',
        netmask: '255.0.0.0',
        family: 'IPv4',
        mac: '00:00:00:00:00:00',
        internal: true,
        cidr: null,
      },
    ],
    eth0: [
      {
        address: '192.168.1.10',
        netmask: '255.255.255.0',
        family: 'IPv4',
        mac: '02:00:00:00:00:01',
        internal: false,
        cidr: null,
      },
      {
        address: 'fd00::10',
        netmask: 'ffff:ffff:ffff:ffff::',
        family: 'IPv6',
        mac: '02:00:00:00:00:01',
        internal: false,
        cidr: null,
        scopeid: 2,
      },
    ],
  } as unknown as Parameters<typeof linkAddresses>[1];
  assert.deepEqual(
    linkAddresses(
      [
        '192.168.1.20',
        '127.0.0.1',
        '0.0.0.0',
        '224.0.0.251',
        '255.255.255.255',
        '10.9.9.9',
        '::1',
        '::',
        'ff02::fb',
        'fd00::20',
        'fd01::1',
        'fe80::1%eth0',
        'fe80::2',
        'nonsense',
      ],
      local,
    ),
    ['192.168.1.20', 'fd00::20', 'fe80::1%eth0'],
  );
});

test('a refused node announced again is dialled again at once (its backoff reset), not reported twice', {
  timeout: 30_000,
}, async () => {
  const impostor = await startFakeNode({ secret: OTHER, id: 'node-a' });
  const problems: Error[] = [];
  const secret = new TextEncoder().encode(SECRET);
  const events = { onResult: () => {}, onJobFailed: () => {}, onRequeue: () => {}, onCapacity: () => {} };
  const node = new RemoteNode(
    { host: '127.0.0.1', port: impostor.port, expectId: 'node-a', secret },
    events,
    { onUp: () => {}, onDown: () => {}, onProblem: (_n, e) => problems.push(e) },
  );
  try {
    await waitFor(() => node.refused, 10_000, 'the refusal');
    const dials = impostor.connections;
    const t0 = Date.now();
    node.rediscovered([{ host: '127.0.0.1', port: impostor.port }], true);
    await waitFor(() => impostor.connections > dials, 10_000, 'a dial after the announcement');
    assert.ok(Date.now() - t0 < 2000, `dialled ${Date.now() - t0} ms after the announcement (backoff: 5 s)`);
    await waitFor(() => node.refused && node.failures >= 2, 10_000, 'the second refusal');
    assert.equal(problems.length, 1, 'reported once');
  } finally {
    await node.close();
    await impostor.close();
  }
});
