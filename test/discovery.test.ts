/**
 * LAN discovery (src/discovery): unit tests, then tests on a throw-away LAN of network namespaces.
 *
 * THE RULE: no mDNS stack runs in the root network namespace. This process never loads
 * bonjour-service (checked below); every announcer and browser is a child started inside a lab host
 * (test/lab/agent.ts, test/lab/zc_*.py), and tcpdump watches the real interfaces during the whole
 * LAN suite (test/lab/leak.ts).
 *
 * The LAN suite needs root and iproute2 (and tcpdump, python3-zeroconf for Debian's /usr/bin/python3).
 * Under CI=true a missing piece fails the run; elsewhere those tests are skipped with the reason.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { NetworkInterfaceInfo } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { resolveInterface } from '../src/discovery/addresses.ts';
import { type DiscoveredNode, type LocalInterfaces, rankAddresses } from '../src/discovery/browse.ts';
import {
  fromTxt,
  hostNameFor,
  instanceNameFor,
  type NodeAnnouncement,
  toTxt,
} from '../src/discovery/service.ts';
import { assertCleanLabExit, mdnsModulesLoaded } from './lab/checks.ts';
import {
  analyzeCapture,
  LeakCapture,
  type LeakCapture as LeakCaptureT,
  tcpdumpAvailable,
} from './lab/leak.ts';
import { Lab, type LabEvent, type LabProcess, labSkip, rootFingerprint } from './lab/netlab.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const AGENT = fileURLToPath(new URL('./lab/agent.ts', import.meta.url));
const ZC_BROWSE = fileURLToPath(new URL('./lab/zc_browse.py', import.meta.url));
const ZC_PUBLISH = fileURLToPath(new URL('./lab/zc_publish.py', import.meta.url));
const PYTHON = '/usr/bin/python3'; // Debian's, which has python3-zeroconf (not a pyenv one on PATH)

// ------------------------------------------------------------------ unit tests (no network)

function ifaces(spec: Record<string, [string, string][]>): LocalInterfaces {
  const out: LocalInterfaces = {};
  for (const [name, list] of Object.entries(spec)) {
    out[name] = list.map(([address, netmask]): NetworkInterfaceInfo => {
      const internal = name === 'lo';
      return address.includes(':')
        ? { address, netmask, family: 'IPv6', mac: '02:00:00:00:00:01', internal, cidr: null, scopeid: 2 }
        : { address, netmask, family: 'IPv4', mac: '02:00:00:00:00:01', internal, cidr: null };
    });
  }
  return out;
}

const LOCAL = ifaces({
  lo: [
    ['127.0.0.1', '255.0.0.0'],
    ['::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'],
  ],
  eth0: [
    ['192.168.1.10', '255.255.255.0'],
    ['fd00::10', 'ffff:ffff:ffff:ffff::'],
    ['fe80::10', 'ffff:ffff:ffff:ffff::'],
  ],
  docker0: [['172.17.0.1', '255.255.0.0']],
  tun6: [['2001:db8:99::1', 'ffff:ffff:ffff:ffff::']],
});

describe('discovery: TXT records', () => {
  const a: NodeAnnouncement = {
    name: 'n',
    port: 60000,
    id: 'f00dfeed12345678',
    ncpus: 8,
    version: '0.1.0',
    protocol: 1,
  };

  it('toTxt has exactly proto, id, cpus, ver', () => {
    assert.deepEqual(toTxt(a), { proto: '1', id: 'f00dfeed12345678', cpus: '8', ver: '0.1.0' });
  });

  it('toTxt refuses entries longer than 255 bytes', () => {
    assert.throws(() => toTxt({ ...a, id: 'x'.repeat(260) }), RangeError);
  });

  it('fromTxt reads what toTxt writes, as strings, Buffers or raw key=value entries', () => {
    const want = { id: a.id, protocol: 1, ncpus: 8, version: '0.1.0' };
    assert.deepEqual(fromTxt(toTxt(a)), want);
    const buffers = Object.fromEntries(Object.entries(toTxt(a)).map(([k, v]) => [k, Buffer.from(v)]));
    assert.deepEqual(fromTxt(buffers), want);
    const raw = Object.entries(toTxt(a)).map(([k, v]) => Buffer.from(`${k}=${v}`));
    assert.deepEqual(fromTxt(raw), want);
    assert.deepEqual(fromTxt(raw.map(String)), want);
    assert.deepEqual(fromTxt(raw.map((b) => new Uint8Array(b))), want);
  });

  it('fromTxt is tolerant: case-insensitive keys, first one wins, bad optional fields dropped', () => {
    const raw = ['PROTO=2', 'Id=x=y', 'id=second', 'cpus=0', 'flag', '', 'ver='].map((s) => Buffer.from(s));
    assert.deepEqual(fromTxt(raw), { id: 'x=y', protocol: 2 });
    assert.deepEqual(fromTxt({ proto: 3, id: 'a', cpus: 'many', ver: 7 }), {
      id: 'a',
      protocol: 3,
      version: '7',
    });
    assert.deepEqual(fromTxt({ proto: ' 1 ', id: ' a ', cpus: ' 4 ' }), { id: 'a', protocol: 1, ncpus: 4 });
  });

  it('fromTxt returns null for what is not ours', () => {
    for (const t of [
      null,
      undefined,
      'proto=1',
      42,
      Buffer.from('proto=1'),
      {},
      { id: 'a' },
      { proto: '1' },
      { proto: 'x', id: 'a' },
      { proto: '0', id: 'a' },
      { proto: '70000', id: 'a' },
      { proto: '1', id: '' },
      [Buffer.from('path=/')],
    ]) {
      assert.equal(fromTxt(t), null, JSON.stringify(t));
    }
  });
});

describe('discovery: names', () => {
  it('instance names: name (id8:port), dots replaced, at most 63 bytes, #n after a conflict', () => {
    assert.equal(
      instanceNameFor({ name: 'box.lan', id: '0123456789ab', port: 60000 }),
      'box-lan (01234567:60000)',
    );
    assert.equal(instanceNameFor({ name: 'box', id: '0123456789ab', port: 7 }, 2), 'box (01234567:7) #2');
    const long = instanceNameFor({ name: 'é'.repeat(80), id: '0123456789ab', port: 60000 });
    assert.ok(Buffer.byteLength(long) <= 63, long);
    assert.ok(long.endsWith(' (01234567:60000)'));
    assert.notEqual(
      instanceNameFor({ name: 'box', id: 'aaaaaaaa', port: 1 }),
      instanceNameFor({ name: 'box', id: 'aaaaaaaa', port: 2 }),
    );
  });

  it('SRV host: hostname-id8.local, a valid DNS label', () => {
    assert.equal(hostNameFor('0123456789abcdef', 'My_Host.example.com'), 'my-host-01234567.local');
    assert.equal(hostNameFor('ab', '---'), 'host-ab.local');
  });
});

describe('discovery: interfaces and addresses', () => {
  it('resolveInterface takes a name or a local address; errors name the problem', () => {
    assert.deepEqual(
      (({ name, ipv4 }) => ({ name, ipv4 }))(
        resolveInterface('eth0', LOCAL) as { name: string; ipv4: string },
      ),
      { name: 'eth0', ipv4: '192.168.1.10' },
    );
    assert.equal((resolveInterface('192.168.1.10', LOCAL) as { name: string }).name, 'eth0');
    assert.equal((resolveInterface('fd00::10', LOCAL) as { ipv4: string }).ipv4, '192.168.1.10');
    const e1 = resolveInterface('nosuch0', LOCAL) as Error & { code: string };
    assert.ok(e1 instanceof Error);
    assert.equal(e1.code, 'ENODEV');
    assert.match(e1.message, /nosuch0.*eth0/);
    assert.equal((resolveInterface('10.9.9.9', LOCAL) as Error & { code: string }).code, 'EADDRNOTAVAIL');
    assert.equal((resolveInterface('tun6', LOCAL) as Error & { code: string }).code, 'EADDRNOTAVAIL');
  });

  it('rankAddresses: local-subnet IPv4, other IPv4, on-link IPv6, other IPv6, scoped link-local', () => {
    assert.deepEqual(
      rankAddresses(
        ['fe80::5', '2001:db8::5', '10.0.0.5', 'fd00::5', '192.168.1.20', '127.0.0.1', 'fe80::6%eth0', '::1'],
        LOCAL,
      ),
      ['192.168.1.20', '10.0.0.5', 'fd00::5', '2001:db8::5', 'fe80::6%eth0'],
    );
  });

  it('rankAddresses: loopback only when it is all there is', () => {
    assert.deepEqual(rankAddresses(['::1', '127.0.0.1'], LOCAL), ['::1', '127.0.0.1']);
    assert.deepEqual(rankAddresses(['127.0.0.1', 'fe80::1'], LOCAL), ['127.0.0.1']);
    assert.deepEqual(rankAddresses([], LOCAL), []);
  });

  it("rankAddresses: a remote node's address equal to one of ours (Docker bridge) goes last", () => {
    assert.deepEqual(rankAddresses(['172.17.0.1', '2001:db8::5', '192.168.1.20'], LOCAL), [
      '192.168.1.20',
      '2001:db8::5',
      '172.17.0.1',
    ]);
    // a node on this very host: all its addresses are ours, normal order
    assert.deepEqual(rankAddresses(['172.17.0.1', '192.168.1.10'], LOCAL), ['172.17.0.1', '192.168.1.10']);
  });

  it('rankAddresses: normalizes, dedupes and drops junk', () => {
    assert.deepEqual(
      rankAddresses(
        [
          '::ffff:192.168.1.20',
          '192.168.1.20',
          'FD00:0::0:5',
          'fd00::5',
          'garbage',
          '224.0.0.251',
          '0.0.0.0',
          '::',
        ],
        LOCAL,
      ),
      ['192.168.1.20', 'fd00::5'],
    );
  });
});

describe('discovery: leak detector (test/lab/leak.ts)', () => {
  const text = [
    '15:01:27.000001 lo    In  IP 127.0.0.1.33858 > 127.0.0.1.45353: UDP, length 30',
    'E..%q3@.@...........pp-leak-canary-start-1',
    '15:01:28.000001 eth0  In  IP 192.0.2.7.5353 > 224.0.0.251.5353: 0 PTR (QM)? _printer._tcp.local. (35)',
    'E..%..@.@.........._printer._tcp.local',
    '15:01:29.000001 eth0  Out IP 192.0.2.2.5353 > 224.0.0.251.5353: 0 PTR (QM)? _pp-node._tcp.local. (37)',
    'E..%..@.@..........._pp-node._tcp.local',
    '15:01:30.000001 eth0  Out IP 10.231.7.1.5353 > 224.0.0.251.5353: 0 PTR (QM)? _x._tcp.local. (37)',
    '15:01:31.000001 eth0  Out IP 192.0.2.2.5353 > 224.0.0.251.5353: 0 PTR (QM)? _airplay._tcp.local. (37)',
    '15:01:32.000001 lo    In  IP 127.0.0.1.5353 > 127.0.0.1.5353: 0 PTR (QM)? _pp-node._tcp.local. (37)',
    '..._pp-node._tcp.local',
    '',
  ].join('\n');

  it('flags pp-node payloads and lab addresses on real interfaces, and pp-node mDNS on root loopback', () => {
    const r = analyzeCapture(text, false);
    assert.equal(r.packets.length, 6);
    assert.deepEqual(
      r.leaks.map((p) => p.header.slice(0, 15)),
      ['15:01:29.000001', '15:01:30.000001'],
    );
    assert.equal(r.rootMdns.length, 1);
    assert.equal(r.foreign.length, 2);
  });

  it('strict (CI): any outgoing mDNS on a real interface is a leak', () => {
    const r = analyzeCapture(text, true);
    assert.equal(r.leaks.length, 3);
    assert.equal(r.foreign.length, 1); // incoming mDNS of another machine
  });
});

describe('discovery: this process', () => {
  it('has not loaded bonjour-service or multicast-dns (importing src/discovery does not)', () => {
    assert.deepEqual(mdnsModulesLoaded(), []);
  });
});

// ------------------------------------------------------------------ LAN tests

const zeroconf = (() => {
  // find_spec locates the package without importing it (nothing mDNS runs in this namespace)
  const probe = 'import importlib.util, sys; sys.exit(0 if importlib.util.find_spec("zeroconf") else 1)';
  const r = spawnSync(PYTHON, ['-c', probe], { encoding: 'utf8' });
  return {
    what: 'zeroconf',
    ok: r.status === 0,
    reason: `python3-zeroconf for ${PYTHON} (apt-get install python3-zeroconf)`,
  };
})();
const skipLan = labSkip([tcpdumpAvailable(), zeroconf]);

describe('discovery on a lab LAN (network namespaces)', { skip: skipLan, timeout: 120_000 }, () => {
  let lab: Lab;
  let capture: LeakCaptureT | undefined;
  let fingerprint = '';
  const timings: string[] = [];
  const run = randomBytes(4).toString('hex');
  const ID_A = `a${run}aaaaaaaa`;
  const ID_B = `b${run}bbbbbbbb`;
  const ID_D = `d${run}dddddddd`;
  const node = (ev: LabEvent) => ev.node as DiscoveredNode;
  const upOf = (instance: string) => (e: LabEvent) => e.ev === 'up' && node(e).instance === instance;
  const downOf = (instance: string) => (e: LabEvent) => e.ev === 'down' && node(e).instance === instance;

  const agent = (host: number, mode: string, cfg: object, hostname?: string): LabProcess =>
    lab.spawn(host, process.execPath, ['--import', 'tsx', AGENT, mode, JSON.stringify(cfg)], {
      cwd: ROOT,
      hostname,
    });

  /** Starts a node in a lab host; resolves with its 'announcing' event (t = just before announce()). */
  const startNode = async (
    host: number,
    cfg: Partial<NodeAnnouncement> & { interface?: string },
    hostname = 'twin',
  ) => {
    const p = agent(host, 'announce', { ncpus: 4, version: '0.1.0', protocol: 1, ...cfg }, hostname);
    const ev = await p.waitFor((e) => e.ev === 'announcing', { ms: 10_000, what: 'announcing' });
    return { p, t: ev.t!, instance: String(ev.instance) };
  };

  let browser: LabProcess; // h1, default options
  let nodeA: Awaited<ReturnType<typeof startNode>>; // h2
  let nodeB: Awaited<ReturnType<typeof startNode>>; // h3, port 7002
  let nodeC: Awaited<ReturnType<typeof startNode>>; // h3, port 7003, same name and id as B

  before(async () => {
    capture = await LeakCapture.start({ strict: process.env.CI === 'true' });
    fingerprint = rootFingerprint();
    lab = Lab.create(4);
  });

  after(async () => {
    await lab?.destroy();
    if (capture) await capture.stop().catch(() => {});
    if (timings.length) console.log(`# discovery timings\n${timings.map((t) => `#   ${t}`).join('\n')}`);
  });

  it('a browser sees three nodes (two on one host, same name; two hosts, same hostname) within 2 s of their start', async () => {
    browser = agent(1, 'browse', {});
    await browser.waitFor((e) => e.ev === 'ready', { ms: 10_000, what: 'ready' });
    [nodeA, nodeB, nodeC] = await Promise.all([
      startNode(2, { name: 'twin', id: ID_A, port: 7001, interface: 'lan0' }),
      startNode(3, { name: 'twin', id: ID_B, port: 7002, interface: lab.addr(3) }),
      startNode(3, { name: 'twin', id: ID_B, port: 7003 }),
    ]);
    const expected = [
      { n: nodeA, host: 2, id: ID_A, port: 7001 },
      { n: nodeB, host: 3, id: ID_B, port: 7002 },
      { n: nodeC, host: 3, id: ID_B, port: 7003 },
    ];
    assert.equal(new Set(expected.map((x) => x.n.instance)).size, 3, 'instance names are unique');
    for (const x of expected) {
      const ev = await browser.waitFor(upOf(x.n.instance), { ms: 3000, what: `up ${x.n.instance}` });
      const d = node(ev);
      const ms = ev.t! - x.n.t;
      timings.push(`node start -> up: ${ms} ms (${x.n.instance})`);
      assert.ok(ms < 2000, `${x.n.instance} found after ${ms} ms`);
      assert.equal(d.instance, `twin (${x.id.slice(0, 8)}:${x.port})`);
      assert.equal(d.port, x.port);
      assert.equal(d.id, x.id);
      assert.equal(d.ncpus, 4);
      assert.equal(d.version, '0.1.0');
      assert.equal(d.protocol, 1);
      assert.equal(d.host, `twin-${x.id.slice(0, 8)}.local`);
      assert.equal(d.addresses[0], lab.addr(x.host), `addresses: ${d.addresses}`);
      assert.ok(d.addresses.includes(lab.addr(x.host, '6')), `ULA in ${d.addresses}`);
      assert.ok(
        d.addresses.includes(`${lab.addr(x.host, 'll')}%lan0`),
        `scoped link-local in ${d.addresses}`,
      );
    }
    for (const p of [browser, nodeA.p, nodeB.p, nodeC.p]) {
      assert.ok(!p.events.some((e) => e.ev === 'error' || e.ev === 'crash'), p.dump());
    }
  });

  it('a browser started after the nodes finds them at once', async () => {
    const late = agent(2, 'browse', { interface: 'lan0' });
    const ready = await late.waitFor((e) => e.ev === 'ready', { ms: 10_000, what: 'ready' });
    for (const n of [nodeA, nodeB, nodeC]) {
      const ev = await late.waitFor(upOf(n.instance), { ms: 2000, what: `up ${n.instance}` });
      timings.push(`browser start -> up: ${ev.t! - ready.t!} ms (${n.instance})`);
    }
    assert.equal((await late.stop()).code, 0);
  });

  it('stop() sends goodbyes: the browser reports the node down at once', async () => {
    const t = Date.now();
    const exit = await nodeC.p.stop('SIGTERM');
    assert.equal(exit.code, 0, nodeC.p.dump());
    assert.ok(nodeC.p.events.some((e) => e.ev === 'stopped'));
    const ev = await browser.waitFor(downOf(nodeC.instance), { ms: 2000, what: `down ${nodeC.instance}` });
    timings.push(`SIGTERM -> down: ${ev.t! - t} ms`);
    assert.equal(node(ev).port, 7003);
  });

  it('a cut host is not reported down, nothing crashes, and after heal it is up again', async () => {
    const mark = browser.events.length;
    lab.cut(3);
    await new Promise((r) => setTimeout(r, 4500)); // > 3 requery periods + 0.5 s
    assert.ok(!browser.events.slice(mark).some((e) => e.ev === 'down'), 'no down without a goodbye');
    for (const p of [browser, nodeA.p, nodeB.p]) assert.ok(p.running, p.dump());
    const t = Date.now();
    lab.heal(3);
    const ev = await browser.waitFor(upOf(nodeB.instance), {
      ms: 3000,
      since: mark,
      what: 'up again after heal',
    });
    timings.push(`heal -> up again: ${ev.t! - t} ms`);
    assert.equal(node(ev).addresses[0], lab.addr(3));
    assert.ok(!browser.events.slice(mark).some((e) => e.ev === 'up' && node(e).instance === nodeA.instance));
  });

  it('a node that died without goodbye and comes back with the same id is up again', async () => {
    await nodeB.p.stop('SIGKILL');
    const mark = browser.events.length;
    await new Promise((r) => setTimeout(r, 4000));
    assert.ok(!browser.events.slice(mark).some((e) => e.ev === 'down'), 'no down without a goodbye');
    nodeB = await startNode(3, { name: 'twin', id: ID_B, port: 7002, interface: lab.addr(3) });
    const ev = await browser.waitFor(upOf(nodeB.instance), {
      ms: 2500,
      since: mark,
      what: 'up after restart',
    });
    timings.push(`restart (same id and port) -> up again: ${ev.t! - nodeB.t} ms`);
    assert.ok(ev.t! - nodeB.t < 2000);
  });

  it('a clone (same name, id and port on another host) is renamed after probing; both are seen', async () => {
    const clone = await startNode(4, { name: 'twin', id: ID_A, port: 7001 }, 'twin');
    const err = await clone.p.waitFor((e) => e.ev === 'error', { ms: 3000, what: 'conflict' });
    assert.equal(err.code, 'ECONFLICT');
    const renamed = `${nodeA.instance} #2`;
    assert.match(String(err.message), new RegExp(`as "${renamed.replace(/[()]/g, '\\$&')}"`));
    const ev = await browser.waitFor(upOf(renamed), { ms: 3000, what: `up ${renamed}` });
    timings.push(`clone start -> up under the new name: ${ev.t! - clone.t} ms`);
    assert.equal(node(ev).addresses[0], lab.addr(4));
    assert.equal(node(ev).port, 7001);
    assert.ok(browser.running && nodeA.p.running);
    assert.equal((await clone.p.stop()).code, 0);
    await browser.waitFor(downOf(renamed), { ms: 2000, what: `down ${renamed}` });
    // the original is still there, with its own address
    const mark = browser.events.length;
    browser.kill('SIGUSR1');
    const list = await browser.waitFor((e) => e.ev === 'nodes', { since: mark, what: 'nodes' });
    const orig = (list.nodes as DiscoveredNode[]).find((n) => n.instance === nodeA.instance);
    assert.equal(orig?.addresses[0], lab.addr(2));
  });

  it('API edge cases: stop before bind / while probing / twice, restart, throwing onError, bad ports', async () => {
    const p = agent(4, 'lifecycle', {});
    await p.waitFor((e) => e.ev === 'done', { ms: 15_000, what: 'done' });
    assert.equal((await p.exited).code, 0, p.dump());
    assert.deepEqual(
      p.events.filter((e) => e.ev === 'step').map((e) => e.name),
      [
        'announce + immediate stop',
        'stop while probing, stop twice',
        'stop after announcing',
        'throwing onError',
        'port 0: RangeError',
        'port 70000: RangeError',
        'port 1.5: RangeError',
        'browser start twice + immediate stop',
        'browser restart, stop twice',
        'error without listener',
      ],
    );
    assert.ok(!p.events.some((e) => e.ev === 'crash'), p.dump());
  });

  it('a bad interface option is reported (onError / error event), never thrown', async () => {
    const a1 = agent(4, 'announce', { name: 'bad', id: ID_D, port: 7010, interface: 'nosuch0' });
    const a2 = agent(4, 'announce', { name: 'bad', id: ID_D, port: 7011, interface: '10.9.9.9' });
    const b1 = agent(4, 'browse', { interface: 'nosuch0' });
    const e1 = await a1.waitFor((e) => e.ev === 'error', { ms: 10_000, what: 'error' });
    const e2 = await a2.waitFor((e) => e.ev === 'error', { ms: 10_000, what: 'error' });
    const e3 = await b1.waitFor((e) => e.ev === 'error', { ms: 10_000, what: 'error' });
    assert.equal(e1.code, 'ENODEV');
    assert.match(String(e1.message), /nosuch0/);
    assert.equal(e2.code, 'EADDRNOTAVAIL');
    assert.equal(e3.code, 'ENODEV');
    await new Promise((r) => setTimeout(r, 1500)); // a retry or two
    for (const p of [a1, a2, b1]) {
      assert.ok(p.running, p.dump());
      assert.equal((await p.stop()).code, 0, p.dump());
    }
  });

  it('EADDRINUSE on udp/5353 is reported, and the node is announced once the port is free', async () => {
    const blocker = agent(4, 'block', {});
    await blocker.waitFor((e) => e.ev === 'bound', { what: 'bound' });
    const d = await startNode(4, { name: 'late', id: ID_D, port: 7020 }, 'other');
    const err = await d.p.waitFor((e) => e.ev === 'error', { ms: 5000, what: 'error' });
    assert.equal(err.code, 'EADDRINUSE');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(d.p.running, d.p.dump());
    const t = Date.now();
    assert.equal((await blocker.stop()).code, 0);
    const ev = await browser.waitFor(upOf(d.instance), { ms: 8000, what: `up ${d.instance}` });
    timings.push(`port freed -> up (retry with backoff): ${ev.t! - t} ms`);
    assert.equal(node(ev).addresses[0], lab.addr(4));
    assert.equal((await d.p.stop()).code, 0);
    await browser.waitFor(downOf(d.instance), { ms: 2000, what: `down ${d.instance}` });
  });

  it('python-zeroconf ServiceBrowser resolves our announcement (port, TXT, address)', async () => {
    const zc = lab.spawn(4, PYTHON, ['-u', '-B', ZC_BROWSE, '_pp-node._tcp.local.'], { cwd: ROOT });
    const ev = await zc.waitFor(
      (e) => e.ev === 'added' && String(e.name).startsWith(nodeA.instance) && e.port !== undefined,
      { ms: 8000, what: `zeroconf added ${nodeA.instance}` },
    );
    assert.equal(ev.name, `${nodeA.instance}._pp-node._tcp.local.`);
    assert.equal(ev.port, 7001);
    assert.deepEqual(ev.txt, { proto: '1', id: ID_A, cpus: '4', ver: '0.1.0' });
    assert.ok((ev.addresses as string[]).includes(lab.addr(2)), JSON.stringify(ev.addresses));
    assert.equal(ev.server, `twin-${ID_A.slice(0, 8)}.local.`);
    await zc.waitFor((e) => e.ev === 'added' && String(e.name).startsWith(nodeB.instance), {
      ms: 5000,
      what: `zeroconf added ${nodeB.instance}`,
    });
    assert.equal((await zc.stop()).code, 0, zc.dump());
  });

  it('a _pp-node._tcp service registered by python-zeroconf is found by NodeBrowser (port, TXT, address)', async () => {
    const txt = { proto: '1', id: `zc${run}`, cpus: '2', ver: '9.9.9' };
    const zc = lab.spawn(
      4,
      PYTHON,
      ['-u', '-B', ZC_PUBLISH, '_pp-node._tcp.local.', 'zc-node', '7100', JSON.stringify(txt)],
      {
        cwd: ROOT,
      },
    );
    const reg = await zc.waitFor((e) => e.ev === 'registered', { ms: 10_000, what: 'registered' });
    const ev = await browser.waitFor(upOf('zc-node'), { ms: 3000, what: 'up zc-node' });
    timings.push(`zeroconf register_service -> up: ${ev.t! - Number(reg.t0)} ms`);
    const d = node(ev);
    assert.equal(d.port, 7100);
    assert.equal(d.id, txt.id);
    assert.equal(d.ncpus, 2);
    assert.equal(d.version, '9.9.9');
    assert.equal(d.protocol, 1);
    assert.deepEqual(d.addresses, [lab.addr(4)]);
    assert.equal((await zc.stop()).code, 0, zc.dump());
    await browser.waitFor(downOf('zc-node'), { ms: 2000, what: 'down zc-node' });
  });

  it('clean up: no namespace left, root namespace unchanged, no packet left through a real interface', async () => {
    for (const p of [browser, nodeA.p, nodeB.p]) {
      assert.ok(!p.events.some((e) => e.ev === 'crash'), p.dump());
      assert.equal((await p.stop()).code, 0, p.dump());
    }
    const summary = await assertCleanLabExit(lab, fingerprint, capture!);
    capture = undefined;
    timings.push(summary);
  });
});
