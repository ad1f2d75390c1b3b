// Modules travel (issue 16): packages and local modules installed only on the client run on a
// node started from an empty folder with an empty module cache. Nodes run on 127.0.0.1 with
// discovery off (--no-announce), as real `pp-node` processes (test/helpers/nodes.ts), each
// with its own HOME, so that its cache (~/.cache/pp-node) starts empty; clients run as
// processes of their own, from the folder their packages are installed in.
//
// The packages (nanoid: ESM-only; qs: CommonJS with dependencies of its own) are installed
// from the registry into test/fixtures/packages by this file's setup (test/helpers/packages.ts,
// shared with test/packages-lab.test.ts), never where the node could find them.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Server } from '../src/api/server.ts';
import { Daemon } from '../src/daemon/daemon.ts';
import { ModuleError } from '../src/modules/pack.ts';
import { checkPack, PackStore, packHash } from '../src/modules/store.ts';
import { decodeMessage, encodeMessage, type Message, MessageError } from '../src/protocol/messages.ts';
import { loopbackDaemon } from './helpers/daemon.ts';
import { type NodeProcess, startNode } from './helpers/nodes.ts';
import {
  CLIENT_SCRIPT,
  cacheEntries,
  EXPECTED,
  FIXTURE,
  installFixturePackages,
} from './helpers/packages.ts';

// Module bindings the jobs use (the worker binds them; see SubmitOptions.modules).
declare const native: { x: unknown };
declare const acorn: typeof import('acorn');
declare const nothing: { x: unknown };
declare const geo: { x: unknown };
declare const qs: { stringify(v: unknown): string };
declare const query: { roundTrip(v: Record<string, unknown>): string };

const DIST_INDEX = pathToFileURL(fileURLToPath(new URL('../dist/index.js', import.meta.url))).href;
const SECRET = randomBytes(32).toString('hex');
const tmp = mkdtempSync(join(tmpdir(), 'pp-packages-'));

/** A fresh folder under this test's temp folder. */
function fresh(name: string): string {
  const dir = join(tmp, `${name}-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A node that says it runs another platform (in this process: a test option of Daemon). */
function otherPlatformDaemon(name: string): Daemon {
  return new Daemon(
    loopbackDaemon(SECRET, {
      name,
      id: `${name}-platform`,
      cacheDir: fresh('daemon-cache'),
      runtime: { platform: 'win32', arch: 'arm64', node: 'v22.0.0', abi: '127' },
    }),
  );
}

/** Runs a client script; resolves with the JSON line it prints. */
function runClient(script: string, nodePort: number, cwd: string, home: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, PP_SECRET: SECRET, HOME: home };
    env.PP_TEST_NODE = `127.0.0.1:${nodePort}`;
    delete env.NODE_TEST_CONTEXT;
    delete env.PP_NODE_CACHE_DIR;
    delete env.XDG_CACHE_HOME;
    execFile(process.execPath, [script], { cwd, env, timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${script} failed: ${error.message}\n${stderr}`));
      else resolve(JSON.parse(stdout.trim().split('\n').at(-1)!));
    });
  });
}

/** A node started in an empty folder, with an empty HOME (so an empty module cache). */
async function emptyNode(args: string[] = []): Promise<{ node: NodeProcess; home: string; cwd: string }> {
  const home = fresh('node-home');
  const cwd = fresh('node-cwd');
  const env: Record<string, string> = { HOME: home, PP_NODE_CACHE_DIR: '', XDG_CACHE_HOME: '' };
  const node = await startNode({ secret: SECRET, workers: 1, cwd, env, args, logLevel: 'info' });
  return { node, home, cwd };
}

const nodes: NodeProcess[] = [];

// The client's packages, from the registry, exactly as pinned (package-lock.json).
before(installFixturePackages);

after(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  rmSync(tmp, { recursive: true, force: true });
});

