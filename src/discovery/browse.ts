/**
 * Finds pp-nodes on the LAN (`_pp-node._tcp` over mDNS, bonjour-service's socket).
 *
 *   const b = new NodeBrowser({ onError: (e) => log(e) });
 *   b.on('up', (n) => connectIfNotConnected(n));   // n.addresses: best first (rankAddresses)
 *   b.on('down', (n) => ...);                       // only after a goodbye (clean stop)
 *   b.start();
 *
 * The browser queries for `_pp-node._tcp.local` at start and then every `requeryMs`, so a node started
 * later, or an announcement that was lost, is found within about a second; it also hears the
 * announcements nodes send when they start.
 *
 * Events, tracked by instance name:
 * - 'up': an instance seen for the first time; seen again after a goodbye; seen again after it had
 *   been silent for more than 3 requery periods (a node that was cut off, crashed or restarted with the
 *   same id and port); or its port, host, addresses or TXT changed. So 'up' can repeat for an instance
 *   without a 'down' in between: consumers treat it as "this node is there, connect unless connected".
 * - 'down': after a goodbye, or when the instance's records expired: not heard for their TTL
 *   (at most 2 minutes, at least 3 requery periods). Both are claims from the LAN: consumers keep
 *   a node they are connected to until its connection ends.
 *
 * What is announced is a claim: only addresses on a local subnet (or IPv6 link-local) are kept
 * (linkAddresses), and at most `maxNodes` instances are tracked (more are ignored until some go).
 * - 'error': network trouble, emitted only when someone listens (and passed to `onError`); the browser
 *   keeps going.
 *
 * Of bonjour-service we use the socket (mdns.ts), not its public `find()`: its Browser (read in
 * bonjour-service 1.4.4, lib/browser.js) would lose what the LAN needs of us:
 * - the bounds of issue 13: it keeps every instance announced, in an array it searches for each
 *   record of each packet (2,000 fake announcements: memory and CPU without limit); we keep at most
 *   `maxNodes` instances and MAX_PARTIALS incomplete ones;
 * - vanished-host detection: an instance heard again is not refreshed (its `lastSeen` stays that of
 *   the first packet), so its `expire()` drops nodes that are there, and a node that died without a
 *   goodbye and came back with the same name is never 'up' again; we refresh on every packet and
 *   say 'up' after a silence (#update);
 * - split answers: it builds an instance only from a packet with its PTR and SRV together; we
 *   gather them across packets and ask for what is missing;
 * - on-link address filtering: it reports the addresses as announced; we keep only those on a
 *   local link (linkAddresses), scope IPv6 link-local ones, and hear only on-link sources (mdns.ts);
 * - TXT as sent: its decoder keeps the last of repeated keys and drops empty values; fromTxt keeps
 *   the first (RFC 6763 §6.4) and reads what python-zeroconf and others send;
 * - `responders` (`pp-node doctor`): every response heard, for any service.
 */
import type { RemoteInfo } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { printable } from '../log.ts';
import {
  type LocalInterfaces,
  linkAddresses,
  normalizeAddress,
  onLink4,
  rankAddresses,
} from './addresses.ts';
import { type DnsPacket, type DnsRecord, MdnsLink, type MdnsSession } from './mdns.ts';
import { dnsKey, fromTxt, type NodeTxt, SERVICE_DOMAIN } from './service.ts';

export { type LocalInterfaces, rankAddresses } from './addresses.ts';

/**
 * A node as announced on the LAN. Anyone on the LAN can announce anything: every string here went
 * through printable() (log.ts) on the way in, so control, bidi and other format characters arrive as
 * visible `\uXXXX` escapes, never raw (see discoveredNode). Still only a claim: the node proves nothing
 * until the handshake.
 */
export interface DiscoveredNode {
  /** DNS-SD instance name, e.g. `alpha (1f2e3d4c:60000)`; unique on the LAN. */
  instance: string;
  /** SRV target host (e.g. `alpha-1f2e3d4c.local`). */
  host: string;
  /** Addresses to try, best first (see rankAddresses); IPv6 link-local ones carry a scope id. */
  addresses: string[];
  port: number;
  id: string;
  /** 0 when the node did not say. */
  ncpus: number;
  /** '' when the node did not say. */
  version: string;
  protocol: number;
}

