/**
 * Address helpers for discovery: which local interface to use, which local addresses to announce,
 * and in which order a client should try a node's addresses. Pure (node:os, node:net); never loads
 * bonjour-service.
 */
import { isIP } from 'node:net';
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';

/** The shape of `os.networkInterfaces()`. */
export type LocalInterfaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

export interface ResolvedInterface {
  /** Interface name, e.g. eth0. */
  name: string;
  /** The IPv4 address mDNS uses on it (multicast-dns runs over IPv4). */
  ipv4: string;
  /** Every address of the interface (IPv4 and IPv6). */
  addresses: NetworkInterfaceInfo[];
}

/** An Error with a Node-style `code`. */
export function codeError(code: string, message: string, cause?: unknown): Error & { code: string } {
  const e = new Error(message, cause === undefined ? undefined : { cause }) as Error & { code: string };
  e.code = code;
  return e;
}

/**
 * Resolves the `interface` option: an interface name (eth0, wlan0) or one of this machine's addresses
 * (IPv4, or IPv6 of an interface that also has IPv4). Returns an Error (code ENODEV or EADDRNOTAVAIL)
 * when there is no such interface or it has no IPv4 address.
 */
export function resolveInterface(
  spec: string,
  ifaces: LocalInterfaces = networkInterfaces(),
): ResolvedInterface | Error {
  const want = spec.trim();
  let name: string | undefined;
  let ipv4: string | undefined;
  if (isIP(want)) {
    const needle = normalizeAddress(want);
    for (const [n, list] of Object.entries(ifaces)) {
      const hit = list?.find((i) => normalizeAddress(i.address) === needle);
      if (hit) {
        name = n;
        if (hit.family === 'IPv4') ipv4 = hit.address;
        break;
      }
    }
    if (name === undefined) {
      return codeError(
        'EADDRNOTAVAIL',
        `mDNS interface ${want}: no interface of this machine that is up has that address`,
      );
    }
  } else {
    if (!ifaces[want]) {
      const names = Object.keys(ifaces).join(', ') || 'none';
      return codeError(
        'ENODEV',
        `mDNS interface "${want}": no such network interface, or it is down (up: ${names})`,
      );
    }
    name = want;
  }
  const addresses = ifaces[name] ?? [];
  ipv4 ??= addresses.find((i) => i.family === 'IPv4')?.address;
  if (!ipv4) {
    return codeError('EADDRNOTAVAIL', `mDNS interface "${name}" has no IPv4 address (mDNS runs over IPv4)`);
  }
  return { name, ipv4, addresses };
}

/**
 * The addresses to announce (A/AAAA records): those of the chosen interface, or else every address of
 * every interface except loopback and interfaces without a MAC (tunnels), as bonjour-service does.
 */
export function announceAddresses(
  iface: ResolvedInterface | null,
  ifaces: LocalInterfaces = networkInterfaces(),
): string[] {
  const list = iface
    ? iface.addresses
    : Object.values(ifaces)
        .flatMap((l) => l ?? [])
        .filter((i) => !i.internal && i.mac !== '00:00:00:00:00:00');
  return [...new Set(list.filter((i) => !i.internal).map((i) => i.address))];
}

/** Is `addr` (IPv4) inside `base/netmask`? */
function sameSubnet4(addr: string, base: string, netmask: string): boolean {
  const a = v4ToInt(addr);
  const b = v4ToInt(base);
  const m = v4ToInt(netmask);
  return a !== null && b !== null && m !== null && m !== 0 && ((a ^ b) & m) >>> 0 === 0;
}

function v4ToInt(s: string): number | null {
  const p = s.split('.');
  if (p.length !== 4) return null;
  let n = 0;
  for (const x of p) {
    if (!/^\d{1,3}$/.test(x) || Number(x) > 255) return null;
    n = n * 256 + Number(x);
  }
  return n >>> 0;
}

/** Expands an IPv6 address (without zone) to 8 groups; null if not IPv6. */
function v6Groups(s: string): number[] | null {
  let str = s.split('%')[0]!;
  let tail: number[] = [];
  const m4 = /^(.*):(\d+\.\d+\.\d+\.\d+)$/.exec(str);
  if (m4) {
    const v = v4ToInt(m4[2]!);
    if (v === null) return null;
    tail = [v >>> 16, v & 0xffff];
    str = m4[1]!.endsWith(':') ? `${m4[1]}:` : m4[1]!;
  }
  const halves = str.split('::');
  if (halves.length > 2) return null;
  const parse = (h: string) =>
    h ? h.split(':').map((x) => (/^[0-9a-f]{1,4}$/i.test(x) ? parseInt(x, 16) : Number.NaN)) : [];
  const head = parse(halves[0]!);
  const rest = halves.length === 2 ? parse(halves[1]!) : [];
  const total = head.length + rest.length + tail.length;
  let groups: number[];
  if (halves.length === 2) {
    if (total > 7) return null;
    groups = [...head, ...new Array(8 - total).fill(0), ...rest, ...tail];
  } else {
    groups = [...head, ...tail];
  }
  if (groups.length !== 8 || groups.some((g) => Number.isNaN(g))) return null;
  return groups;
}