describe('modules travel to nodes', () => {
  it('runs jobs needing an ESM-only package, a CommonJS package with dependencies and a local TS module on a node with nothing installed; a second client run sends nothing', async () => {
    const { node, home, cwd } = await emptyNode();
    nodes.push(node);
    assert.deepEqual(readdirSync(cwd), [], 'the node runs in an empty folder');
    assert.deepEqual(cacheEntries(home), [], 'with an empty module cache');
    const clientHome = fresh('client-home');
    const script = CLIENT_SCRIPT;

    const first = await runClient(script, node.port, FIXTURE, clientHome);
    const [id, str, trip] = first.results;
    assert.match(id, /^[xy]{16}$/);
    assert.equal(str, EXPECTED.str);
    assert.equal(trip, EXPECTED.trip);
    assert.deepEqual(first.more, EXPECTED.more);
    assert.equal(first.modulesSent.packs, 3, 'nanoid, qs and lib/query.ts, once each');
    assert.ok(first.modulesSent.bytes > 1000, `bytes sent: ${first.modulesSent.bytes}`);
    const stored = cacheEntries(home);
    assert.equal(stored.length, 3);
    const modeOf = (p: string) => statSync(p).mode & 0o777;
    assert.equal(modeOf(join(home, '.cache', 'pp-node')), 0o700);
    assert.equal(modeOf(join(home, '.cache', 'pp-node', 'modules')), 0o700);
    console.log(
      `first run: ${first.modulesSent.packs} packs, ${first.modulesSent.bytes} bytes; first submit ` +
        `${first.firstSubmitMs.toFixed(0)} ms (bundling), first 3 results ${first.firstJobMs.toFixed(0)} ms, ` +
        `20 later jobs ${first.laterMs.toFixed(0)} ms`,
    );

    const second = await runClient(script, node.port, FIXTURE, clientHome);
    assert.deepEqual(second.results.slice(1), first.results.slice(1));
    assert.deepEqual(second.modulesSent, { packs: 0, bytes: 0 }, 'the node kept them: nothing sent again');
    assert.deepEqual(cacheEntries(home).sort(), stored.sort());
    console.log(
      `second run: nothing sent; first 3 results ${second.firstJobMs.toFixed(0)} ms, 20 later jobs ${second.laterMs.toFixed(0)} ms`,
    );
  });

  it('two clients with two versions of one package each get their own', async () => {
    const { node, home } = await emptyNode();
    nodes.push(node);
    const clients = ['1.0.0', '2.0.0'].map((version) => {
      const dir = fresh(`client-${version}`);
      const pkg = join(dir, 'node_modules', 'vpkg');
      mkdirSync(pkg, { recursive: true });
      writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'vpkg', version, main: 'index.js' }));
      writeFileSync(join(pkg, 'index.js'), `exports.version = ${JSON.stringify(version)};\n`);
      const script = join(dir, 'client.mjs');
      writeFileSync(
        script,
        `import { Server } from ${JSON.stringify(DIST_INDEX)};
const server = new Server({ ncpus: 0, ppservers: [process.env.PP_TEST_NODE] });
await new Promise((resolve) => server.once('node-up', resolve));
const jobs = Array.from({ length: 6 }, () => server.submit(() => vpkg.version, [], { modules: ['vpkg'] }));
console.log(JSON.stringify(await Promise.all(jobs)));
await server.close();
`,
      );
      return { dir, script, version };
    });
    // At the same time, on one node (one worker: both load into the same worker process).
    const outputs = await Promise.all(
      clients.map((c) => runClient(c.script, node.port, c.dir, fresh('client-home'))),
    );
    assert.deepEqual(outputs[0], Array(6).fill('1.0.0'));
    assert.deepEqual(outputs[1], Array(6).fill('2.0.0'));
    assert.equal(cacheEntries(home).length, 2, 'one cache entry per version');
  });

  it('a package with a native addon: a clear error at submit when no node can load it; else only nodes that can run it get its jobs', async () => {
    const dir = fresh('native');
    const pkg = join(dir, 'node_modules', 'fake-native');
    mkdirSync(join(pkg, 'build', 'Release'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'fake-native', version: '1.0.0' }));
    writeFileSync(join(pkg, 'index.js'), "module.exports = require('./build/Release/addon.node');\n");
    writeFileSync(join(pkg, 'build', 'Release', 'addon.node'), 'not really a shared object');
    const entry = join(pkg, 'index.js');

    const daemon = otherPlatformDaemon('other');
    const port = await daemon.listen();
    try {
      const remoteOnly = new Server({
        ncpus: 0,
        ppservers: [`127.0.0.1:${port}`],
        secret: SECRET,
        cacheDir: fresh('c'),
      });
      await new Promise((resolve) => remoteOnly.once('node-up', resolve));
      assert.throws(
        () => remoteOnly.submit(() => native.x, [], { modules: [{ native: entry }] }),
        (e: Error) =>
          e instanceof ModuleError &&
          /fake-native holds a native addon/.test(e.message) &&
          /node 127\.0\.0\.1:\d+ runs win32 arm64, Node v22\.0\.0 \(ABI 127\)/.test(e.message),
      );
      await remoteOnly.close();

      // With local workers too: every job goes to them (the fake addon then fails to load there).
      const both = new Server({
        ncpus: 1,
        ppservers: [`127.0.0.1:${port}`],
        secret: SECRET,
        cacheDir: fresh('c'),
      });
      await new Promise((resolve) => both.once('node-up', resolve));
      const jobs = Array.from({ length: 8 }, () =>
        both.submit(() => native.x, [], { modules: [{ native: entry }] }),
      );
      const outcomes = await Promise.allSettled(jobs);
      for (const o of outcomes) {
        assert.equal(o.status, 'rejected');
        assert.match(String((o as PromiseRejectedResult).reason.message), /could not start on local/);
      }
      const remote = both.getStats().nodes.find((n) => n.node !== 'local');
      assert.equal(remote?.jobs ?? 0, 0, 'no job went to the node that cannot load the addon');
      await both.close();
    } finally {
      await daemon.close(0);
    }
  });

  it('a job only some nodes can run does not wait for ever while a faster node that cannot run it idles', async () => {
    // A package built by node-gyp (so its jobs run only where it was packed) whose code does
    // not load its addon: its jobs run here.
    const dir = fresh('native-faster');
    const pkg = join(dir, 'node_modules', 'fake-native');
    mkdirSync(pkg, { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'fake-native', version: '1.0.0' }));
    writeFileSync(join(pkg, 'binding.gyp'), '{ "targets": [] }\n');
    writeFileSync(join(pkg, 'index.js'), "module.exports = { x: 'ran' };\n");
    const entry = join(pkg, 'index.js');
    // Workers take their environment when they start: the other node's run jobs 3x as fast.
    const slowdown = process.env.PP_TEST_SLOWDOWN;
    process.env.PP_TEST_SLOWDOWN = '1';
    const daemon = otherPlatformDaemon('fast-other');
    process.env.PP_TEST_SLOWDOWN = '3';
    const server = new Server({
      ncpus: 1,
      ppservers: [`127.0.0.1:${await daemon.listen()}`],
      secret: SECRET,
      cacheDir: fresh('c'),
    });
    if (slowdown === undefined) delete process.env.PP_TEST_SLOWDOWN;
    else process.env.PP_TEST_SLOWDOWN = slowdown;
    try {
      await new Promise((resolve) => server.once('node-up', resolve));
      const sleepy = (ms: number) => {
        const factor = Number(process.env.PP_TEST_SLOWDOWN) || 1;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms * factor);
        return factor;
      };
      // Both nodes run plain jobs, so the server learns that the other one is 3x as fast.
      const factors = await Promise.all(Array.from({ length: 12 }, () => server.submit(sleepy, [10])));
      assert.ok(factors.includes(1) && factors.includes(3), `ran on both: ${factors.join(',')}`);
      const nativeJob = (ms: number) => {
        Atomics.wait(
          new Int32Array(new SharedArrayBuffer(4)),
          0,
          0,
          ms * (Number(process.env.PP_TEST_SLOWDOWN) || 1),
        );
        return native.x;
      };
      // One by one, on an idle cluster: the local worker is the only one that can run them.
      for (let i = 0; i < 3; i++) {
        const outcome = await Promise.race([
          server.submit(nativeJob, [10], { modules: [{ native: entry }] }),
          new Promise((resolve) => setTimeout(resolve, 10_000, `job ${i} never settled`).unref()),
        ]);
        assert.equal(outcome, 'ran');
      }
      const remote = server.getStats().nodes.find((n) => n.node !== 'local');
      assert.ok(remote && remote.jobs > 0 && remote.jobs < 12, 'the other node ran plain jobs only');
    } finally {
      await server.close();
      await daemon.close(0);
    }
  });
});

