/**
 * The nodes `pp-node top` and `pp-node doctor` watch: those mDNS finds (browsing goes on while it
 * runs) and those given with `--nodes`. Each gets one monitor connection (probe.ts), kept open and
 * asked for the node's status on every `tick()`. A connection that closes marks its node down at
 * once (a node that stops or is killed); one that does not answer within 2 s marks it down too
 * (a host cut off). Connecting, reconnecting and asking go through one bounded queue (p-queue),
 * so a LAN of many nodes is probed a few at a time.
 */
import PQueue from 'p-queue';
import type { DiscoveredNode, NodeBrowser } from '../discovery/index.ts';
import { printable } from '../log.ts';
import { formatAddress } from '../protocol/dial.ts';
import type { NodeInfo } from '../protocol/messages.ts';
import type { WatchConfig } from './args.ts';
import { NodeProbe, ProbeError, type StatusSample } from './probe.ts';

/**
 * - 'connecting': not heard from yet;
 * - 'up': connected; `sample` is the last status (absent for a node older than protocol 3);
 * - 'down': was up, or never answered (`why` says what happened);
 * - 'rejected': it rejected this machine's secret; 'refused': it refuses this address for now;
 * - 'version': no protocol in common; 'no-secret': this machine has no secret to prove;
 * - 'error': anything else.
 */
export type NodeState =
  | 'connecting'
  | 'up'
  | 'down'
  | 'rejected'
  | 'refused'
  | 'version'
  | 'no-secret'
  | 'error';

export interface WatchedNode {
  /** mDNS instance name, or host:port for `--nodes`. */
  key: string;
  /** The node's name (from its welcome, else its announcement, else the address given). */
  name: string;
  hosts: string[];
  port: number;
  source: 'mdns' | 'nodes';
  state: NodeState;
  /** Why it is not up (printable). */
  why: string;
  /** When `state` last changed (Date.now()). */
  since: number;
  /** From the welcome once connected. */
  info: NodeInfo | null;
  /** The address connected to (host:port). */
  address: string;
  protocol: number;
  /** The last status (kept while down, for what it said last). */
  sample: StatusSample | null;
  /** What mDNS said (0 / '' when not known). */
  announced: { ncpus: number; version: string };
}

interface Entry extends WatchedNode {
  probe: NodeProbe | null;
  busy: boolean;
  nextTry: number;
}

/** How long before trying a node again, by why it failed. */
const RETRY_MS: Record<NodeState, number> = {
  connecting: 0,
  up: 0,
  down: 2000,
  error: 5000,
  // A wrong secret counts as a failed handshake there: the node bans an address after 5 in a minute.
  rejected: 60_000,
  refused: 60_000,
  version: 60_000,
  'no-secret': Number.POSITIVE_INFINITY,
};

export interface ClusterWatchOptions {
  /** Connect and status timeouts (default 3000 ms to connect, 2000 ms for an answer). */
  connectTimeoutMs?: number;
  statusTimeoutMs?: number;
  /** Probes at once (default 8). */
  concurrency?: number;
  /** A node came, went, or changed state (not on every status answer). */
  onChange?: () => void;
  /** mDNS trouble (never fatal). */
  onDiscoveryError?: (e: Error) => void;
}

/** Which of two entries for one node to show: a connected one, then one the user listed. */
function rank(n: WatchedNode): number {
  return (n.state === 'up' ? 2 : 0) + (n.source === 'nodes' ? 1 : 0);
}

export class ClusterWatch {
  readonly #cfg: WatchConfig;
  readonly #secret: Uint8Array | null;
  readonly #opts: ClusterWatchOptions;
  readonly #entries = new Map<string, Entry>();
  readonly #queue: PQueue;
  #browser: NodeBrowser | null = null;
  #stopped = false;

  constructor(cfg: WatchConfig, secret: Uint8Array | null, opts: ClusterWatchOptions = {}) {
    this.#cfg = cfg;
    this.#secret = secret;
    this.#opts = opts;
    this.#queue = new PQueue({ concurrency: opts.concurrency ?? 8 });
  }

