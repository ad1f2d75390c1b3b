/**
 * The live dashboard of a running job server (`new Server({ dashboard: true })`): one HTML page
 * (assets/dashboard.html, shipped in the package: nothing from a CDN) and a WebSocket that
 * sends it a summary a few times a second (collector.ts), never one message per job.
 *
 * Access: every request and every WebSocket upgrade must carry the random token that is part of
 * the printed URL; a WebSocket upgrade from another origin than the page's is refused. It binds
 * to 127.0.0.1 unless a `host` is given explicitly.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  createServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import { type WebSocket, WebSocketServer } from 'ws';
import { Collector, type DashboardSource } from './collector.ts';

/** Options of the dashboard (`ServerOptions.dashboard`). */
export interface DashboardOptions {
  /** TCP port; default 8787 (any free port if that one is taken); 0: any free port. */
  port?: number;
  /**
   * Address to listen on; default `'127.0.0.1'` (this machine only). Anything else (e.g.
   * `'0.0.0.0'` to reach it from other machines) must be given here explicitly; the page is
   * then open to whoever has the URL with its token, over plain HTTP.
   */
  host?: string;
  /** The token the URL must carry (at least 16 letters, digits, `-` or `_`); default: 128 random bits. */
  token?: string;
}

/** The default port (Dask's dashboard uses the same). */
export const DEFAULT_DASHBOARD_PORT = 8787;
/** Updates sent to each page per second, at most. */
export const UPDATES_PER_SECOND = 4;
/** Pages connected at once, at most. */
export const MAX_PAGES = 16;
/** A page that has this much unsent stays behind: updates skip it until it catches up. */
const MAX_BUFFERED = 1 << 20;

const ASSET = new URL('../../assets/dashboard.html', import.meta.url);
let page: Buffer | null = null;

/** Checks `ServerOptions.dashboard` at once (the server is constructed synchronously). */
export function dashboardOptions(
  spec: boolean | number | DashboardOptions,
): Required<DashboardOptions> | null {
  if (spec === false) return null;
  const o: DashboardOptions = spec === true ? {} : typeof spec === 'number' ? { port: spec } : spec;
  if (typeof o !== 'object' || o === null)
    throw new TypeError(
      `dashboard must be true, a port number or { port, host, token }, got ${String(spec)}`,
    );
  const port = o.port ?? DEFAULT_DASHBOARD_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new RangeError(
      `dashboard port must be a whole number from 0 to 65535 (0: any free port), got ${port}`,
    );
  const host = o.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '')
    throw new TypeError(
      `dashboard host must be an address such as '127.0.0.1' or '0.0.0.0', got ${String(host)}`,
    );
  const token = o.token ?? randomBytes(16).toString('base64url');
  if (typeof token !== 'string' || !/^[A-Za-z0-9_-]{16,}$/.test(token))
    throw new RangeError(
      'dashboard token must be at least 16 letters, digits, - or _ (or leave it out for a random one)',
    );
  return { port, host, token };
}

/** The dashboard's HTTP and WebSocket server. */
export class Dashboard {
  readonly collector: Collector;
  readonly #options: Required<DashboardOptions>;
  readonly #http: HttpServer;
  readonly #wss = new WebSocketServer({ noServer: true, maxPayload: 1024, perMessageDeflate: false });
  readonly #token: Buffer;
  #timer: NodeJS.Timeout | null = null;
  readonly #listening: Promise<string | null>;
  #closed = false;
  /** Bytes sent to pages so far (for the benchmark). */
  bytesSent = 0;

  constructor(source: DashboardSource, options: Required<DashboardOptions>, t0: number) {
    this.#options = options;
    this.#token = Buffer.from(options.token);
    this.collector = new Collector(source, t0);
    this.#http = createServer((req, res) => this.#request(req, res));
    this.#http.on('upgrade', (req, socket, head) => this.#upgrade(req, socket as Duplex, head));
    // Neither the server nor a page's connection keeps the program alive (timers neither).
    this.#http.on('connection', (socket) => socket.unref());
    this.#listening = this.#listen();
  }

  /** Resolves with the page's URL once it is served (null if it could not start: the reason was printed). */
  url(): Promise<string | null> {
    return this.#listening;
  }

  async #listen(): Promise<string | null> {
    const { host, port } = this.#options;
    try {
      await listen(this.#http, host, port);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE' && port === DEFAULT_DASHBOARD_PORT) {
        // The default port is taken (another server's dashboard?): any free one will do.
        try {
          await listen(this.#http, host, 0);
        } catch (again) {
          return this.#failed(again);
        }
      } else return this.#failed(error);
    }
    this.#http.unref(); // the dashboard never keeps the program alive
    if (this.#closed) {
      this.#http.close();
      return null;
    }
    const { port: bound } = this.#http.address() as AddressInfo;
    const shown = host === '0.0.0.0' || host === '::' ? hostname() : host.includes(':') ? `[${host}]` : host;
    const url = `http://${shown}:${bound}/?token=${this.#options.token}`;
    process.stderr.write(`pp-node: dashboard at ${url}\n`);
    return url;
  }

