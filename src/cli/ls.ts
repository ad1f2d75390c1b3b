/**
 * `pp-node ls`: the nodes on the LAN, and whether each accepts this machine's secret.
 * Browses for a few seconds, then tries the handshake with every node found.
 */
import { type DiscoveredNode, NodeBrowser } from '../discovery/index.ts';
import { printable } from '../log.ts';
import { discoveryHint } from '../platform.ts';
import { dialNode, formatAddress, opened } from '../protocol/dial.ts';
import { clientHandshake } from '../protocol/secure-socket.ts';
import { cliSecret } from '../secret-strength.ts';
import type { LsConfig } from './args.ts';

export interface Row {
  name: string;
  instance: string;
  address: string;
  port: number;
  cpus: number;
  version: string;
  id: string;
  /** 'yes', 'no (rejected)', or why it could not be checked. */
  secret: string;
  accepted: boolean | null;
}

export async function listNodes(cfg: LsConfig): Promise<number> {
  let secret: Uint8Array | null = null;
  let secretProblem = '';
  try {
    secret = cliSecret('ls', cfg);
  } catch (error) {
    secretProblem = (error as Error).message;
  }
  const found = new Map<string, DiscoveredNode>();
  const browser = new NodeBrowser({ interface: cfg.interface, requeryMs: 500 });
  browser.on('up', (n) => found.set(n.instance, n));
  browser.on('error', (e) => process.stderr.write(`pp-node ls: discovery: ${printable(e.message)}\n`));
  browser.start();
  await new Promise((r) => setTimeout(r, cfg.timeoutS * 1000));
  await browser.stop();

  const rows = await Promise.all(
    [...found.values()].map(async (n): Promise<Row> => {
      const base = {
        name: n.instance.replace(/ \([0-9a-f]{8}:\d+\)$/, ''),
        instance: n.instance,
        address: n.addresses[0] ?? '',
        port: n.port,
        cpus: n.ncpus,
        version: n.version,
        id: n.id,
      };
      if (!secret) return { ...base, secret: 'no secret here', accepted: null };
      const verdict = await trySecret(n, secret);
      return { ...base, ...verdict };
    }),
  );
  rows.sort((a, b) => a.name.localeCompare(b.name) || a.port - b.port);
  if (cfg.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  } else if (rows.length === 0) {
    process.stdout.write(
      `no pp-node found on the LAN within ${cfg.timeoutS} s. Is one running (npx pp-node)? ` +
        `Check: ${discoveryHint()}.\n`,
    );
  } else {
    process.stdout.write(formatTable(rows));
  }
  if (secretProblem) process.stderr.write(`pp-node ls: cannot check secrets: ${secretProblem}\n`);
  return 0;
}

/**
 * The table `pp-node ls` prints. Every cell goes through printable() again, although discovery already
 * did (DiscoveredNode): the cells also hold error messages, and a forged name must never start a row
 * of its own, move the cursor or clear the screen.
 */
export function formatTable(rows: readonly Row[]): string {
  const header = ['NAME', 'ADDRESS', 'CPUS', 'VERSION', 'SECRET'];
  const lines = rows.map((r) =>
    [r.name, formatAddress(r.address, r.port), String(r.cpus), r.version, r.secret].map(printable),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  return [header, ...lines].map((l) => `${l.map((c, i) => c.padEnd(widths[i]!)).join('  ')}\n`).join('');
}

async function trySecret(
  n: DiscoveredNode,
  secret: Uint8Array,
): Promise<{ secret: string; accepted: boolean | null }> {
  let last = 'unreachable';
  for (const host of n.addresses.filter((h) => !h.includes('%'))) {
    const ws = dialNode(host, n.port, 3000);
    ws.on('error', () => {});
    try {
      await opened(ws);
    } catch (error) {
      last = `unreachable (${printable((error as Error).message)})`;
      ws.terminate();
      continue;
    }
    try {
      await clientHandshake(ws, secret, 3000);
      ws.close(1000, 'pp-node ls');
      return { secret: 'yes', accepted: true };
    } catch (error) {
      ws.terminate();
      const code = (error as { handshakeCode?: string }).handshakeCode;
      if (code === 'rejected' || code === 'bad-proof') return { secret: 'no (rejected)', accepted: false };
      if (code === 'version') return { secret: 'other protocol version', accepted: null };
      // The message may carry the peer's own words (a close reason): never print them raw.
      return { secret: `unknown (${printable((error as Error).message)})`, accepted: null };
    }
  }
  return { secret: last, accepted: null };
}
