/**
 * What a pp-node announces on the LAN (DNS-SD over mDNS), shared by announce.ts and browse.ts.
 *
 * This module and addresses.ts never load bonjour-service: they are safe to import anywhere.
 */
import { hostname as osHostname } from 'node:os';

/** DNS-SD service type: `_pp-node._tcp`. */
export const SERVICE_TYPE = 'pp-node';
/** The full name browsed for: `_pp-node._tcp.local`. */
export const SERVICE_DOMAIN = `_${SERVICE_TYPE}._tcp.local`;
/** DNS-SD service enumeration name (RFC 6763 §9). */
export const ENUMERATION_DOMAIN = '_services._dns-sd._udp.local';

export interface NodeAnnouncement {
  /** Human-readable node name (default of the node: the host name). Not unique; see instanceNameFor. */
  name: string;
  /** TCP port of the node's WebSocket server. */
  port: number;
  /** Node id, stable per machine. */
  id: string;
  ncpus: number;
  /** pp-node package version. */
  version: string;
  /** Wire protocol version the node speaks (the highest). */
  protocol: number;
}

/** What a TXT record of ours carries. `id` and `protocol` are always there; the rest when valid. */
export interface NodeTxt {
  id: string;
  protocol: number;
  ncpus?: number;
  version?: string;
}

/** Max bytes of one DNS label (RFC 1035). */
const MAX_LABEL = 63;
/** Max bytes of one TXT string (`key=value`), RFC 6763 §6.1. */
const MAX_TXT_ENTRY = 255;

/**
 * TXT record of a node. Keys: proto, id, cpus, ver. Only slow-changing data: a TXT change makes every
 * browser on the LAN update its cache.
 */
export function toTxt(a: NodeAnnouncement): Record<string, string> {
  const txt: Record<string, string> = {
    proto: String(a.protocol),
    id: a.id,
    cpus: String(a.ncpus),
    ver: a.version,
  };
  for (const [k, v] of Object.entries(txt)) {
    if (Buffer.byteLength(`${k}=${v}`) > MAX_TXT_ENTRY) {
      throw new RangeError(`TXT entry "${k}" is longer than ${MAX_TXT_ENTRY} bytes`);
    }
  }
  return txt;
}

/** The TXT record as dns-packet wants it: one `key=value` buffer per entry. */
export function txtToBuffers(txt: Record<string, string>): Buffer[] {
  return Object.entries(txt).map(([k, v]) => Buffer.from(`${k}=${v}`));
}

/**
 * Tolerant parse of a TXT record as received: an array of `key=value` strings/Buffers (raw DNS) or an
 * object whose values are strings, Buffers, numbers or booleans (bonjour-service, python-zeroconf).
 * Keys are case-insensitive; the first occurrence of a key wins (RFC 6763 §6.4).
 * Returns null when it is not a pp-node TXT record (no usable `id` or `proto`).
 */
export function fromTxt(txt: unknown): NodeTxt | null {
  const map = new Map<string, string>();
  const put = (key: string, value: string) => {
    const k = key.trim().toLowerCase();
    if (k && !map.has(k)) map.set(k, value);
  };
  if (Array.isArray(txt)) {
    for (const entry of txt) {
      const s = asString(entry);
      if (s === undefined) continue;
      const eq = s.indexOf('=');
      if (eq === -1) put(s, '');
      else put(s.slice(0, eq), s.slice(eq + 1));
    }
  } else if (txt !== null && typeof txt === 'object' && !ArrayBuffer.isView(txt)) {
    for (const [k, v] of Object.entries(txt as Record<string, unknown>)) {
      const s = asString(v);
      if (s !== undefined) put(k, s);
    }
  } else {
    return null;
  }

  const id = map.get('id')?.trim();
  const proto = map.get('proto')?.trim();
  if (!id || proto === undefined || !/^\d{1,5}$/.test(proto)) return null;
  const protocol = Number(proto);
  if (protocol < 1 || protocol > 65535) return null;
  const out: NodeTxt = { id, protocol };
  const cpus = map.get('cpus')?.trim();
  if (cpus !== undefined && /^\d{1,6}$/.test(cpus) && Number(cpus) > 0) out.ncpus = Number(cpus);
  const ver = map.get('ver')?.trim();
  if (ver) out.version = ver;
  return out;
}

function asString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  return undefined;
}

/** Cuts a string to at most `max` UTF-8 bytes without splitting a character. */
export function truncateUtf8(s: string, max: number): string {
  if (Buffer.byteLength(s) <= max) return s;
  let out = '';
  let bytes = 0;
  for (const ch of s) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > max) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/** First 8 characters of the id, made safe for a DNS label. */
export function shortId(id: string): string {
  return (
    id
      .replace(/[^A-Za-z0-9_-]/g, '')
      .slice(0, 8)
      .toLowerCase() || 'node'
  );
}

/**
 * DNS-SD instance name: `${name} (${id.slice(0, 8)}:${port})`, so that two nodes on one host (same id,
 * other port) and two hosts with one host name (other id) get different names. `attempt` > 1 appends
 * ` #attempt` (used after a name conflict). Dots become `-` (dns-packet cannot escape them) and the
 * label is cut to 63 bytes by shortening `name`.
 */
export function instanceNameFor(a: Pick<NodeAnnouncement, 'name' | 'id' | 'port'>, attempt = 1): string {
  const suffix = ` (${shortId(a.id)}:${a.port})${attempt > 1 ? ` #${attempt}` : ''}`;
  const clean =
    a.name
      .replace(/[\u0000-\u001f\u007f]/g, '')
      .replace(/\./g, '-')
      .trim() || 'pp-node';
  return truncateUtf8(clean, MAX_LABEL - Buffer.byteLength(suffix)).trimEnd() + suffix;
}

/**
 * SRV target host of a node: `${hostname}-${shortId}.local`. Not the bare `${hostname}.local`: that name
 * belongs to the machine's own mDNS responder (avahi, mDNSResponder), which would see our A/AAAA
 * records as a conflict if they differ from its own (e.g. with the `interface` option) and rename
 * the host. The id makes it unique between hosts that share a host name.
 */
export function hostNameFor(id: string, host: string = osHostname()): string {
  const label =
    (host.split('.')[0] ?? '')
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'host';
  const sid = shortId(id);
  return `${label.slice(0, MAX_LABEL - sid.length - 1)}-${sid}.local`;
}

/** Lower case, no trailing dot: how DNS names are compared (they are case-insensitive). */
export function dnsKey(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}