describe('what cannot travel says so at submit', () => {
  it('a specifier that does not resolve on the client', async () => {
    await using server = new Server({ ncpus: 1, cacheDir: fresh('c') });
    assert.throws(
      () => server.submit(() => nothing.x, [], { modules: [{ nothing: 'no-such-package-pp16' }] }),
      (e: Error) =>
        e instanceof ModuleError &&
        /'no-such-package-pp16' does not resolve here/.test(e.message) &&
        /npm install no-such-package-pp16/.test(e.message),
    );
    assert.throws(
      () => server.submit(() => geo.x, [], { modules: [{ geo: './no/such/file.ts' }] }),
      (e: Error) => e instanceof ModuleError && /no file .*no\/such\/file\.ts/.test(e.message),
    );
  });

  it('a module over maxModuleBytes', async () => {
    await using server = new Server({ ncpus: 1, cacheDir: fresh('c'), maxModuleBytes: 10_000 });
    assert.throws(
      () =>
        server.submit(() => qs.stringify({}), [], {
          modules: [{ qs: join(FIXTURE, 'node_modules/qs/lib/index.js') }],
        }),
      (e: Error) => e instanceof ModuleError && /over maxModuleBytes \(0\.0 MiB\)/.test(e.message),
    );
  });

  it('a local TypeScript module, relative to the calling file, runs on local workers with its imports', async () => {
    await using server = new Server({ ncpus: 1, cacheDir: fresh('c') });
    const out = await server.submit(
      (v: Record<string, unknown>) => query.roundTrip(v),
      [{ b: '2', a: '1' }],
      {
        modules: [{ query: './fixtures/packages/lib/query.ts' }],
      },
    );
    assert.equal(out, 'a=1&b=2');
  });
});

