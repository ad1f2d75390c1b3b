/**
 * Modules travel (issue 16), in the lab: two hosts of a throw-away LAN of network namespaces
 * (test/lab/netlab.ts), so that the node and the client share nothing but the wire:
 *
 *   h1 client (test/fixtures/packages/client.mjs, cwd = the folder its packages are installed in)
 *   h2 `pp-node` started in an empty folder, HOME an empty folder (so an empty module cache),
 *      discovery off (--no-announce); the client reaches it by its lab address (ppservers)
 *
 * The client runs jobs needing nanoid (ESM-only), qs (CommonJS with dependencies of its own) and
 * lib/query.ts (a local TypeScript module importing qs), all installed only on the client side
 * (test/helpers/packages.ts); a second client run finds them in the node's cache and sends
 * nothing. The same checks on 127.0.0.1, and the rest of issue 16, are in test/packages.test.ts.
 *
 * Nothing here multicasts (no discovery anywhere). Needs root and iproute2, and a built dist/
 * (`npm run build`). Under CI=true a missing piece fails the run; elsewhere the suite is skipped
 * with the reason.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BIN } from './helpers/nodes.ts';
import {
  CLIENT_SCRIPT,
  type ClientRun,
  cacheEntries,
  EXPECTED,
  FIXTURE,
  installFixturePackages,
} from './helpers/packages.ts';
import { pollUntil } from './helpers/poll.ts';
import { Lab, type LabProcess, labSkip, logsOf, rootFingerprint } from './lab/netlab.ts';

const SECRET = randomBytes(32).toString('hex');
const skip = labSkip();

describe('modules travel to a node on another host (lab)', { skip, timeout: 60_000 }, () => {
  let lab: Lab;
  let fingerprint = '';
  let tmp = '';
  let nodeHome = '';
  let nodeCwd = '';
  let address = '';
  let node: LabProcess;

  /** Runs client.mjs in h1 from the fixture folder, against the node in h2; its JSON line. */
  const runClient = async (name: string): Promise<ClientRun> => {
    const clientHome = join(tmp, name);
    mkdirSync(clientHome);
    const p = lab.spawn(1, process.execPath, [CLIENT_SCRIPT], {
      cwd: FIXTURE,
      env: {
        PP_SECRET: SECRET,
        PP_TEST_NODE: address,
        HOME: clientHome,
        NODE_TEST_CONTEXT: undefined,
        PP_NODE_CACHE_DIR: undefined,
        XDG_CACHE_HOME: undefined,
      },
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), 25_000);
    const exit = await p.exited.finally(() => clearTimeout(timer));
    assert.equal(exit.code, 0, `client exited ${JSON.stringify(exit)}\n${p.dump()}\n${node.dump()}`);
    const line = p.output.filter((l) => !l.startsWith('stderr: ')).at(-1);
    assert.ok(line, `the client printed nothing\n${p.dump()}`);
    return JSON.parse(line) as ClientRun;
  };

  before(async () => {
    installFixturePackages();
    fingerprint = rootFingerprint();
    tmp = mkdtempSync(join(tmpdir(), 'pp-packages-lab-'));
    nodeHome = join(tmp, 'node-home');
    nodeCwd = join(tmp, 'node-cwd');
    mkdirSync(nodeHome);
    mkdirSync(nodeCwd);
    lab = Lab.create(2, 'ppk');
    node = lab.spawn(
      2,
      process.execPath,
      [
        BIN,
        '--bind',
        lab.addr(2),
        '--port',
        '0',
        '--workers',
        '1',
        '--no-announce',
        '--log-format',
        'json',
        '--log-level',
        'info',
      ],
      { cwd: nodeCwd, env: { PP_SECRET: SECRET, HOME: nodeHome, PP_NODE_CACHE_DIR: '', XDG_CACHE_HOME: '' } },
    );
    const ready = await pollUntil(
      () => {
        const l = logsOf(node).find((e) => e.msg === 'pp-node ready');
        if (!l && !node.running) throw new Error(`pp-node in h2 exited before it was ready\n${node.dump()}`);
        return l;
      },
      { timeoutMs: 15_000, intervalMs: 50, what: `pp-node ready in h2\n${node.dump()}` },
    );
    address = `${lab.addr(2)}:${ready.port as number}`;
  });

  after(async () => {
    await lab?.destroy();
    if (fingerprint) assert.equal(rootFingerprint(), fingerprint, 'the root namespace is as it was');
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('an ESM-only package, a CommonJS package with dependencies and a local TS module run on a node with nothing installed; a second client run sends nothing', async () => {
    assert.deepEqual(readdirSync(nodeCwd), [], 'the node runs in an empty folder');
    assert.deepEqual(cacheEntries(nodeHome), [], 'with an empty module cache');

    const first = await runClient('client-home-1');
    const [id, str, trip] = first.results;
    assert.match(id, /^[xy]{16}$/, 'nanoid (ESM-only) ran on the node');
    assert.equal(str, EXPECTED.str, 'qs (CommonJS, with dependencies) ran on the node');
    assert.equal(trip, EXPECTED.trip, 'lib/query.ts (local TypeScript importing qs) ran on the node');
    assert.deepEqual(first.more, EXPECTED.more);
    assert.equal(first.modulesSent.packs, 3, 'nanoid, qs and lib/query.ts, once each');
    assert.ok(first.modulesSent.bytes > 1000, `bytes sent: ${first.modulesSent.bytes}`);
    const stored = cacheEntries(nodeHome);
    assert.equal(stored.length, 3, 'the node cached what it received');
    assert.equal(statSync(join(nodeHome, '.cache', 'pp-node')).mode & 0o777, 0o700);
    assert.deepEqual(readdirSync(nodeCwd), [], 'and left nothing in its folder');
    console.log(
      `lab, first run: ${first.modulesSent.packs} packs, ${first.modulesSent.bytes} bytes; first submit ` +
        `${first.firstSubmitMs.toFixed(0)} ms (bundling), first 3 results ${first.firstJobMs.toFixed(0)} ms, ` +
        `20 later jobs ${first.laterMs.toFixed(0)} ms`,
    );

    // Another client process (its own HOME too): the node has them all, so nothing is sent.
    const second = await runClient('client-home-2');
    assert.match(second.results[0], /^[xy]{16}$/);
    assert.deepEqual(second.results.slice(1), first.results.slice(1));
    assert.deepEqual(second.more, EXPECTED.more);
    assert.deepEqual(second.modulesSent, { packs: 0, bytes: 0 }, 'the node kept them: nothing sent again');
    assert.deepEqual(cacheEntries(nodeHome).sort(), stored.sort());
    console.log(
      `lab, second run: nothing sent; first 3 results ${second.firstJobMs.toFixed(0)} ms, 20 later jobs ${second.laterMs.toFixed(0)} ms`,
    );
  });
});
