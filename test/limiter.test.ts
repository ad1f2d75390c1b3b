/**
 * A guessing attacker against a real node (issue 13, items 3 and 4): handshakes with a wrong
 * secret from rotating 127/8 source addresses (all one host), many at once. Before, each address
 * had its own count: 435 guesses a second, and a log line for each. Loopback only.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { WebSocket } from 'ws';
import { ClientHandshake } from '../src/protocol/handshake.ts';
import { LIMITER_DEFAULTS } from '../src/protocol/rate-limit.ts';
import { type NodeProcess, startNode } from './helpers/nodes.ts';

const SECRET = 'a7f3c9e2b1d84f6a0c5e7b9d2f4a6c8e1b3d5f7a9c0e2b4d6f8a1c3e5b7d9f0a';
const WRONG = new TextEncoder().encode('0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c');
const nodes: NodeProcess[] = [];
after(async () => {
  await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
});

/** One handshake with the wrong secret from `localAddress`: true when the node answered it (a guess). */
function guess(port: number, localAddress: string): Promise<boolean> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { localAddress, perMessageDeflate: false });
    const hs = new ClientHandshake(WRONG);
    let answered = false;
    const done = () => {
      ws.terminate();
      resolve(answered);
    };
    ws.on('error', done);
    ws.on('unexpected-response', done);
    ws.on('close', done);
    ws.on('open', () => ws.send(hs.start()));
    ws.on('message', (m: Buffer) => {
      const step = hs.receive(m);
      if (step.send) ws.send(step.send);
      if (step.error?.code === 'rejected') answered = true;
      if (step.error) done();
    });
  });
}

test('rotating 127/8 source addresses get a handful of guesses, not hundreds a second; the log stays short', async () => {
  const n = await startNode({ secret: SECRET, workers: 1, logLevel: 'info' });
  nodes.push(n);
  const seconds = 3;
  const end = Date.now() + seconds * 1000;
  let tries = 0;
  let guesses = 0;
  const linesBefore = n.logs.length;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (Date.now() < end) {
        tries++;
        const src = `127.${1 + (tries % 200)}.${(tries >> 8) & 255}.${1 + (tries % 250)}`;
        if (await guess(n.port, src)) guesses++;
      }
    }),
  );
  // The burst, then one per spacing (a HELLO held up to maxWaitMs still counts).
  const d = LIMITER_DEFAULTS;
  const bound = d.burst + Math.ceil(((seconds * 1000 + d.maxWaitMs + 1000) / 60_000) * d.perMinute);
  console.log(`${tries} handshakes tried in ${seconds} s from rotating 127/8 addresses: ${guesses} answered`);
  assert.ok(guesses <= bound, `${guesses} guesses answered in ${seconds} s (at most ${bound} expected)`);
  assert.ok(guesses >= d.burst, `${guesses}: the burst is answered (slowed down, not banned)`);
  assert.ok(tries > 3 * bound, `the attacker tried (${tries})`);
  // Logs: one line on its own, then counts, per 5 s (and one line of shed connections).
  await n.waitLog((l) => typeof l.msg === 'string' && l.msg.startsWith('failed handshakes'));
  const lines = n.logs.slice(linesBefore).filter((l) => l.level === 'warn');
  assert.ok(lines.length <= 6, `${lines.length} warnings: ${JSON.stringify(lines)}`);
});
