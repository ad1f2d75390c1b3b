/**
 * The nodes a Server found on the LAN (issue 13, items 6 and 8). An announcement is a claim
 * anyone on the LAN can make, so:
 *
 * - Nodes are keyed by the id their announcements name; each announcing instance keeps its own
 *   endpoints (addresses and port), and an announcement never replaces another instance's. The
 *   node's RemoteNode tries every candidate, the last one that worked first, and uses one only
 *   once the node there has proved the secret and said that id (`expectId`): an impostor that
 *   announces the real node's id with its own address adds a candidate that fails, never takes
 *   the node's place.
 * - At most `maxNodes` RemoteNodes come from discovery; more ids wait, oldest first (at most
 *   {@link MAX_WAITING}). While some wait, a node that never authenticated and whose last
 *   `dropAfterFailures` rounds of dials failed gives its place up and waits again at the back.
 * - Pre-authentication dials of discovered nodes go through one queue: at most
 *   `dialConcurrency` at once and `dialsPerSecond` started per second (p-queue); dials of nodes
 *   that have authenticated before go first.
 * - A node whose every instance said goodbye, or whose records expired (the browser's 'down'),
 *   is closed and forgotten, its jobs run elsewhere; but one connected now stays until its
 *   connection ends (a goodbye is unauthenticated too, and multicast may be lost while TCP works).
 */
import PQueue from 'p-queue';
import type { DiscoveredNode } from '../discovery/index.ts';
import type { DialGate, Endpoint, RemoteNode } from '../nodes/remote-node.ts';

/** Ids waiting for a place, at most. */
export const MAX_WAITING = 4096;

export interface DiscoveryLimits {
  /** RemoteNodes made from discovery, at most (default 64). */
  maxNodes: number;
  /** Failed rounds after which a node that never authenticated gives its place up (default 3). */
  dropAfterFailures: number;
  /** Pre-authentication dials at once (default 8). */
  dialConcurrency: number;
  /** Pre-authentication dials started per second, at most (default 16). */
  dialsPerSecond: number;
}

export const DEFAULT_DISCOVERY_LIMITS: Readonly<DiscoveryLimits> = Object.freeze({
  maxNodes: 64,
  dropAfterFailures: 3,
  dialConcurrency: 8,
  dialsPerSecond: 16,
});

/** What DiscoveredNodes needs of the Server. */
export interface DiscoveryHost {
  /** Makes (and adds) the RemoteNode for a discovered node id. */
  make(found: DiscoveredNode, endpoints: Endpoint[], expectId: string, dial: DialGate): RemoteNode;
  /** Closes and removes a node made by `make`. */
  drop(node: RemoteNode): void;
}

interface Entry {
  node: RemoteNode;
  /** Instance names that announce this id. */
  instances: Set<string>;
}

