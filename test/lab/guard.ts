/**
 * For helpers that run inside a lab host (agent.ts, cluster-client.ts): refuse to go on
 * anywhere else, before anything that could multicast is loaded. A lab host is another
 * network namespace than the test runner's, with only `lo` and `lan0` and no default route.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { networkInterfaces } from 'node:os';

/** Prints one JSON event line, stamped with the time. */
export const print = (o: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ t: Date.now(), ...o })}\n`);

function notInLab(): string | null {
  if (!process.env.PP_LAB) return 'PP_LAB is not set (start me inside a lab host)';
  const root = process.env.PP_LAB_ROOT_NETNS;
  if (!root) return 'PP_LAB_ROOT_NETNS is not set';
  if (readlinkSync('/proc/self/ns/net') === root) return 'this is the test runner network namespace';
  const names = Object.keys(networkInterfaces()).sort();
  if (names.some((n) => n !== 'lo' && n !== 'lan0')) return `unexpected interfaces: ${names.join(', ')}`;
  const defaults = readFileSync('/proc/self/net/route', 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l.split(/\s+/)[1] === '00000000');
  if (defaults.length) return 'this namespace has a default route';
  return null;
}

/** Exits with code 2 unless this process runs in a lab host. */
export function refuseOutsideLab(who: string): void {
  const refusal = notInLab();
  if (refusal) {
    process.stderr.write(`${who}: refusing to run: ${refusal}\n`);
    process.exit(2);
  }
}