describe('protocol 3 messages', () => {
  const def = {
    hash: 'f'.repeat(64),
    name: 'f',
    code: 'return { fn: () => 1, classes: {} };',
    bindings: ['m', 'fs'],
    modules: [
      ['m', 'qs'],
      ['fs', 'node:fs'],
    ] as Array<[string, string]>,
    globals: {},
  };

  it("a definition names its modules' packs ('' for Node's own); a malformed list is refused", () => {
    const ok = { ...def, packages: ['a'.repeat(64), ''] };
    assert.deepEqual(decodeMessage(Buffer.concat(encodeMessage({ type: 'define', defs: [ok] }))), {
      type: 'define',
      defs: [ok],
    });
    // From an older client: no packages at all.
    assert.deepEqual(decodeMessage(Buffer.concat(encodeMessage({ type: 'define', defs: [def] }))), {
      type: 'define',
      defs: [def],
    });
    for (const packages of [['a'.repeat(64)], ['../x', ''], ['A'.repeat(64), '']]) {
      const bad = Buffer.concat(encodeMessage({ type: 'define', defs: [{ ...def, packages }] }));
      assert.throws(() => decodeMessage(bad), MessageError);
    }
  });

  it("'need' and 'pack' round-trip; a welcome may carry the node's runtime, or not (older nodes)", () => {
    const need: Message = { type: 'need', hashes: ['a'.repeat(64)] };
    assert.deepEqual(decodeMessage(Buffer.concat(encodeMessage(need))), need);
    const pack: Message & { type: 'pack' } = {
      type: 'pack',
      hash: 'b'.repeat(64),
      entry: 'index.mjs',
      paths: ['index.mjs', 'x/addon.node'],
      blobs: [Buffer.from('export default 1;'), Buffer.from([0, 1, 2])],
    };
    const back = decodeMessage(Buffer.concat(encodeMessage(pack))) as typeof pack;
    assert.deepEqual({ ...back, blobs: back.blobs.map((b) => Buffer.from(b)) }, pack);
    const info = { id: 'n', name: 'n', ncpus: 2, version: '0.1.0', protocol: 3 };
    const runtime = { platform: 'linux', arch: 'x64', node: 'v20.0.0', abi: '115' };
    for (const i of [info, { ...info, runtime }]) {
      assert.deepEqual(decodeMessage(Buffer.concat(encodeMessage({ type: 'welcome', info: i }))), {
        type: 'welcome',
        info: i,
      });
    }
    const bad = Buffer.concat(
      encodeMessage({ type: 'welcome', info: { ...info, runtime: { platform: 1 } as never } }),
    );
    assert.throws(() => decodeMessage(bad), MessageError);
  });
});