export class DiscoveredNodes {
  readonly #limits: DiscoveryLimits;
  /** Instance name → the id and endpoints it announced last. */
  readonly #instances = new Map<string, { id: string; endpoints: Endpoint[]; found: DiscoveredNode }>();
  readonly #byId = new Map<string, Entry>();
  /** Ids without a node (at the cap), oldest first, with their latest announcement. */
  readonly #waiting = new Map<string, DiscoveredNode>();
  readonly #queue: PQueue;
  readonly #dial: DialGate;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    private readonly host: DiscoveryHost,
    limits: Partial<DiscoveryLimits> = {},
  ) {
    this.#limits = { ...DEFAULT_DISCOVERY_LIMITS, ...limits };
    checkLimits(this.#limits);
    this.#queue = new PQueue({
      concurrency: this.#limits.dialConcurrency,
      intervalCap: this.#limits.dialsPerSecond,
      interval: 1000,
    });
    this.#dial = <T>(attempt: () => Promise<T>, proven: boolean) =>
      this.#queue.add(attempt, { priority: proven ? 1 : 0 }) as Promise<T>;
    this.#timer = setInterval(() => this.sweep(), 500);
    this.#timer.unref();
  }

  /** RemoteNodes made from discovery now. */
  get size(): number {
    return this.#byId.size;
  }

  /** Ids waiting for a place. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** An instance was announced (first time, changed, or seen again after a silence). */
  up(found: DiscoveredNode): void {
    if (this.#closed) return;
    const endpoints = found.addresses.map((host) => ({ host, port: found.port }));
    const prev = this.#instances.get(found.instance);
    if (prev && prev.id !== found.id) this.#leave(found.instance, prev.id);
    if (endpoints.length === 0) {
      if (prev) this.#leave(found.instance, found.id);
      this.#instances.delete(found.instance);
      return;
    }
    this.#instances.set(found.instance, { id: found.id, endpoints, found });
    const entry = this.#byId.get(found.id);
    if (entry) {
      entry.instances.add(found.instance);
      entry.node.rediscovered(this.#endpointsOf(entry), true);
      return;
    }
    if (this.#byId.size >= this.#limits.maxNodes) {
      this.#wait(found);
      return;
    }
    this.#make(found);
  }

  /** An instance said goodbye, or its records expired. */
  down(found: DiscoveredNode): void {
    const prev = this.#instances.get(found.instance);
    if (!prev) {
      if (this.#waiting.get(found.id)?.instance === found.instance) this.#waiting.delete(found.id);
      return;
    }
    this.#instances.delete(found.instance);
    this.#leave(found.instance, prev.id);
    this.#promote();
  }

  /**
   * While ids wait, nodes that never authenticated and keep failing give their place up (to
   * wait again at the back); then waiting ids get the free places.
   */
  sweep(): void {
    if (this.#closed) return;
    for (const [id, entry] of this.#byId) {
      if (entry.instances.size > 0 || entry.node.state === 'ready') continue;
      this.#byId.delete(id); // no longer announced, and its connection ended
      this.host.drop(entry.node);
    }
    if (this.#waiting.size > 0) {
      for (const [id, entry] of this.#byId) {
        const n = entry.node;
        if (n.proven || n.failures < this.#limits.dropAfterFailures) continue;
        this.#byId.delete(id);
        this.host.drop(n);
        const latest = [...entry.instances].map((i) => this.#instances.get(i)?.found).find((f) => f);
        for (const i of entry.instances) this.#instances.delete(i);
        if (latest) this.#wait(latest);
      }
    }
    this.#promote();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#queue.clear();
    this.#waiting.clear();
  }

  #make(found: DiscoveredNode): void {
    const entry: Entry = { node: null as unknown as RemoteNode, instances: new Set([found.instance]) };
    this.#byId.set(found.id, entry);
    entry.node = this.host.make(found, this.#endpointsOf(entry), found.id, this.#dial);
  }

  #wait(found: DiscoveredNode): void {
    this.#waiting.delete(found.id); // to the back
    this.#waiting.set(found.id, found);
    while (this.#waiting.size > MAX_WAITING) this.#waiting.delete(this.#waiting.keys().next().value!);
  }

  #promote(): void {
    while (this.#byId.size < this.#limits.maxNodes && this.#waiting.size > 0) {
      const [id, found] = this.#waiting.entries().next().value!;
      this.#waiting.delete(id);
      if (this.#byId.has(id)) continue;
      this.#instances.set(found.instance, {
        id,
        endpoints: found.addresses.map((host) => ({ host, port: found.port })),
        found,
      });
      this.#make(found);
    }
  }

  /** An instance no longer announces `id`: the node keeps its other instances, or goes. */
  #leave(instance: string, id: string): void {
    const entry = this.#byId.get(id);
    if (!entry?.instances.delete(instance)) return;
    if (entry.instances.size > 0) entry.node.rediscovered(this.#endpointsOf(entry), false);
    else if (entry.node.state !== 'ready') {
      this.#byId.delete(id);
      this.host.drop(entry.node);
    } // else: connected now; sweep() drops it once its connection ends, unless announced again
  }

  /** Every instance's endpoints, in the order the instances were first seen, without duplicates. */
  #endpointsOf(entry: Entry): Endpoint[] {
    const out: Endpoint[] = [];
    const seen = new Set<string>();
    for (const i of entry.instances) {
      for (const e of this.#instances.get(i)?.endpoints ?? []) {
        const k = `${e.host}|${e.port}`;
        if (seen.has(k)) continue;
        seen.add(k);
        out.push(e);
      }
    }
    return out;
  }
}

function checkLimits(l: DiscoveryLimits): void {
  for (const [k, v] of Object.entries(l)) {
    if (!Number.isInteger(v) || v < 1) {
      throw new RangeError(`discovery limit ${k} must be a positive integer, got ${String(v)}`);
    }
  }
}
