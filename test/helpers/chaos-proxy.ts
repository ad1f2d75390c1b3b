/**
 * A TCP proxy on 127.0.0.1 whose link can be cut and healed, for chaos tests: `cut('drop')`
 * stops every byte both ways (a pulled cable or a dead Wi-Fi: nothing is refused, nothing
 * arrives; what was sent waits, as TCP would retransmit it, and is delivered on `heal()` to
 * connections still open then); `cut('reset')` ends every connection at once and refuses new
 * ones until `heal()`. The target can change (`retarget`), as when a node restarts on another
 * port.
 */
import net from 'node:net';

export interface ChaosProxy {
  readonly port: number;
  /** Cuts the link: 'drop' holds all traffic, 'reset' ends all connections (and refuses new ones). */
  cut(mode: 'drop' | 'reset'): void;
  /** Heals the link: held traffic flows again, new connections get through. */
  heal(): void;
  /** New connections go to this port from now on. */
  retarget(port: number): void;
  readonly state: 'up' | 'drop' | 'reset';
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  target: net.Socket;
}

export async function startChaosProxy(targetPort: number): Promise<ChaosProxy> {
  let target = targetPort;
  let state: 'up' | 'drop' | 'reset' = 'up';
  const pairs = new Set<Pair>();

  const server = net.createServer((client) => {
    client.on('error', () => {});
    if (state === 'reset') {
      client.destroy();
      return;
    }
    const upstream = net.connect({ host: '127.0.0.1', port: target });
    upstream.on('error', () => {});
    const pair: Pair = { client, target: upstream };
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
    if (state === 'drop') hold(pair);
  });

  const hold = (p: Pair) => {
    p.client.pause();
    p.target.pause();
    p.client.unpipe(p.target);
    p.target.unpipe(p.client);
  };
  const release = (p: Pair) => {
    p.client.pipe(p.target);
    p.target.pipe(p.client);
    p.client.resume();
    p.target.resume();
  };

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get state() {
      return state;
    },
    cut(mode) {
      if (state !== 'up') return;
      state = mode;
      for (const p of [...pairs]) {
        if (mode === 'reset') {
          p.client.resetAndDestroy();
          p.target.destroy();
        } else {
          hold(p);
        }
      }
    },
    heal() {
      if (state === 'drop') for (const p of pairs) release(p);
      state = 'up';
    },
    retarget(p) {
      target = p;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const p of pairs) {
          p.client.destroy();
          p.target.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
