/**
 * Test helper that runs the discovery code inside a lab host (see netlab.ts), never anywhere else:
 *
 *   ip netns exec LAB-h2 node --import tsx test/lab/agent.ts announce '{"name":"a","port":7001,"id":"..."}'
 *   ip netns exec LAB-h1 node --import tsx test/lab/agent.ts browse '{"requeryMs":500}'
 *   ip netns exec LAB-h4 node --import tsx test/lab/agent.ts block '{}'      # holds udp/5353 exclusively
 *
 * Prints one JSON object per line, {ev, t: Date.now(), ...}. On SIGTERM: stop() (goodbyes), prints
 * {ev:'stopped'} and exits 0. SIGUSR1 (browse): prints {ev:'nodes', nodes}.
 *
 * Before loading anything that could multicast it checks that it is in a lab host: another network
 * namespace than the test runner's, only `lo` and `lan0`, no default route. Otherwise it exits 2.
 */
import { print, refuseOutsideLab } from './guard.ts';

refuseOutsideLab('agent');

const [mode = '', json = '{}'] = process.argv.slice(2);
const cfg = JSON.parse(json) as Record<string, any>;
const errorEvent = (e: Error) =>
  print({ ev: 'error', code: (e as { code?: unknown }).code ?? null, message: e.message });
setInterval(() => {}, 1 << 30); // stay alive whatever the discovery code does

let stop: () => Promise<void> = async () => {};
let stopping = false;
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  void stop().then(() => {
    print({ ev: 'stopped' });
    process.exit(0);
  });
});
process.on('uncaughtException', (e) => {
  print({ ev: 'crash', message: e.message, stack: e.stack });
  process.exit(70);
});

if (mode === 'announce') {
  const { announce } = await import('../../src/discovery/announce.ts');
  const t0 = Date.now();
  const a = announce(
    {
      name: cfg.name,
      port: cfg.port,
      id: cfg.id,
      ncpus: cfg.ncpus ?? 4,
      version: cfg.version ?? '0.1.0',
      protocol: cfg.protocol ?? 1,
    },
    { interface: cfg.interface, onError: errorEvent },
  );
  print({ ev: 'announcing', t: t0, instance: a.instanceName });
  stop = () => a.stop();
} else if (mode === 'browse') {
  const { NodeBrowser } = await import('../../src/discovery/browse.ts');
  const b = new NodeBrowser({ interface: cfg.interface, requeryMs: cfg.requeryMs });
  b.on('up', (node) => print({ ev: 'up', node }));
  b.on('down', (node) => print({ ev: 'down', node }));
  b.on('error', errorEvent);
  b.start();
  print({ ev: 'ready' });
  process.on('SIGUSR1', () => print({ ev: 'nodes', nodes: b.nodes }));
  stop = () => b.stop();
} else if (mode === 'block') {
  // Not mDNS: a plain socket that holds udp/5353 without SO_REUSEADDR, so that mDNS binds fail.
  const dgram = await import('node:dgram');
  const sock = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  sock.on('error', (e) => errorEvent(e));
  sock.bind(5353, '0.0.0.0', () => print({ ev: 'bound' }));
  stop = () => new Promise<void>((r) => sock.close(() => r()));
} else if (mode === 'lifecycle') {
  // Edge cases of the API, one after the other; prints {ev:'step', name} after each, {ev:'done'} at the end.
  const { announce } = await import('../../src/discovery/announce.ts');
  const { NodeBrowser } = await import('../../src/discovery/browse.ts');
  const step = (name: string) => print({ ev: 'step', name });
  const base = { name: 'life', id: 'l1fe0000', ncpus: 1, version: '0', protocol: 1 };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  const a1 = announce({ ...base, port: 7300 }, { onError: errorEvent });
  await a1.stop(); // before the socket is even bound
  step('announce + immediate stop');
  const a2 = announce({ ...base, port: 7301 }, { onError: errorEvent });
  await sleep(100);
  await Promise.all([a2.stop(), a2.stop()]); // while probing, twice at once
  await a2.stop();
  step('stop while probing, stop twice');
  const a3 = announce({ ...base, port: 7302 }, { onError: errorEvent });
  await sleep(1300);
  await a3.stop();
  step('stop after announcing');
  const a4 = announce(
    { ...base, port: 7303 },
    {
      onError: () => {
        throw new Error('a throwing onError');
      },
      interface: 'nosuch0',
    },
  );
  await sleep(300);
  await a4.stop();
  step('throwing onError');
  for (const bad of [0, 70000, 1.5]) {
    try {
      announce({ ...base, port: bad });
      step(`port ${bad} accepted?!`);
    } catch (e) {
      step(`port ${bad}: ${(e as Error).constructor.name}`);
    }
  }

  const b = new NodeBrowser({ requeryMs: 50 });
  await b.stop(); // never started
  b.start();
  b.start(); // twice
  await b.stop();
  step('browser start twice + immediate stop');
  b.start(); // again after stop
  await sleep(300);
  await b.stop();
  await b.stop();
  step('browser restart, stop twice');
  const noListener = new NodeBrowser({ interface: 'nosuch0' }); // no 'error' listener, no onError
  noListener.start();
  await sleep(300);
  await noListener.stop();
  step('error without listener');
  print({ ev: 'done' });
  process.exit(0);
} else {
  process.stderr.write(`agent: unknown mode "${mode}"\n`);
  process.exit(2);
}