export interface BrowseOptions {
  /** Interface name (eth0) or IPv4 address to browse on; default: the system's multicast route. */
  interface?: string;
  /** Re-query period; default 1000 ms (min 100). */
  requeryMs?: number;
  /** Network trouble (never thrown). Each distinct error is reported once per 10 minutes. */
  onError?: (e: Error) => void;
  /** Instances tracked at most (default 4096); more are ignored until some go. */
  maxNodes?: number;
}

export type NodeBrowserEvents = { up: [DiscoveredNode]; down: [DiscoveredNode]; error: [Error] };

interface Entry {
  node: DiscoveredNode;
  lastSeen: number;
  /** The SRV record's TTL, ms. */
  ttlMs: number;
}

/** Records of an instance not heard for this long are taken as expired, whatever their TTL. */
const MAX_EXPIRY_MS = 120_000;
const DEFAULT_MAX_NODES = 4096;

/** What we know about an instance not complete yet (PTR without SRV/TXT, split responses). */
interface Pending {
  fqdn: string;
  srv?: DnsRecord;
  txt?: NodeTxt | null;
  addresses: string[];
  referer: string;
  since: number;
  askedAt: number;
}

const PARTIAL_TTL_MS = 10_000;
const MAX_PARTIALS = 256;
const ASK_EVERY_MS = 1000;
const LOCAL_CACHE_MS = 1000;

export class NodeBrowser extends EventEmitter<NodeBrowserEvents> {
  readonly #interface: string | undefined;
  readonly #requeryMs: number;
  readonly #staleMs: number;
  readonly #onError: ((e: Error) => void) | undefined;
  readonly #maxNodes: number;
  #link: MdnsLink | null = null;
  #session: MdnsSession | null = null;
  #timer: NodeJS.Timeout | undefined;
  readonly #entries = new Map<string, Entry>();
  readonly #partials = new Map<string, Pending>();
  #local: { at: number; ifaces: LocalInterfaces } | undefined;
  readonly #onResponse = (packet: DnsPacket, rinfo: RemoteInfo) => this.#handle(packet, rinfo);
  readonly #responders = new Set<string>();

  constructor(opts: BrowseOptions = {}) {
    super();
    this.#interface = opts.interface;
    const r = opts.requeryMs ?? 1000;
    this.#requeryMs = Number.isFinite(r) ? Math.max(100, r) : 1000;
    this.#staleMs = 3 * this.#requeryMs + 500;
    this.#onError = opts.onError;
    const m = opts.maxNodes ?? DEFAULT_MAX_NODES;
    this.#maxNodes = Number.isInteger(m) && m > 0 ? m : DEFAULT_MAX_NODES;
  }

