/**
 * A TCP proxy on 127.0.0.1 that delays every chunk by `oneWayMs` in each direction: a slow
 * link (a busy Wi-Fi) for tests and benchmarks, on kernels without netem. Each direction keeps
 * its chunks in a queue stamped with the time they may leave, so order is kept and no chunk
 * leaves before its time. An end (half-close) travels the same way, after the data before it;
 * an error or reset of either side ends the whole connection at once.
 *
 * With `waitForTarget`, a connection whose target refuses it is held (its data queued) and the
 * target is tried again every {@link RETRY_MS} ms until it answers: a node that is not yet
 * started then looks, to a client, like one that answers late, and the client does not fall
 * into its reconnection backoff.
 */
import net from 'node:net';

export interface DelayProxyOptions {
  targetPort: number;
  /** Default 127.0.0.1. */
  targetHost?: string;
  /** Delay added to every chunk, in each direction (a round trip gets twice this). */
  oneWayMs: number;
  /** Hold connections while the target refuses them, and retry (see the top). Default false. */
  waitForTarget?: boolean;
}

export interface DelayProxy {
  /** The proxy's port on 127.0.0.1. */
  port: number;
  /** Connections open now. */
  readonly connections: number;
  /** Stops listening and ends every connection at once. */
  close(): Promise<void>;
}

const RETRY_MS = 20;
/** A direction stops reading its source while this many bytes wait to be written. */
const HIGH_WATER_BYTES = 8 * 1024 * 1024;

const END = Symbol('end');
type Item = { due: number; chunk: Buffer | typeof END };

/** One direction of one connection: chunks read from `from`, written to `to` after the delay. */
class Lane {
  private readonly items: Item[] = [];
  private head = 0;
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | null = null;
  private paused = false;
  /** The target side is connected and may be written to. */
  ready = false;

  constructor(
    private readonly from: net.Socket,
    private readonly to: net.Socket,
    private readonly delayMs: number,
  ) {
    from.on('data', (chunk: Buffer) => this.push(chunk));
    from.on('end', () => this.push(END));
    to.on('drain', () => this.resumeIfRoom());
  }

  /** Called once `to` is connected. */
  start(): void {
    this.ready = true;
    this.flush();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.items.length = 0;
    this.head = 0;
  }

  private push(chunk: Buffer | typeof END): void {
    const due = performance.now() + this.delayMs;
    if (chunk !== END) {
      this.queuedBytes += chunk.length;
      if (this.queuedBytes > HIGH_WATER_BYTES && !this.paused) {
        this.paused = true;
        this.from.pause();
      }
    }
    this.items.push({ due, chunk });
    if (this.delayMs <= 0) this.flush();
    else if (!this.timer) this.schedule();
  }

  private schedule(): void {
    if (!this.ready || this.head >= this.items.length) return;
    const wait = Math.max(0, this.items[this.head]!.due - performance.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, Math.ceil(wait));
  }

  private flush(): void {
    if (!this.ready || this.timer) return;
    const now = performance.now();
    while (this.head < this.items.length && this.items[this.head]!.due <= now) {
      const { chunk } = this.items[this.head]!;
      this.items[this.head++] = undefined as unknown as Item;
      if (this.to.destroyed) continue;
      if (chunk === END) this.to.end();
      else {
        this.queuedBytes -= chunk.length;
        this.to.write(chunk);
      }
    }
    if (!this.paused && this.to.writableLength > HIGH_WATER_BYTES) {
      this.paused = true;
      this.from.pause();
    }
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 1024) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
    this.resumeIfRoom();
    this.schedule();
  }

  private resumeIfRoom(): void {
    if (
      this.paused &&
      this.queuedBytes <= HIGH_WATER_BYTES / 2 &&
      this.to.writableLength <= HIGH_WATER_BYTES
    ) {
      this.paused = false;
      this.from.resume();
    }
  }
}

export async function startDelayProxy(opts: DelayProxyOptions): Promise<DelayProxy> {
  const host = opts.targetHost ?? '127.0.0.1';
  const delayMs = Math.max(0, opts.oneWayMs);
  const open = new Set<() => void>();
  let closed = false;

  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    if (closed) {
      client.destroy();
      return;
    }
    const upstream = new net.Socket({ allowHalfOpen: true });
    upstream.setNoDelay(true);
    const up = new Lane(client, upstream, delayMs);
    const down = new Lane(upstream, client, delayMs);
    let retry: NodeJS.Timeout | null = null;
    let done = false;
    let closes = 0;
    const finish = () => {
      if (done) return;
      done = true;
      if (retry) clearTimeout(retry);
      up.stop();
      down.stop();
      client.destroy();
      upstream.destroy();
      open.delete(finish);
    };
    open.add(finish);
    // An error on either side ends both at once; a clean close of both ends the pair.
    client.on('error', finish);
    const onClose = () => {
      if (++closes === 2) finish();
    };
    client.on('close', (hadError) => (hadError ? finish() : onClose()));

    const connect = () => {
      retry = null;
      upstream.connect(opts.targetPort, host);
    };
    upstream.on('connect', () => {
      up.start();
      down.start();
    });
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      const waiting = opts.waitForTarget && !up.ready && error.code === 'ECONNREFUSED';
      if (waiting && !done && !closed && !client.destroyed) {
        retry = setTimeout(connect, RETRY_MS); // the same socket object connects again
        return;
      }
      finish();
    });
    upstream.on('close', (hadError) => {
      if (retry) return; // a refused attempt; the next one follows
      if (hadError) finish();
      else onClose();
    });
    connect();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    get connections() {
      return open.size;
    },
    close() {
      closed = true;
      for (const finish of [...open]) finish();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