  #failed(error: unknown): null {
    const { host, port } = this.#options;
    const e = error as NodeJS.ErrnoException;
    const hint =
      e.code === 'EADDRINUSE'
        ? `port ${port} is in use: pass another one (dashboard: ${port + 1}) or 0 for any free port`
        : e.code === 'EADDRNOTAVAIL'
          ? `${host} is not an address of this machine: use '127.0.0.1', '0.0.0.0' or one of its addresses`
          : e.code === 'EACCES'
            ? `port ${port} needs privileges: use a port above 1023`
            : e.message;
    process.stderr.write(
      `pp-node: the dashboard could not start on ${host}:${port}: ${hint} (jobs run on)\n`,
    );
    return null;
  }

  #authorized(req: IncomingMessage): URL | null {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://x');
    } catch {
      return null;
    }
    const given = Buffer.from(url.searchParams.get('token') ?? '');
    return given.length === this.#token.length && timingSafeEqual(given, this.#token) ? url : null;
  }

  #request(req: IncomingMessage, res: ServerResponse): void {
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('pp-node dashboard: only GET\n');
      return;
    }
    const url = this.#authorized(req);
    if (!url) {
      res.writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(
        'pp-node dashboard: this address needs the token of the URL the job server printed on stderr (…/?token=…)\n',
      );
      return;
    }
    if (url.pathname !== '/') {
      res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end('pp-node dashboard: not found (the page is at /)\n');
      return;
    }
    page ??= readFileSync(ASSET);
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': page.byteLength,
      'Content-Security-Policy':
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
      'X-Frame-Options': 'DENY',
    });
    res.end(req.method === 'HEAD' ? undefined : page);
  }

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refused = this.#refusal(req);
    if (refused) {
      const [status, why] = refused;
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n${why}\n`);
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#connected(ws));
  }

  /** Why a WebSocket upgrade is refused (HTTP status, text), or null to accept it. */
  #refusal(req: IncomingMessage): [string, string] | null {
    const url = this.#authorized(req);
    if (!url) return ['403 Forbidden', 'pp-node dashboard: the token is missing or wrong'];
    if (url.pathname !== '/ws') return ['404 Not Found', 'pp-node dashboard: the socket is at /ws'];
    // A page of another site must not read the cluster's state (it would need the token too,
    // but a browser's Origin says who asks): only the dashboard's own page may connect.
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `http://${req.headers.host}`)
      return ['403 Forbidden', 'pp-node dashboard: foreign origin'];
    if (this.#closed) return ['503 Service Unavailable', 'pp-node dashboard: closed'];
    if (this.#wss.clients.size >= MAX_PAGES)
      return ['503 Service Unavailable', `pp-node dashboard: at most ${MAX_PAGES} pages at once`];
    return null;
  }

  #connected(ws: WebSocket): void {
    ws.on('message', () => ws.close(1003, 'the dashboard only sends')); // the page never speaks
    ws.on('error', () => ws.terminate());
    ws.on('close', () => {
      if (this.#wss.clients.size === 0 && this.#timer) {
        clearInterval(this.#timer);
        this.#timer = null;
      }
    });
    this.#send(ws, JSON.stringify({ type: 'hello', ...this.collector.snapshot() }));
    if (!this.#timer) {
      this.#timer = setInterval(() => this.#tick(), 1000 / UPDATES_PER_SECOND);
      this.#timer.unref();
    }
  }

  #tick(): void {
    const text = JSON.stringify({ type: 'update', ...this.collector.update() });
    for (const ws of this.#wss.clients) if (ws.bufferedAmount < MAX_BUFFERED) this.#send(ws, text);
  }

  #send(ws: WebSocket, text: string): void {
    if (ws.readyState !== ws.OPEN) return;
    this.bytesSent += Buffer.byteLength(text);
    ws.send(text);
  }

  /** Stops serving; pages see the connection close. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.collector.close();
    for (const ws of this.#wss.clients) ws.close(1001, 'the job server closed');
    await this.#listening;
    await new Promise<void>((resolve) => {
      this.#http.close(() => resolve());
      this.#http.closeAllConnections();
    });
    for (const ws of this.#wss.clients) ws.terminate();
    this.#wss.close();
  }
}

function listen(http: HttpServer, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    http.once('error', onError);
    http.listen(port, host, () => {
      http.off('error', onError);
      resolve();
    });
  });
}