  /**
   * Source addresses of every mDNS response heard since start, for any service (at most 256):
   * proof that mDNS traffic reaches this socket (`pp-node doctor`).
   */
  get responders(): string[] {
    return [...this.#responders];
  }

  /** Nodes currently known (a snapshot). */
  get nodes(): DiscoveredNode[] {
    return [...this.#entries.values()].map((e) => copy(e.node));
  }

  start(): void {
    if (this.#link) return;
    const link = new MdnsLink({
      interface: this.#interface,
      what: 'browse',
      report: (e) => this.#report(e),
      onUp: (s) => {
        this.#session = s;
        s.mdns.on('response', this.#onResponse);
        this.#query();
      },
      onDown: (s) => {
        s.mdns.removeListener('response', this.#onResponse);
        if (this.#session === s) this.#session = null;
      },
    });
    this.#link = link;
    link.start();
    this.#timer = setInterval(() => this.#query(), this.#requeryMs);
  }

  /** Stops browsing and closes the socket; the list of nodes is emptied (no 'down' events). */
  async stop(): Promise<void> {
    const link = this.#link;
    if (!link) return;
    this.#link = null;
    clearInterval(this.#timer);
    this.#session?.mdns.removeListener('response', this.#onResponse);
    this.#session = null;
    await link.close();
    this.#entries.clear();
    this.#partials.clear();
  }

  #report(e: Error): void {
    try {
      this.#onError?.(e);
    } catch {
      // keep going
    }
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }

  #query(): void {
    void this.#session?.query({ questions: [{ name: SERVICE_DOMAIN, type: 'PTR' }] });
    const now = Date.now();
    for (const [k, p] of this.#partials) if (now - p.since > PARTIAL_TTL_MS) this.#partials.delete(k);
    for (const [k, e] of this.#entries) {
      const expiry = Math.max(this.#staleMs, Math.min(e.ttlMs, MAX_EXPIRY_MS));
      if (now - e.lastSeen > expiry) this.#goodbye(k);
    }
  }

  #localInterfaces(): LocalInterfaces {
    const now = Date.now();
    if (!this.#local || now - this.#local.at > LOCAL_CACHE_MS)
      this.#local = { at: now, ifaces: networkInterfaces() };
    return this.#local.ifaces;
  }

  /** The local interface a packet came in on: the chosen one, or the one whose subnet has the sender. */
  #scopeFor(referer: string): string | undefined {
    const chosen = this.#session?.iface?.name;
    if (chosen) return chosen;
    for (const [name, list] of Object.entries(this.#localInterfaces())) {
      if (list && onLink4(referer, list)) return name;
    }
    return undefined;
  }

  #handle(packet: DnsPacket, rinfo: RemoteInfo): void {
    if (this.#responders.size < 256 && typeof rinfo?.address === 'string')
      this.#responders.add(printable(rinfo.address));
    const rrs = [...(packet.answers ?? []), ...(packet.additionals ?? [])].filter(
      (rr): rr is DnsRecord => !!rr && typeof rr.name === 'string',
    );
    if (rrs.length === 0) return;
    const now = Date.now();
    const suffix = `.${SERVICE_DOMAIN}`;
    const groups = new Map<string, { fqdn: string; bye: boolean; srv?: DnsRecord; txt?: DnsRecord }>();
    const group = (name: string) => {
      const key = dnsKey(name);
      let g = groups.get(key);
      if (!g) groups.set(key, (g = { fqdn: name.replace(/\.$/, ''), bye: false }));
      return g;
    };
    for (const rr of rrs) {
      const key = dnsKey(rr.name);
      if (rr.type === 'PTR' && key === SERVICE_DOMAIN && typeof rr.data === 'string') {
        if (!dnsKey(rr.data).endsWith(suffix)) continue;
        const g = group(rr.data); // a PTR alone still counts as "seen" for a known instance
        if (rr.ttl === 0) g.bye = true;
      } else if ((rr.type === 'SRV' || rr.type === 'TXT') && key.endsWith(suffix)) {
        const g = group(rr.name);
        if (rr.ttl === 0) {
          if (rr.type === 'SRV') g.bye = true;
        } else if (rr.type === 'SRV') g.srv = rr;
        else g.txt = rr;
      }
    }
    if (groups.size === 0) return;

    const referer = normalizeAddress(rinfo?.address ?? '');
    const scope = this.#scopeFor(referer);
    for (const [key, g] of groups) {
      if (g.bye) {
        this.#partials.delete(key);
        this.#goodbye(key);
        continue;
      }
      const srv = validSrv(g.srv);
      const txt = g.txt ? fromTxt(g.txt.data) : undefined;
      const addresses = srv ? addressesOf(rrs, srv.data.target, scope) : [];
      const entry = this.#entries.get(key);
      if (entry) {
        this.#update(entry, srv, txt, addresses, referer, now);
        continue;
      }
      // not known yet: collect until we have SRV and TXT (and there is room)
      if (this.#entries.size >= this.#maxNodes) continue;
      let p = this.#partials.get(key);
      if (!p) {
        if (this.#partials.size >= MAX_PARTIALS) continue;
        p = { fqdn: g.fqdn, addresses: [], referer, since: now, askedAt: 0 };
        this.#partials.set(key, p);
      }
      if (srv) p.srv = srv;
      if (txt !== undefined) p.txt = txt;
      if (addresses.length) p.addresses = addresses;
      if (p.txt === null) continue; // a TXT that is not ours: not a pp-node
      if (p.srv && p.txt) {
        this.#partials.delete(key);
        this.#add(key, p, now);
      } else if (now - p.askedAt >= ASK_EVERY_MS) {
        p.askedAt = now;
        void this.#session?.query({
          questions: [
            { name: p.fqdn, type: 'SRV' },
            { name: p.fqdn, type: 'TXT' },
          ],
        });
      }
    }
  }

  #rank(addresses: string[], referer: string): string[] {
    const local = this.#localInterfaces();
    const ranked = rankAddresses(linkAddresses(addresses, local), local);
    // The packet came from `referer`: that address is on our link and reaches the node.
    const i = ranked.indexOf(referer);
    if (i > 0) ranked.unshift(...ranked.splice(i, 1));
    return ranked;
  }

  #add(key: string, p: Pending, now: number): void {
    const raw = p.addresses.length ? p.addresses : isIP(p.referer) ? [p.referer] : [];
    const node = discoveredNode(p.fqdn, p.srv!.data, p.txt!, this.#rank(raw, p.referer));
    this.#entries.set(key, { node, lastSeen: now, ttlMs: ttlMsOf(p.srv) });
    this.emit('up', copy(node));
  }

  #update(
    entry: Entry,
    srv: DnsRecord | undefined,
    txt: NodeTxt | null | undefined,
    addresses: string[],
    referer: string,
    now: number,
  ): void {
    const n = entry.node;
    let changed = false;
    if (srv) {
      entry.ttlMs = ttlMsOf(srv);
      const host = hostOf(srv.data.target);
      if (srv.data.port !== n.port || host !== n.host) {
        n.port = srv.data.port;
        n.host = host;
        changed = true;
      }
      if (addresses.length) {
        const ranked = this.#rank(addresses, referer);
        if (ranked.join(' ') !== n.addresses.join(' ')) {
          n.addresses = ranked;
          changed = true;
        }
      }
    }
    if (txt) {
      const t = txtFields(txt);
      if (t.id !== n.id || t.protocol !== n.protocol || t.ncpus !== n.ncpus || t.version !== n.version) {
        Object.assign(n, t);
        changed = true;
      }
    }
    const stale = now - entry.lastSeen > this.#staleMs;
    entry.lastSeen = now;
    if (changed || stale) this.emit('up', copy(n));
  }

  #goodbye(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.emit('down', copy(entry.node));
  }
}

/**
 * The DiscoveredNode an instance's records describe: where data from the LAN enters, so every string
 * in it is made printable() here, once (a forged instance name, SRV target or TXT value must not draw
 * table rows, clear the screen or retitle the window of whoever prints it). `addresses` are already
 * checked IP addresses (ranked by the caller); `srv` a validated SRV; `txt` what fromTxt() read.
 */
export function discoveredNode(
  fqdn: string,
  srv: { port: number; target: string },
  txt: NodeTxt,
  addresses: string[],
): DiscoveredNode {
  return {
    instance: printable(instanceOf(fqdn)),
    host: hostOf(srv.target),
    addresses: [...addresses],
    port: srv.port,
    ...txtFields(txt),
  };
}

function ttlMsOf(rr: DnsRecord | undefined): number {
  const ttl = rr?.ttl;
  return typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0 ? ttl * 1000 : MAX_EXPIRY_MS;
}

function hostOf(target: string): string {
  return printable(String(target).replace(/\.$/, ''));
}

function txtFields(txt: NodeTxt): Pick<DiscoveredNode, 'id' | 'protocol' | 'ncpus' | 'version'> {
  return {
    id: printable(txt.id),
    protocol: txt.protocol,
    ncpus: txt.ncpus ?? 0,
    version: printable(txt.version ?? ''),
  };
}

function copy(n: DiscoveredNode): DiscoveredNode {
  return { ...n, addresses: [...n.addresses] };
}

function instanceOf(fqdn: string): string {
  return fqdn.slice(0, fqdn.length - SERVICE_DOMAIN.length - 1);
}

function validSrv(
  rr: DnsRecord | undefined,
): (DnsRecord & { data: { port: number; target: string } }) | undefined {
  const d = rr?.data;
  if (!d || typeof d.target !== 'string' || !Number.isInteger(d.port) || d.port < 1 || d.port > 65535) {
    return undefined;
  }
  return rr as DnsRecord & { data: { port: number; target: string } };
}

/** A/AAAA records of `target` in the packet; IPv6 link-local ones get the scope id of the link. */
function addressesOf(rrs: DnsRecord[], target: string, scope: string | undefined): string[] {
  const key = dnsKey(target);
  const out: string[] = [];
  for (const rr of rrs) {
    if ((rr.type !== 'A' && rr.type !== 'AAAA') || rr.ttl === 0 || dnsKey(rr.name) !== key) continue;
    if (typeof rr.data !== 'string' || !isIP(rr.data)) continue;
    let addr = normalizeAddress(rr.data);
    if (rr.type === 'AAAA' && /^fe[89ab][0-9a-f]:/i.test(addr) && !addr.includes('%')) {
      if (!scope) continue;
      addr = `${addr}%${scope}`;
    }
    if (!out.includes(addr)) out.push(addr);
  }
  return out;
}
