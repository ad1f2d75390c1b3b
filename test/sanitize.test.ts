/**
 * Names, hosts and TXT values found on the LAN, and reasons sent by peers, are printed only through
 * printable() (src/log.ts): a forged announcement cannot draw a table row of its own, clear the screen,
 * retitle the terminal or reverse text in `pp-node ls`, a client's warnings or a node's log (issue 13,
 * item 9). No mDNS here: discovery's entry point is exercised through discoveredNode(), fed what a
 * packet's records would hold.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { WebSocketServer } from 'ws';
import { formatTable, type Row } from '../src/cli/ls.ts';
import { discoveredNode } from '../src/discovery/browse.ts';
import { fromTxt } from '../src/discovery/service.ts';
import { createLogger, printable } from '../src/log.ts';
import type { NodeEvents } from '../src/nodes/compute-node.ts';
import { RemoteNode } from '../src/nodes/remote-node.ts';
import { resolveSecret } from '../src/secret.ts';

/** Anything a terminal would act on, or that reorders or hides text. */
const RAW =
  /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]|[\ud800-\udfff]/u;

const CLEAR = '\x1b[2J\x1b[H';
const TITLE = '\x1b]0;pwned\x07';
const ROW = '\n10.0.0.66:60000  64    0.1.0    yes';

describe('printable', () => {
  test('escapes C0, DEL, C1, bidi and other format characters as \\uXXXX; keeps the rest', () => {
    assert.equal(printable('alpha'), 'alpha');
    assert.equal(
      printable('café 日本 Ωμέγα 🖥 a-b_c.d:e/f@g (x) #2'),
      'café 日本 Ωμέγα 🖥 a-b_c.d:e/f@g (x) #2',
    );
    assert.equal(printable(`a${CLEAR}b`), 'a\\u001b[2J\\u001b[Hb');
    assert.equal(printable(TITLE), '\\u001b]0;pwned\\u0007');
    assert.equal(printable('a\r\nb\tc\0d'), 'a\\u000d\\u000ab\\u0009c\\u0000d');
    assert.equal(printable('del\x7f c1\u0085 csi\u009b2J'), 'del\\u007f c1\\u0085 csi\\u009b2J');
    assert.equal(printable('invoice\u202Efdp.exe'), 'invoice\\u202efdp.exe');
    assert.equal(
      printable('\u2066\u2067\u2068\u2069\u202a\u202b\u202c\u202d'),
      '\\u2066\\u2067\\u2068\\u2069\\u202a\\u202b\\u202c\\u202d',
    );
    assert.equal(
      printable('zero\u200bwidth\u200d\ufeff\u00ad\u061c'),
      'zero\\u200bwidth\\u200d\\ufeff\\u00ad\\u061c',
    );
    assert.equal(printable('line\u2028para\u2029'), 'line\\u2028para\\u2029');
    // Above U+FFFF (a tag character) and a lone surrogate: escaped as UTF-16 units, like JSON.
    assert.equal(printable('tag\u{E0041}'), 'tag\\udb40\\udc41');
    assert.equal(printable('lone\ud800'), 'lone\\ud800');
  });

  test('leaves nothing raw, is idempotent, and keeps a JSON string the same JSON value', () => {
    const all: string[] = [];
    for (let cp = 0; cp < 0x3000; cp++) all.push(String.fromCodePoint(cp));
    const nasty = `${all.join('')}\ufeff\ufff9\u{E0001}\u{1D173}\ud800x`;
    const out = printable(nasty);
    assert.doesNotMatch(out, RAW);
    assert.equal(printable(out), out);
    assert.equal(JSON.parse(printable(JSON.stringify(nasty))), nasty);
  });
});