  /** Starts browsing (unless --no-mdns) and connecting to the `--nodes`. */
  async start(): Promise<void> {
    for (const a of this.#cfg.nodes) {
      const key = formatAddress(a.host, a.port);
      this.#add(key, key, [a.host], a.port, 'nodes', { ncpus: 0, version: '' });
    }
    if (this.#cfg.mdns) {
      // Loaded only here: nothing mDNS is loaded with --no-mdns.
      const { NodeBrowser } = await import('../discovery/index.ts');
      const browser = new NodeBrowser({ interface: this.#cfg.interface, requeryMs: 1000 });
      browser.on('up', (n) => this.#discovered(n));
      browser.on('down', (n) => this.#goodbye(n));
      browser.on('error', (e) => this.#opts.onDiscoveryError?.(e));
      browser.start();
      this.#browser = browser;
    }
    this.tick();
  }

  /** mDNS responders heard so far (see NodeBrowser.responders); empty without mDNS. */
  get responders(): string[] {
    return this.#browser?.responders ?? [];
  }

  /**
   * Every node once, in a stable order (name, then address). A node listed in `--nodes` and
   * found by mDNS too, or listed under two addresses, is one row once connected (its id says
   * so): the connected entry, else the `--nodes` one.
   */
  get nodes(): WatchedNode[] {
    const sorted = [...this.#entries.values()]
      .map(({ probe: _p, busy: _b, nextTry: _n, ...n }) => ({ ...n }))
      .sort((a, b) => a.name.localeCompare(b.name) || a.key.localeCompare(b.key));
    const rows: WatchedNode[] = [];
    const rowOf = new Map<string, number>();
    for (const n of sorted) {
      const id = n.info?.id;
      const at = id === undefined ? undefined : rowOf.get(id);
      if (at === undefined) {
        if (id !== undefined) rowOf.set(id, rows.length);
        rows.push(n);
      } else if (rank(n) > rank(rows[at]!)) rows[at] = n;
    }
    return rows;
  }

  /** True when no node is still connecting and no probe is under way. */
  get settled(): boolean {
    for (const e of this.#entries.values()) if (e.busy || e.state === 'connecting') return false;
    return true;
  }

  /** Resolves when every probe queued so far has ended. */
  idle(): Promise<void> {
    return this.#queue.onIdle();
  }

  /** One round: ask every connected node for its status, (re)connect those due. Never waits. */
  tick(): void {
    if (this.#stopped) return;
    const now = Date.now();
    for (const e of this.#entries.values()) {
      if (e.busy) continue;
      if (e.probe && !e.probe.closed) {
        if (!e.probe.hasStatus) continue;
        e.busy = true;
        void this.#queue.add(() => this.#ask(e)).finally(() => (e.busy = false));
      } else if (e.nextTry <= now) {
        e.busy = true;
        void this.#queue.add(() => this.#connect(e)).finally(() => (e.busy = false));
      }
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#queue.clear();
    for (const e of this.#entries.values()) e.probe?.close();
    await this.#browser?.stop();
    this.#browser = null;
  }

  #add(
    key: string,
    name: string,
    hosts: string[],
    port: number,
    source: 'mdns' | 'nodes',
    announced: WatchedNode['announced'],
  ): Entry {
    const e: Entry = {
      key,
      name,
      hosts,
      port,
      source,
      state: this.#secret ? 'connecting' : 'no-secret',
      why: this.#secret ? '' : 'no secret on this machine: cannot ask',
      since: Date.now(),
      info: null,
      address: formatAddress(hosts[0] ?? '', port),
      protocol: 0,
      sample: null,
      announced,
      probe: null,
      busy: false,
      nextTry: 0,
    };
    this.#entries.set(key, e);
    this.#opts.onChange?.();
    return e;
  }

  #discovered(n: DiscoveredNode): void {
    const hosts = n.addresses.filter((h) => !h.includes('%'));
    const e = this.#entries.get(n.instance);
    if (!e) {
      const name = n.instance.replace(/ \([0-9a-f]{8}:\d+\)$/, '');
      this.#add(n.instance, name, hosts, n.port, 'mdns', { ncpus: n.ncpus, version: n.version });
      this.tick();
      return;
    }
    e.hosts = hosts;
    e.port = n.port;
    e.announced = { ncpus: n.ncpus, version: n.version };
    // Announced again (restarted, or back on the LAN): try it now.
    if (e.state !== 'up' && e.state !== 'no-secret' && !e.busy) {
      e.nextTry = 0;
      this.tick();
    }
  }

  #goodbye(n: DiscoveredNode): void {
    const e = this.#entries.get(n.instance);
    if (!e) return;
    e.probe?.close();
    e.probe = null;
    this.#set(e, 'down', 'it said goodbye on the LAN (stopped)');
  }

  #set(e: Entry, state: NodeState, why: string): void {
    if (e.state !== state) e.since = Date.now();
    e.state = state;
    e.why = why;
    e.nextTry = Date.now() + RETRY_MS[state];
    this.#opts.onChange?.();
  }

  async #connect(e: Entry): Promise<void> {
    if (this.#stopped || !this.#secret) return;
    let probe: NodeProbe;
    try {
      probe = await NodeProbe.connect(e.hosts, e.port, this.#secret, {
        timeoutMs: this.#opts.connectTimeoutMs ?? 3000,
      });
    } catch (error) {
      const kind = error instanceof ProbeError ? error.kind : 'error';
      // The address has a column of its own: the reason starts with what matters.
      const why = printable((error as Error).message).replace(/^\S+:\d+: /, '');
      e.address = formatAddress(e.hosts.at(-1) ?? '', e.port);
      this.#set(e, kind === 'unreachable' ? 'down' : kind, why);
      return;
    }
    if (this.#stopped) {
      probe.close();
      return;
    }
    e.probe = probe;
    e.info = probe.info;
    e.name = printable(probe.info.name);
    e.address = probe.address;
    e.protocol = probe.protocol;
    probe.onClose((why) => {
      if (e.probe !== probe) return;
      e.probe = null;
      if (!this.#stopped) this.#set(e, 'down', printable(why));
    });
    this.#set(
      e,
      'up',
      probe.hasStatus ? '' : `pp-node ${printable(probe.info.version)} has no status: upgrade it`,
    );
    await this.#ask(e);
  }

  async #ask(e: Entry): Promise<void> {
    const probe = e.probe;
    if (!probe || probe.closed || !probe.hasStatus) return;
    try {
      // No onChange: samples are shown by the next refresh (a frame per answer would be one per node).
      e.sample = await probe.status(this.#opts.statusTimeoutMs ?? 2000);
    } catch {
      // The connection is dropped and onClose marked the node down.
    }
  }
}