/** Canonical text form: IPv4 as is; IPv4-mapped IPv6 as IPv4; IPv6 lower case (zone kept). */
export function normalizeAddress(addr: string): string {
  let s = addr.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(s);
  if (mapped) return mapped[1]!;
  if (isIP(s) === 6 || s.includes(':')) {
    const [a, zone] = s.split('%');
    const g = v6Groups(a!);
    if (!g) return s.toLowerCase();
    // RFC 5952 form: longest run of zero groups (length > 1) becomes ::
    let best = -1;
    let bestLen = 0;
    for (let i = 0; i < 8; ) {
      if (g[i] !== 0) {
        i++;
        continue;
      }
      let j = i;
      while (j < 8 && g[j] === 0) j++;
      if (j - i > bestLen && j - i > 1) {
        best = i;
        bestLen = j - i;
      }
      i = j;
    }
    const hex = g.map((x) => x.toString(16));
    const text =
      best === -1 ? hex.join(':') : `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
    return zone ? `${text}%${zone}` : text;
  }
  return s;
}

type Kind = 'v4' | 'v4-loopback' | 'v6' | 'v6-linklocal' | 'v6-loopback' | 'drop';

function classify(addr: string): Kind {
  const fam = isIP(addr);
  if (fam === 4) {
    const n = v4ToInt(addr)!;
    const first = n >>> 24;
    if (first === 127) return 'v4-loopback';
    if (n === 0 || first >= 224) return 'drop'; // unspecified, multicast, reserved, broadcast
    return 'v4';
  }
  if (fam === 6) {
    const g = v6Groups(addr);
    if (!g) return 'drop';
    if (g.every((x, i) => (i < 7 ? x === 0 : x === 1))) return 'v6-loopback';
    if (g.every((x) => x === 0)) return 'drop';
    if ((g[0]! & 0xff00) === 0xff00) return 'drop'; // multicast
    if ((g[0]! & 0xffc0) === 0xfe80) return addr.includes('%') ? 'v6-linklocal' : 'drop';
    return 'v6';
  }
  return 'drop';
}

function onLink6(addr: string, ifaces: LocalInterfaces): boolean {
  const g = v6Groups(addr);
  if (!g) return false;
  for (const i of Object.values(ifaces).flatMap((l) => l ?? [])) {
    if (i.family !== 'IPv6' || i.internal) continue;
    const l = v6Groups(i.address);
    const m = v6Groups(i.netmask);
    if (!l || !m || m.every((x) => x === 0)) continue;
    if (g.every((x, k) => (x & m[k]!) === (l[k]! & m[k]!))) return true;
  }
  return false;
}

/** Is the IPv4 address inside one of the subnets of the given interfaces? */
export function onLink4(addr: string, ifaces: NetworkInterfaceInfo[]): boolean {
  return ifaces.some((i) => i.family === 'IPv4' && !i.internal && sameSubnet4(addr, i.address, i.netmask));
}

/**
 * Orders a node's addresses for connecting: IPv4 on a local subnet first, then other IPv4, then
 * global/ULA IPv6 (on-link ones first), then IPv6 link-local, which is kept only with a scope id
 * (`fe80::1%eth0`). When some of the addresses are not this machine's, the ones that are come last: a
 * remote node announcing 172.17.0.1 for its Docker bridge must not send us to our own Docker bridge.
 * Loopback only when there is nothing else. Duplicates, multicast and unparsable
 * entries are dropped; the order of equal-rank addresses is kept.
 *
 * `local` is the machine's interfaces (default `os.networkInterfaces()`).
 */
export function rankAddresses(addresses: string[], local: LocalInterfaces = networkInterfaces()): string[] {
  const all = Object.values(local).flatMap((l) => l ?? []);
  const own = new Set(all.filter((i) => !i.internal).map((i) => normalizeAddress(i.address)));
  const seen = new Set<string>();
  const ranked: { addr: string; rank: number; i: number }[] = [];
  const loopback: string[] = [];
  addresses.forEach((raw, i) => {
    if (typeof raw !== 'string') return;
    const addr = normalizeAddress(raw);
    if (seen.has(addr)) return;
    seen.add(addr);
    const kind = classify(addr);
    let rank: number;
    switch (kind) {
      case 'drop':
        return;
      case 'v4-loopback':
      case 'v6-loopback':
        loopback.push(addr);
        return;
      case 'v4':
        rank = onLink4(addr, all) ? 0 : 1;
        break;
      case 'v6':
        rank = onLink6(addr, local) ? 2 : 3;
        break;
      case 'v6-linklocal':
        rank = 4;
        break;
    }
    ranked.push({ addr, rank, i });
  });
  const allOwn = ranked.every((r) => own.has(r.addr.split('%')[0]!));
  if (!allOwn) for (const r of ranked) if (own.has(r.addr.split('%')[0]!)) r.rank += 10;
  ranked.sort((a, b) => a.rank - b.rank || a.i - b.i);
  const out = ranked.map((r) => r.addr);
  return out.length ? out : loopback;
}

/**
 * The addresses of an announcement a client may dial: IPv4 and IPv6 inside a subnet of one of
 * this machine's interfaces, and IPv6 link-local with a scope id. Loopback, unspecified,
 * multicast, broadcast and off-link addresses are dropped: mDNS answers come from the link, and
 * anyone on it can announce anything (127.0.0.1 would make a client dial its own services).
 */
export function linkAddresses(addresses: string[], local: LocalInterfaces = networkInterfaces()): string[] {
  const all = Object.values(local).flatMap((l) => l ?? []);
  return addresses.filter((raw) => {
    if (typeof raw !== 'string') return false;
    const addr = normalizeAddress(raw);
    switch (classify(addr)) {
      case 'v4':
        return onLink4(addr, all);
      case 'v6':
        return onLink6(addr, local);
      case 'v6-linklocal':
        return true;
      default:
        return false;
    }
  });
}
