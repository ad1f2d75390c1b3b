/**
 * src/discovery uses one part of bonjour-service that is not its public API: the instance's
 * `server` (TypeScript-private), for its multicast-dns socket and its responder (`register`,
 * `unregister`: the records it answers queries with). Why the public `publish()` and `find()` do
 * not serve is written at the top of src/discovery/announce.ts and browse.ts. bonjour-service is
 * pinned exactly in package.json for that; these tests fail when the private part is gone or
 * behaves otherwise (a new version: check, then move the pin).
 *
 * No socket: multicast-dns is replaced by an in-memory stand-in before bonjour-service loads, so
 * no mDNS stack runs here (see THE RULE in test/discovery.test.ts). What the stand-in is given
 * is what bonjour-service would have sent.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import Module, { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { describe, it } from 'node:test';

const require = createRequire(import.meta.url);

type Sent = { kind: 'query' | 'respond'; packet: any };

/** A multicast-dns instance that sends nothing: it records what it is asked to send. */
class FakeMdns extends EventEmitter {
  readonly sent: Sent[] = [];
  failNext: Error | null = null;
  destroyed = false;
  constructor(readonly opts: unknown) {
    super();
  }
  query(packet: unknown, cb?: (err?: Error | null) => void): void {
    this.sent.push({ kind: 'query', packet });
    process.nextTick(() => cb?.(null));
  }
  respond(packet: unknown, cb?: (err?: Error | null) => void): void {
    this.sent.push({ kind: 'respond', packet });
    const err = this.failNext;
    this.failNext = null;
    process.nextTick(() => cb?.(err));
  }
  destroy(cb?: () => void): void {
    this.destroyed = true;
    process.nextTick(() => cb?.());
  }
}

const made: FakeMdns[] = [];
// In place of multicast-dns, as bonjour-service resolves it; before bonjour-service is loaded.
const mdnsPath = require.resolve('multicast-dns', { paths: [dirname(require.resolve('bonjour-service'))] });
const stand = new Module(mdnsPath);
stand.exports = (opts: unknown) => {
  const m = new FakeMdns(opts);
  made.push(m);
  return m;
};
stand.loaded = true;
require.cache[mdnsPath] = stand;

const { MdnsSession } = await import('../src/discovery/mdns.ts');

const PTR = {
  name: '_pp-node._tcp.local',
  type: 'PTR',
  ttl: 4500,
  data: 'a (12345678:1)._pp-node._tcp.local',
};
const SRV = {
  name: 'a (12345678:1)._pp-node._tcp.local',
  type: 'SRV',
  ttl: 120,
  data: { priority: 0, weight: 0, port: 1, target: 'h-12345678.local' },
};
const TXT = { name: SRV.name, type: 'TXT', ttl: 4500, data: [Buffer.from('id=12345678')] };
const A = { name: 'h-12345678.local', type: 'A', ttl: 120, data: '10.231.1.2' };

describe('bonjour-service: the private part src/discovery uses (no socket)', () => {
  it('package.json pins the installed bonjour-service exactly', () => {
    const pkg = require('../package.json') as { dependencies: Record<string, string> };
    const installed = (require('bonjour-service/package.json') as { version: string }).version;
    assert.equal(pkg.dependencies['bonjour-service'], installed);
  });

  it("an MdnsSession reaches the instance's multicast-dns socket and responder through `server`", async () => {
    const reported: Error[] = [];
    const session = new MdnsSession(
      {
        name: 'lan0',
        ipv4: '10.231.1.2',
        addresses: [
          {
            address: '10.231.1.2',
            netmask: '255.255.255.0',
            family: 'IPv4',
            mac: '02:00:00:00:00:02',
            internal: false,
            cidr: '10.231.1.2/24',
          },
        ],
      },
      (e) => reported.push(e),
      (e) => reported.push(e),
    );
    const mdns = made.at(-1)!;
    assert.ok(mdns, 'bonjour-service made no multicast-dns instance');
    assert.equal(session.mdns, mdns, '`server.mdns` is not the multicast-dns instance');
    // the interface option reaches multicast-dns (bind 0.0.0.0, send on the interface)
    assert.deepEqual(mdns.opts, { interface: '10.231.1.2', bind: '0.0.0.0' });

    // What is registered is answered: a PTR question gets the PTR, with SRV, TXT and A in additionals.
    session.server.register([PTR, SRV, TXT, A]);
    mdns.emit('query', { questions: [{ name: PTR.name, type: 'PTR' }] }, { address: '10.231.1.3' });
    const answer = mdns.sent.at(-1)!;
    assert.equal(answer.kind, 'respond');
    assert.deepEqual(answer.packet.answers, [PTR]);
    assert.deepEqual(
      answer.packet.additionals.map((r: { type: string }) => r.type),
      ['SRV', 'TXT', 'A'],
    );
    // from off the link (RFC 6762 §11): not heard (MdnsSession's filter on the socket's events)
    const before = mdns.sent.length;
    mdns.emit('query', { questions: [{ name: PTR.name, type: 'PTR' }] }, { address: '192.0.2.9' });
    assert.equal(mdns.sent.length, before);
    // an ANY question for the instance (a probe) gets its SRV and TXT
    mdns.emit('query', { questions: [{ name: SRV.name, type: 'ANY' }] }, { address: '10.231.1.3' });
    assert.deepEqual(
      mdns.sent
        .at(-1)!
        .packet.answers.map((r: { type: string }) => r.type)
        .sort(),
      ['SRV', 'TXT'],
    );
    // Unregistered: not answered any more.
    const n = mdns.sent.length;
    session.server.unregister([PTR, SRV, TXT, A]);
    mdns.emit('query', { questions: [{ name: PTR.name, type: 'PTR' }] }, { address: '10.231.1.3' });
    assert.equal(mdns.sent.length, n);

    // A failed answer goes to the error callback we pass (bonjour's default one throws).
    session.server.register([PTR]);
    mdns.failNext = new Error('send EHOSTUNREACH');
    mdns.emit('query', { questions: [{ name: PTR.name, type: 'PTR' }] }, { address: '10.231.1.3' });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      reported.map((e) => e.message),
      ['send EHOSTUNREACH'],
    );

    // Our own sends go through the same socket; close() destroys it.
    await session.query({ questions: [{ name: PTR.name, type: 'PTR' }] });
    assert.equal(mdns.sent.at(-1)!.kind, 'query');
    await session.close();
    assert.equal(mdns.destroyed, true);
  });

  it('the real multicast-dns was never loaded here', () => {
    assert.equal(require.cache[mdnsPath], stand);
    assert.equal(made.length, 1);
  });
});