describe('discovered data is printable where it enters (DiscoveredNode)', () => {
  const fqdn = `evil${ROW}${CLEAR}\u202e (deadbeef:60000)._pp-node._tcp.local`;
  const srv = { port: 60000, target: `h${TITLE}\u009b2J.local.` };
  const txt = fromTxt([
    Buffer.from(`id=abc${CLEAR}`),
    Buffer.from('proto=1'),
    Buffer.from('cpus=4'),
    Buffer.from(`ver=1.0${TITLE}${ROW}`),
  ]);

  test('instance, host, id and version arrive escaped', () => {
    assert.ok(txt);
    const n = discoveredNode(fqdn, srv, txt, ['192.168.1.20']);
    for (const [k, v] of Object.entries(n)) {
      if (typeof v === 'string') assert.doesNotMatch(v, RAW, k);
    }
    assert.equal(n.instance, printable(`evil${ROW}${CLEAR}\u202e (deadbeef:60000)`));
    assert.equal(n.host, 'h\\u001b]0;pwned\\u0007\\u009b2J.local');
    assert.equal(n.id, 'abc\\u001b[2J\\u001b[H');
    assert.ok(n.version.startsWith('1.0\\u001b]0;pwned\\u0007\\u000a10.0.0.66'), n.version);
    assert.deepEqual([n.port, n.protocol, n.ncpus, n.addresses], [60000, 1, 4, ['192.168.1.20']]);
    // A legitimate announcement is unchanged.
    const ok = discoveredNode(
      'alpha (1f2e3d4c:60000)._pp-node._tcp.local',
      { port: 60000, target: 'alpha-1f2e3d4c.local' },
      fromTxt(['id=1f2e3d4c5b6a', 'proto=1', 'ver=0.1.0'])!,
      [],
    );
    assert.deepEqual(ok, {
      instance: 'alpha (1f2e3d4c:60000)',
      host: 'alpha-1f2e3d4c.local',
      addresses: [],
      port: 60000,
      id: '1f2e3d4c5b6a',
      protocol: 1,
      ncpus: 0,
      version: '0.1.0',
    });
  });

  test('`pp-node ls`: a forged node is one row, with no escape sequence, whatever reached the table', () => {
    const n = discoveredNode(fqdn, srv, txt!, ['192.168.1.20']);
    const fromDiscovery: Row = {
      name: n.instance,
      instance: n.instance,
      address: n.addresses[0]!,
      port: n.port,
      cpus: n.ncpus,
      version: n.version,
      id: n.id,
      secret: 'yes',
      accepted: true,
    };
    // Defensive: rows that did not come through discovery (an error message in SECRET) are escaped too.
    const raw: Row = {
      ...fromDiscovery,
      name: `evil${ROW}`,
      version: TITLE,
      secret: `unknown (closed during the handshake: ${CLEAR}\u202e)`,
    };
    const out = formatTable([fromDiscovery, raw]);
    const lines = out.split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 3, out);
    assert.match(lines[0]!, /^NAME +ADDRESS +CPUS +VERSION +SECRET *$/);
    assert.doesNotMatch(out.replace(/\n/g, ''), RAW);
    assert.ok(lines[2]!.includes('evil\\u000a10.0.0.66:60000'), lines[2]);
  });
});

describe('printed elsewhere', () => {
  test('log lines: message and fields escaped; JSON lines parse back to the original text', () => {
    const lines: string[] = [];
    const name = `evil${ROW}${TITLE}\u009b\u202e`;
    createLogger({ write: (l) => lines.push(l) }).warn(`node ${name} said`, { name, reason: CLEAR });
    createLogger({ write: (l) => lines.push(l), format: 'json' }).warn(`node ${name} said`, { name });
    for (const l of lines) assert.doesNotMatch(l, RAW, l);
    const json = JSON.parse(lines[1]!);
    assert.equal(json.msg, `node ${name} said`);
    assert.equal(json.name, name);
  });

  test("a client's warning: a peer's close reason and a discovered label arrive escaped", async () => {
    // Whoever answers at a discovered address (no secret needed) closes the handshake with its own words.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    wss.on('connection', (ws) => ws.close(4000, `${CLEAR}${TITLE}${ROW}\u202e`));
    const { port } = wss.address() as AddressInfo;
    const { secret } = resolveSecret({ secret: 'a test secret of some length', create: false });
    const events = new Proxy({}, { get: () => () => {} }) as NodeEvents;
    const problems: Error[] = [];
    const node = new RemoteNode(
      { host: '127.0.0.1', port, label: `evil${CLEAR}:${port}`, secret, maxBackoffMs: 50 },
      events,
      {
        onUp() {},
        onDown() {},
        onProblem: (_n, e) => problems.push(e),
      },
    );
    try {
      const deadline = Date.now() + 5000;
      while (problems.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(problems.length > 0, 'a problem was reported');
      for (const e of problems) {
        assert.doesNotMatch(e.message, RAW, e.message);
        assert.ok(e.message.includes('\\u001b[2J'), e.message);
      }
      assert.doesNotMatch(node.id, RAW);
    } finally {
      await node.close();
      wss.close();
    }
  });
});
