// What differs between the supported Node.js majors (20, 22, 24), checked on the one running
// this file: .ci/run runs it on each (see README, Development). Each test asserts what this
// version must do, including that a feature is absent where it is (so a branch cannot pass by
// not running).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CodecError, decode, encode } from '../src/protocol/codec.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAJOR = Number.parseInt(process.versions.node, 10);
const SECRET = 'node-versions-test-secret-0123456789abcdef';
/** Node 22.18+ and 24 run .ts files by stripping their types ('strip'); not in @types/node 20. */
const TYPESCRIPT = (process.features as { typescript?: string }).typescript;

function run(
  args: string[],
  opts: { input?: string } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, PP_SECRET: SECRET };
  delete env.NODE_TEST_CONTEXT;
  delete env.NODE_OPTIONS; // nothing of this run's own loader: the child is a plain user program
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      args,
      { cwd: ROOT, env, timeout: 120_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

const report = (r: { code: number | null; stdout: string; stderr: string }) =>
  `exit code ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;

test(`Float16Array: carried on Node 24; on ${process.version} ${MAJOR >= 24 ? 'too' : 'an error saying what to send instead'}`, () => {
  // A Uint16Array's encoding with the view kind of a Float16Array (11): what a Node 24 peer sends.
  const bytes = encode(Uint16Array.of(0x3e00)); // 1.5 as a half float
  assert.deepEqual([...bytes], [1, 0xd1, 4, 2, 0x00, 0x3e]);
  bytes[2] = 11;
  const F16 = (globalThis as { Float16Array?: new (a: number[]) => ArrayLike<number> }).Float16Array;
  assert.equal(F16 !== undefined, MAJOR >= 24, 'Float16Array is a global from Node 24 on');
  if (F16) {
    const v = decode(bytes) as ArrayLike<number>;
    assert.ok(v instanceof F16);
    assert.equal(v[0], 1.5);
    assert.deepEqual([...encode(new F16([1.5]))], [...bytes]);
  } else {
    assert.throws(
      () => decode(bytes),
      (e: Error) =>
        e instanceof CodecError &&
        e.message.includes(`Float16Array is not available in this runtime (Node.js ${process.version})`) &&
        e.message.includes('send a Float32Array instead'),
    );
  }
});

test('a CommonJS program loads pp-node with require() (require(esm)) and runs a job, without warnings', async () => {
  const program = `
    const { Server } = require('pp-node');
    const server = new Server({ ncpus: 1 });
    server.submit((a, b) => a + b, [20, 22]).then(async (r) => {
      console.log('result', r);
      await server.close();
    });`;
  const r = await run(['--input-type=commonjs', '-'], { input: program });
  assert.equal(r.code, 0, report(r));
  assert.equal(r.stdout.trim(), 'result 42', report(r));
  assert.equal(r.stderr, '', report(r));
});

test(`await using: ${MAJOR >= 24 ? 'native syntax on Node 24' : `not in ${process.version}'s JavaScript; Symbol.asyncDispose closes the server`}`, async () => {
  let native = true;
  try {
    new Function('async function f() { await using s = null; }');
  } catch {
    native = false;
  }
  assert.equal(
    native,
    MAJOR >= 24,
    '`await using` is JavaScript from Node 24 on (TypeScript lowers it before)',
  );
  const block = native
    ? '{ await using server = new Server({ ncpus: 1 }); out.push(await server.submit((x) => x * 2, [21])); s = server; }'
    : '{ const server = new Server({ ncpus: 1 }); try { out.push(await server.submit((x) => x * 2, [21])); s = server; } finally { await server[Symbol.asyncDispose](); } }';
  const program = `
    import { Server, ServerClosedError } from 'pp-node';
    const out = [];
    let s;
    ${block}
    try { s.submit((x) => x, [1]); out.push('open'); } catch (e) { out.push(e instanceof ServerClosedError ? 'closed' : String(e)); }
    console.log(out.join(' '));`;
  const r = await run(['--input-type=module', '-'], { input: program });
  assert.equal(r.code, 0, report(r));
  assert.equal(r.stdout.trim(), '42 closed', report(r));
  assert.equal(r.stderr, '', report(r));
});

test(`TypeScript run by Node's own type stripping (22.18+, 24), without tsx${TYPESCRIPT ? '' : `: not in ${process.version}`}`, async (t) => {
  const stripping = Boolean(TYPESCRIPT);
  assert.equal(stripping, MAJOR >= 22, 'Node 22.18+ and 24 strip types by default; 20 does not');
  if (!stripping) {
    t.skip(`Node.js ${process.version} cannot run .ts files by itself (examples.test.ts runs them with tsx)`);
    return;
  }
  // Its functions carry type annotations; stripped, their source is what the workers compile.
  const r = await run(['examples/sum_primes.ts', '1']);
  assert.equal(r.code, 0, report(r));
  assert.match(r.stdout, /^Sum of primes below 100 is 1060$/m, report(r));
  assert.match(r.stdout, /^Sum of primes below 100000 is 454396537$/m, report(r));
  assert.equal(r.stderr, '', report(r));
});

test(`an example run by tsx on ${process.version}: the examples' own test (examples.test.ts) runs on Node 20 only`, async () => {
  // What the examples do with the job server is tested on Node 20; what the version changes is
  // how a program run by tsx loads (its loader hooks) and ships its typed functions.
  const r = await run(['--import', 'tsx', 'examples/sum_primes.ts', '1']);
  assert.equal(r.code, 0, report(r));
  assert.match(r.stdout, /^Starting pp with 1 workers$/m, report(r));
  assert.match(r.stdout, /^Sum of primes below 100000 is 454396537$/m, report(r));
  assert.equal(r.stdout.match(/^Sum of primes below \d+ is \d+$/gm)?.length, 9, report(r));
  assert.equal(r.stderr, '', report(r));
});
