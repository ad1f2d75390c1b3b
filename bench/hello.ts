// What a peer without the secret gets from a node, and what it costs the node (issue 13, items 1,
// 3 and 4): online guesses per minute, the node's CPU and log lines under a flood of HELLOs from
// rotating 127/8 source addresses, the CPU of one HELLO answer, and the node's memory while 400
// connections (50 addresses, 8 each) each send most of a 2 MiB message before authenticating.
//
//   npx tsx bench/hello.ts [--seconds 20] [--concurrency 32] [--before DIR]
//
// --before DIR: a built checkout of another version (its dist/ and bin/, e.g. `git worktree add`
// of an older commit, then `npm run build` there) measured in the same run, for before/after
// figures. Loopback only: the node listens on 127.0.0.1 and the attacker connects from 127/8.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { loopbackNodeArgs } from '../test/helpers/nodes.ts';

const { values: cli } = parseArgs({
  options: {
    seconds: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '32' },
    before: { type: 'string' },
  },
});
const SECONDS = Number(cli.seconds);
const CONCURRENCY = Number(cli.concurrency);
const here = resolve(import.meta.dirname, '..');
const trees: Array<[string, string]> = [];
if (cli.before) trees.push(['before', resolve(cli.before)]);
trees.push(['this tree', here]);

const NODE_SECRET = randomBytes(32).toString('hex');
const WRONG = Buffer.from('0'.repeat(64));

interface HandshakeModule {
  ClientHandshake: new (
    secret: Uint8Array,
  ) => { start(): Uint8Array; receive(m: Uint8Array): { send?: Uint8Array; error?: { code: string } } };
  /** Called ServerHandshake before the daemon/node rename. */
  NodeHandshake?: new (
    secret: Uint8Array,
  ) => { receive(m: Uint8Array): { send?: Uint8Array } };
  ServerHandshake?: new (secret: Uint8Array) => { receive(m: Uint8Array): { send?: Uint8Array } };
}

/** CPU µs of a node's answer to one HELLO (NodeHandshake.receive of a CLIENT_HELLO), median of rounds. */
function helloCostUs(hs: HandshakeModule): number {
  const secret = Buffer.from(NODE_SECRET);
  const Node = (hs.NodeHandshake ?? hs.ServerHandshake)!;
  const hellos = Array.from({ length: 200 }, () => new hs.ClientHandshake(WRONG).start());
  const rounds: number[] = [];
  for (let r = 0; r < 9; r++) {
    const t0 = process.cpuUsage();
    for (const h of hellos) new Node(secret).receive(h);
    const d = process.cpuUsage(t0);
    rounds.push((d.user + d.system) / hellos.length);
  }
  rounds.sort((a, b) => a - b);
  return rounds[4]!;
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks (100/s)
}

async function startNode(tree: string) {
  const child = spawn(
    process.execPath,
    [join(tree, 'bin/pp-node.js'), ...loopbackNodeArgs(), '--log-format', 'json'],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PP_SECRET: NODE_SECRET } },
  );
  let logLines = 0;
  let port = 0;
  const ready = new Promise<void>((res, rej) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      logLines++;
      try {
        const l = JSON.parse(line);
        if (l.msg === 'pp-node ready') {
          port = l.port;
          res();
        }
      } catch {}
    });
    child.once('exit', (c) => rej(new Error(`node exited ${c}`)));
  });
  await ready;
  await new Promise((r) => setTimeout(r, 1000)); // workers up
  return { child, port, lines: () => logLines };
}

async function flood(tree: string, hs: HandshakeModule) {
  const { child, port, lines: logLines } = await startNode(tree);
  const linesBefore = logLines();
  const cpu0 = cpuSeconds(child.pid!);
  let guesses = 0; // REJECTED for a wrong secret: one secret tried
  let refused = 0; // 429 at the upgrade, or closed before an answer
  let n = 0;
  const end = Date.now() + SECONDS * 1000;
  const one = (): Promise<void> =>
    new Promise((res) => {
      n++;
      const src = `127.${1 + ((n >> 16) & 127)}.${(n >> 8) & 255}.${1 + (n % 250)}`;
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { localAddress: src, perMessageDeflate: false });
      const c = new hs.ClientHandshake(WRONG);
      let answered = false;
      const done = () => {
        if (!answered) refused++;
        ws.terminate();
        res();
      };
      ws.on('error', done);
      ws.on('unexpected-response', done);
      ws.on('close', done);
      ws.on('open', () => ws.send(c.start()));
      ws.on('message', (m: Buffer) => {
        const step = c.receive(m);
        if (step.send) ws.send(step.send);
        if (step.error) {
          answered = true;
          if (step.error.code === 'rejected') guesses++;
          done();
        }
      });
    });
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) await one();
    }),
  );
  const cpu = cpuSeconds(child.pid!) - cpu0;
  const lines = logLines() - linesBefore;
  child.kill('SIGKILL');
  return {
    guessesPerMinute: (guesses / SECONDS) * 60,
    refused,
    nodeCpuPercent: (100 * cpu) / SECONDS,
    logLinesPer20s: (lines / SECONDS) * 20,
  };
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

/** Node RSS before and at its peak while 400 pre-auth connections each send most of a 2 MiB message. */
async function preauthMemory(tree: string) {
  const { child, port } = await startNode(tree);
  const pid = child.pid!;
  const before = rssMiB(pid);
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMiB(pid));
  }, 25);
  const header = Buffer.alloc(14);
  header[0] = 0x82;
  header[1] = 0x80 | 127;
  header.writeBigUInt64BE(BigInt(2 << 20), 2);
  const payload = Buffer.alloc((2 << 20) - 64, 0x41);
  const sockets: Socket[] = [];
  const settled: Promise<void>[] = [];
  for (let i = 0; i < 400; i++) {
    const socket = connect({ host: '127.0.0.1', port, localAddress: `127.0.1.${1 + (i % 50)}` });
    sockets.push(socket);
    socket.on('error', () => {});
    settled.push(
      new Promise<void>((res) => {
        socket.once('close', () => res());
        socket.once('data', () => {
          socket.write(header);
          socket.write(payload, () => res());
        });
      }),
    );
    socket.write(
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
  }
  await Promise.race([Promise.all(settled), new Promise((r) => setTimeout(r, 20_000))]);
  await new Promise((r) => setTimeout(r, 500));
  clearInterval(sampler);
  for (const s of sockets) s.destroy();
  child.kill('SIGKILL');
  return { before, peak };
}

console.log(
  `flood: ${CONCURRENCY} concurrent handshakes with a wrong secret from rotating 127/8 addresses, ${SECONDS} s\n`,
);
for (const [label, tree] of trees) {
  const hs = (await import(join(tree, 'dist/protocol/handshake.js'))) as HandshakeModule;
  const us = helloCostUs(hs);
  const f = await flood(tree, hs);
  const m = await preauthMemory(tree);
  console.log(
    `${label.padEnd(10)} HELLO answer ${us.toFixed(0).padStart(5)} µs CPU | guesses/min ${f.guessesPerMinute
      .toFixed(0)
      .padStart(6)} | refused ${String(f.refused).padStart(6)} | node CPU ${f.nodeCpuPercent
      .toFixed(0)
      .padStart(3)}% | log lines per 20 s ${f.logLinesPer20s.toFixed(0).padStart(6)} | ` +
      `RSS under 400 pre-auth ${m.before.toFixed(0)} -> peak ${m.peak.toFixed(0)} MiB (+${(m.peak - m.before).toFixed(0)})`,
  );
}
