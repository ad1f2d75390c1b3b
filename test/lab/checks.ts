/** The checks every LAN suite ends with: the lab is gone and nothing touched the real network. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import type { LeakCapture } from './leak.ts';
import { allNamespaces, type Lab, rootFingerprint } from './netlab.ts';

/** mDNS modules loaded into this (root namespace) process: must stay empty. */
export function mdnsModulesLoaded(): string[] {
  const cache = createRequire(import.meta.url).cache;
  return Object.keys(cache).filter((k) => /[/\\](bonjour-service|multicast-dns)[/\\]/.test(k));
}

/**
 * Destroys the lab, then asserts: none of its namespaces left, the root namespace's
 * interfaces/addresses/routes unchanged, no udp/5353 socket in the root namespace, no lab or
 * pp-node packet on a real interface, and no mDNS stack loaded here. Returns the capture summary.
 */
export async function assertCleanLabExit(
  lab: Lab,
  fingerprint: string,
  capture: LeakCapture,
): Promise<string> {
  await lab.destroy();
  assert.deepEqual(
    allNamespaces().filter((n) => n.startsWith(lab.name)),
    [],
  );
  assert.equal(rootFingerprint(), fingerprint, 'interfaces, addresses and routes of the root namespace');
  const ss = spawnSync('ss', ['-uan'], { encoding: 'utf8' }).stdout ?? '';
  assert.ok(!/:5353\b/.test(ss), `udp/5353 open in the root namespace:\n${ss}`);
  const report = await capture.stop();
  assert.deepEqual(report.leaks, [], 'lab / pp-node packets on a real interface');
  assert.deepEqual(report.rootMdns, [], 'pp-node mDNS in the root namespace');
  assert.deepEqual(mdnsModulesLoaded(), [], 'this process loaded an mDNS stack');
  return report.summary;
}
