/**
 * Announces a pp-node on the LAN: DNS-SD service `_pp-node._tcp` over mDNS (bonjour-service).
 *
 *   const a = announce({ name: os.hostname(), port, id, ncpus, version, protocol });
 *   ...
 *   await a.stop(); // goodbye (TTL 0): browsers report the node down at once
 *
 * Instance name `${name} (${id8}:${port})` (unique per host and port; see instanceNameFor). Before
 * announcing, the name is probed (3 queries, 250 ms apart, RFC 6762 §8.1): if another responder
 * answers for it (e.g. a cloned machine with the same id), ` #2`, ` #3`... is appended and onError
 * hears about it. Then announcements go out at 0, 1, 4, 13, 40 s... (intervals x3, as bonjour-service)
 * and queries are answered all along. Network errors never throw: they go to `onError`, and the
 * announcer keeps trying (see mdns.ts).
 *
 * Of bonjour-service we use the socket and the responder: the records are given to its server
 * (`register` / `unregister`), which answers every query for them, with the SRV, TXT and addresses
 * in the additionals (see test/bonjour-internals.test.ts). Not its public `publish()`, which would
 * lose what this file is for (read in bonjour-service 1.4.4, lib/registry.js and lib/service.js):
 * - renaming on conflict: its probe, on a conflict, stops the service and writes the error with
 *   console.log (onto a daemon's stdout); we take the next name (` #2`...) and tell onError;
 * - following an interface: `Service.records()` lists the A/AAAA of every interface of the machine,
 *   read once per publish; we announce the chosen interface's addresses (announceAddresses, the
 *   `interface` option) and announce again when they change (#addressesChanged), without a goodbye;
 * - goodbyes for this instance only: its goodbye sends TTL 0 for every record, the host's A/AAAA
 *   and the enumeration PTR too, which another node on this host (same host name) still uses;
 * - the cache-flush bit on SRV and TXT (RFC 6762 §10.2), so that a node started again on another
 *   port replaces its old SRV in every cache instead of adding to it.
 * The announcement schedule (at once, then after 1 s, x3 each time) is the same as bonjour-service's.
 */
import { isIP } from 'node:net';
import { announceAddresses, codeError } from './addresses.ts';
import { type DnsPacket, type DnsRecord, MdnsLink, type MdnsSession } from './mdns.ts';
import {
  dnsKey,
  ENUMERATION_DOMAIN,
  hostNameFor,
  instanceNameFor,
  type NodeAnnouncement,
  SERVICE_DOMAIN,
  toTxt,
  txtToBuffers,
} from './service.ts';

export interface AnnounceOptions {
  /** Interface name (eth0) or IPv4 address to announce on; default: the system's multicast route. */
  interface?: string;
  /** Network trouble (never thrown). Each distinct error is reported once per 10 minutes. */
  onError?: (e: Error) => void;
}

export interface Announcer {
  /** The DNS-SD instance name currently used (it changes only after a name conflict). */
  readonly instanceName: string;
  /** Sends goodbyes (TTL 0) and closes the socket. Idempotent. */
  stop(): Promise<void>;
}

const PROBES = 3;
const PROBE_INTERVAL_MS = 250;
const MAX_ATTEMPTS = 20;
const FIRST_REANNOUNCE_MS = 1000;
const REANNOUNCE_FACTOR = 3;
const REANNOUNCE_MAX_MS = 60 * 60_000;
/** RFC 6762 §10: records with a host name in them (SRV, A, AAAA) 120 s, the others 75 min. */
const TTL_HOST = 120;
const TTL_OTHER = 4500;

export function announce(a: NodeAnnouncement, opts: AnnounceOptions = {}): Announcer {
  if (!Number.isInteger(a.port) || a.port < 1 || a.port > 65535) {
    throw new RangeError(`announce: port must be an integer in 1..65535, got ${a.port}`);
  }
  if (typeof a.id !== 'string' || !a.id) throw new TypeError('announce: id must be a non-empty string');
  if (typeof a.name !== 'string') throw new TypeError('announce: name must be a string');
  return new NodeAnnouncer(a, opts);
}

class NodeAnnouncer implements Announcer {
  readonly #a: NodeAnnouncement;
  readonly #txt: Buffer[];
  readonly #host: string;
  readonly #onError: ((e: Error) => void) | undefined;
  readonly #link: MdnsLink;
  readonly #timers = new Set<NodeJS.Timeout>();
  #attempt = 1;
  #instance = '';
  #fqdn = '';
  #session: MdnsSession | null = null;
  /** Address records currently registered (to unregister on change). */
  #addressRecords: DnsRecord[] = [];
  #announced = false;
  #cleanup: (() => void) | undefined;
  #stopping: Promise<void> | undefined;

