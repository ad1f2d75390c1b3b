/**
 * A node's side of module shipping (modules/): a client's definition names the packs its
 * modules travel as; those not in this node's module cache are asked for ('need') and, until
 * they come ('pack'), the client's later messages wait, in order, so that its jobs start only
 * once their modules are here. Packs are checked (paths, hash) before they are written.
 *
 * Only authenticated clients get here (they can run code on this node anyway); a pack is
 * written under the cache's own name for it (its hash), never under a name it carries.
 */
import type { Logger } from '../log.ts';
import { PackStore } from '../modules/store.ts';
import type { FunctionDefinition, Message } from '../protocol/messages.ts';

/** What the gate needs of a client session. */
export interface PackSession {
  readonly peer: string;
  send(msg: Message): void;
}

interface SessionState {
  /** Packs asked for and not received yet. */
  waiting: Set<string>;
  /** Messages that came while waiting, in order. */
  held: Message[];
  /** Packs this client sent that could not be stored, and why. */
  failed: Map<string, Error>;
}

/** Messages that never wait: they concern the link, not the jobs. */
const PASS_THROUGH = new Set(['ping', 'pong', 'bye']);

export class PackageGate {
  private readonly states = new WeakMap<PackSession, SessionState>();
  /** Packs in use by definitions this node was given recently: spared by eviction. */
  private readonly inUse = new Map<string, number>();

  constructor(
    readonly store: PackStore,
    private readonly logger: Logger,
  ) {}

  /**
   * Looks at a message before the node handles it. Returns true when the message is taken
   * here (a pack, or held until packs come); `handle` is called for held messages once they
   * may go on, and `refuse` for a definition whose packs could not be had (its jobs fail).
   */
  intercept(
    s: PackSession,
    msg: Message,
    handle: (msg: Message) => void,
    refuse: (def: FunctionDefinition, error: Error) => void,
  ): boolean {
    let st = this.states.get(s);
    if (msg.type === 'pack') {
      this.receive(s, st, msg);
      if (st && st.waiting.size === 0) this.release(s, st, handle, refuse);
      return true;
    }
    if (PASS_THROUGH.has(msg.type)) return false;
    if (st && st.waiting.size > 0) {
      if (msg.type === 'define') this.ask(s, st, msg.defs);
      st.held.push(msg);
      return true;
    }
    if (msg.type !== 'define') return false;
    if (!msg.defs.some((d) => d.packages?.some((h) => h !== ''))) return false;
    if (!st) this.states.set(s, (st = { waiting: new Set(), held: [], failed: new Map() }));
    this.ask(s, st, msg.defs);
    if (st.waiting.size > 0) {
      st.held.push(msg);
      return true;
    }
    return this.filter(st, msg, refuse);
  }

  /** Asks for the packs of `defs` this node lacks and has not asked for yet. */
  private ask(s: PackSession, st: SessionState, defs: readonly FunctionDefinition[]): void {
    const missing: string[] = [];
    const now = Date.now();
    for (const def of defs) {
      for (const hash of def.packages ?? []) {
        if (hash === '' || st.waiting.has(hash) || missing.includes(hash)) continue;
        this.inUse.set(hash, now);
        if (this.store.has(hash)) continue;
        missing.push(hash);
        st.waiting.add(hash);
      }
    }
    if (missing.length > 0) {
      this.logger.debug('asking a client for modules', { peer: s.peer, packs: missing.length });
      s.send({ type: 'need', hashes: missing });
    }
  }

  private receive(s: PackSession, st: SessionState | undefined, msg: Message & { type: 'pack' }): void {
    if (!st?.waiting.has(msg.hash)) {
      this.logger.warn('a client sent a module it was not asked for: ignored', { peer: s.peer });
      return;
    }
    st.waiting.delete(msg.hash);
    const started = performance.now();
    try {
      const files = msg.paths.map((path, i) => ({ path, bytes: msg.blobs[i]! }));
      this.store.put({ hash: msg.hash, entry: msg.entry, files }, this.pinned());
      let bytes = 0;
      for (const b of msg.blobs) bytes += b.byteLength;
      this.logger.info('module received', {
        peer: s.peer,
        pack: msg.hash.slice(0, 12),
        bytes,
        ms: Math.round(performance.now() - started),
      });
    } catch (error) {
      this.logger.warn('could not store a module a client sent', { peer: s.peer, error });
      st.failed.set(msg.hash, error as Error);
    }
  }

  /** Every pack asked for came: the held messages go on, in order. */
  private release(
    _s: PackSession,
    st: SessionState,
    handle: (msg: Message) => void,
    refuse: (def: FunctionDefinition, error: Error) => void,
  ): void {
    const held = st.held;
    st.held = [];
    for (let i = 0; i < held.length; i++) {
      const msg = held[i]!;
      if (msg.type === 'define' && !this.filter(st, msg, refuse)) handle(msg);
      else if (msg.type !== 'define') handle(msg);
    }
  }

  /**
   * A definition whose packs failed is refused (its jobs fail with the reason); the others go
   * on. Returns true when nothing is left to handle.
   */
  private filter(
    st: SessionState,
    msg: Message & { type: 'define' },
    refuse: (def: FunctionDefinition, error: Error) => void,
  ): boolean {
    const ok: FunctionDefinition[] = [];
    for (const def of msg.defs) {
      const bad = def.packages?.find((h) => st.failed.has(h));
      if (bad) {
        const i = def.packages!.indexOf(bad);
        const why = st.failed.get(bad)!;
        refuse(
          def,
          new Error(
            `${def.name} needs module '${def.modules[i]?.[1]}', which the node could not store: ${why.message}`,
          ),
        );
      } else ok.push(def);
    }
    if (ok.length === msg.defs.length) return false;
    msg.defs = ok;
    return ok.length === 0;
  }

  /** Packs used within the last 10 minutes: kept when the cache evicts. */
  private pinned(): Set<string> {
    const cutoff = Date.now() - 10 * 60_000;
    for (const [hash, at] of this.inUse) if (at < cutoff) this.inUse.delete(hash);
    return new Set(this.inUse.keys());
  }
}

/** The gate for a node's cache folder and cap (`--cache-dir`, `--cache-max-mb`). */
export function packageGate(
  logger: Logger,
  cacheDir: string | undefined,
  cacheMaxMb: number | undefined,
): PackageGate {
  const store = new PackStore(cacheDir, cacheMaxMb === undefined ? undefined : cacheMaxMb * 1024 * 1024);
  return new PackageGate(store, logger);
}