describe('installedModules', () => {
  it("loads those from each worker's own installation: nothing is bundled or stored", async () => {
    const cacheDir = fresh('installed');
    await using server = new Server({ ncpus: 1, cacheDir, installedModules: ['acorn'] });
    const n = await server.submit(
      (src: string) => acorn.parse(src, { ecmaVersion: 'latest' }).body.length,
      ['a; b; c'],
      {
        modules: ['acorn'],
      },
    );
    assert.equal(n, 3);
    assert.ok(!existsSync(join(cacheDir, 'modules')) || readdirSync(join(cacheDir, 'modules')).length === 0);
  });
});

describe('module cache', () => {
  const file = (path: string, text: string) => ({ path, bytes: Buffer.from(text) });
  const pack = (text: string) => {
    const files = [file('index.mjs', `export default { text: ${JSON.stringify(text)} };`)];
    return { hash: packHash('index.mjs', files), entry: 'index.mjs', files };
  };

  it('evicts the least recently used entries past its cap, sparing pinned ones', () => {
    const store = new PackStore(fresh('cap'), 3500);
    const big = (c: string) => pack(c.repeat(1000));
    const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(big);
    store.put(a!);
    store.put(b!);
    // a used after b: b is the least recently used.
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(store.dir, b!.hash, '.pp-pack.json'), past, past);
    assert.ok(store.has(a!.hash));
    store.put(c!);
    assert.equal(store.entries().length, 3, 'within the cap: nothing evicted');
    store.put(d!, new Set([b!.hash]));
    const left = new Set(store.entries().map((e) => e.hash));
    assert.ok(
      !left.has(a!.hash) && left.has(b!.hash) && left.has(c!.hash) && left.has(d!.hash),
      'a went (b pinned)',
    );
  });

  it('refuses paths out of the entry and content that does not match its hash', () => {
    for (const path of [
      '../x.js',
      '/etc/passwd',
      'a/../../x',
      'a\\b',
      'a//b',
      './a',
      '.pp-pack.json',
      'C:/x',
    ]) {
      const files = [file('index.mjs', ''), file(path, 'x')];
      assert.throws(
        () => checkPack({ hash: packHash('index.mjs', files), entry: 'index.mjs', files }),
        /path/,
      );
    }
    const p = pack('one');
    assert.throws(() => checkPack({ ...p, files: [file('index.mjs', 'tampered')] }), /hashes to/);
    assert.throws(() => checkPack({ ...p, entry: 'other.mjs' }), /no entry file/);
  });

  it('verifies an entry when it is loaded: a changed file or a symbolic link is refused, and the entry removed', () => {
    const store = new PackStore(fresh('verify'));
    const p = pack('ok');
    store.put(p);
    assert.match(store.verifiedEntry(p.hash), /^file:.*index\.mjs$/);
    writeFileSync(join(store.dir, p.hash, 'index.mjs'), 'export default 666;');
    assert.throws(() => store.verifiedEntry(p.hash), /damaged and removed: its files do not match its hash/);
    assert.ok(!existsSync(join(store.dir, p.hash)));

    store.put(p);
    const target = join(store.dir, p.hash, 'index.mjs');
    const outside = join(dirname(store.dir), 'outside.mjs');
    writeFileSync(outside, readFileSync(target));
    rmSync(target);
    symlinkSync(outside, target);
    assert.throws(() => store.verifiedEntry(p.hash), /symbolic link/);
  });
});