  constructor(a: NodeAnnouncement, opts: AnnounceOptions) {
    this.#a = { ...a };
    this.#txt = txtToBuffers(toTxt(a));
    this.#host = hostNameFor(a.id);
    const onError = opts.onError;
    this.#onError = onError
      ? (e) => {
          try {
            onError(e);
          } catch {
            // a throwing handler must not stop the announcer
          }
        }
      : undefined;
    this.#setName(1);
    this.#link = new MdnsLink({
      interface: opts.interface,
      what: 'announce',
      report: (e) => this.#onError?.(e),
      onUp: (s) => {
        this.#session = s;
        this.#probe(s);
      },
      onDown: (s) => {
        if (this.#session !== s) return;
        this.#reset();
        this.#session = null;
      },
      onAddressesChanged: (s) => this.#addressesChanged(s),
    });
    this.#link.start();
  }

  get instanceName(): string {
    return this.#instance;
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const wasAnnounced = this.#announced;
    this.#reset();
    await this.#link.close(async (s) => {
      if (!wasAnnounced) return;
      s.server.unregister(this.#records());
      // Goodbye for the records of this instance only: the host's A/AAAA records and the
      // enumeration PTR may be shared with another node on this host.
      await s.respond({ answers: this.#instanceRecords().map((r) => ({ ...r, ttl: 0 })) });
    });
    this.#session = null;
  }

  #setName(attempt: number): void {
    this.#attempt = attempt;
    this.#instance = instanceNameFor(this.#a, attempt);
    this.#fqdn = `${this.#instance}.${SERVICE_DOMAIN}`;
  }

  #later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  /** Stops probing and announcing; unregisters our records from the current session. */
  #reset(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#cleanup?.();
    this.#cleanup = undefined;
    if (this.#announced && this.#session && !this.#session.closed) {
      this.#session.server.unregister(this.#records());
    }
    this.#announced = false;
  }

  #probe(s: MdnsSession): void {
    const key = dnsKey(this.#fqdn);
    let sent = 0;
    const onResponse = (packet: DnsPacket) => {
      const rrs = [...(packet.answers ?? []), ...(packet.additionals ?? [])];
      if (rrs.some((rr) => typeof rr?.name === 'string' && dnsKey(rr.name) === key && rr.ttl !== 0))
        conflict();
    };
    const detach = () => s.mdns.removeListener('response', onResponse);
    const conflict = () => {
      this.#reset();
      if (this.#session !== s) return;
      const old = this.#instance;
      if (this.#attempt >= MAX_ATTEMPTS) {
        this.#onError?.(
          codeError(
            'ECONFLICT',
            `mDNS: names "${old}" and all the alternatives are in use; retrying in 60 s`,
          ),
        );
        this.#setName(1);
        this.#later(() => this.#probe(s), 60_000);
        return;
      }
      this.#setName(this.#attempt + 1);
      this.#onError?.(
        codeError(
          'ECONFLICT',
          `mDNS: name "${old}" is in use on the network; announcing as "${this.#instance}"`,
        ),
      );
      this.#probe(s);
    };
    const send = () => {
      if (this.#session !== s) return;
      void s.query({ questions: [{ name: this.#fqdn, type: 'ANY' }] });
      sent++;
      this.#later(sent < PROBES ? send : done, PROBE_INTERVAL_MS);
    };
    const done = () => {
      this.#cleanup?.();
      this.#cleanup = undefined;
      if (this.#session === s) this.#startAnnouncing(s);
    };
    s.mdns.on('response', onResponse);
    this.#cleanup = detach;
    this.#later(send, Math.random() * PROBE_INTERVAL_MS);
  }

  #instanceRecords(): DnsRecord[] {
    return [
      { name: SERVICE_DOMAIN, type: 'PTR', ttl: TTL_OTHER, data: this.#fqdn },
      {
        name: this.#fqdn,
        type: 'SRV',
        ttl: TTL_HOST,
        flush: true,
        data: { priority: 0, weight: 0, port: this.#a.port, target: this.#host },
      },
      { name: this.#fqdn, type: 'TXT', ttl: TTL_OTHER, flush: true, data: this.#txt },
    ];
  }

  #makeAddressRecords(s: MdnsSession): DnsRecord[] {
    return announceAddresses(s.iface).map((addr) => ({
      name: this.#host,
      type: isIP(addr) === 6 ? 'AAAA' : 'A',
      ttl: TTL_HOST,
      data: addr,
    }));
  }

  #records(): DnsRecord[] {
    return [
      ...this.#instanceRecords(),
      ...this.#addressRecords,
      { name: ENUMERATION_DOMAIN, type: 'PTR', ttl: TTL_OTHER, data: SERVICE_DOMAIN },
    ];
  }

  #startAnnouncing(s: MdnsSession): void {
    this.#addressRecords = this.#makeAddressRecords(s);
    s.server.register(this.#records());
    this.#announced = true;
    let delay = FIRST_REANNOUNCE_MS;
    const tick = () => {
      if (this.#session !== s || !this.#announced) return;
      void s.respond({ answers: this.#records() });
      if (delay < REANNOUNCE_MAX_MS) {
        this.#later(tick, delay);
        delay *= REANNOUNCE_FACTOR;
      }
    };
    tick();
  }

  #addressesChanged(s: MdnsSession): void {
    if (this.#session !== s || !this.#announced) return;
    s.server.unregister(this.#addressRecords);
    this.#addressRecords = this.#makeAddressRecords(s);
    s.server.register(this.#addressRecords);
    void s.respond({ answers: this.#records() });
  }
}
