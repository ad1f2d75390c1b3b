// Runs the five classic pp examples the way a user would (`npx tsx examples/<name>.ts 2`)
// and checks what they print against expectations computed here, serially and independently.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as acornParse } from 'acorn';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const tsxPkgPath = require.resolve('tsx/package.json');
const tsxCli = path.join(path.dirname(tsxPkgPath), (require(tsxPkgPath) as { bin: string }).bin);

const TIMEOUT_MS = 240_000;

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

// The example must not think it is a test file of this run.
const childEnv = { ...process.env };
delete childEnv.NODE_TEST_CONTEXT;

/** `npx tsx examples/<name>.ts 2`, without npx's start-up cost. */
function runExample(name: string, ...args: string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [tsxCli, `examples/${name}.ts`, ...args],
      { cwd: root, timeout: TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, env: childEnv },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function assertExitedCleanly(r: RunResult): void {
  assert.equal(r.code, 0, `exit code ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`);
}

/** All matches of a global regex, as arrays of captured groups. */
function matchAll(text: string, re: RegExp): string[][] {
  return [...text.matchAll(re)].map((m) => m.slice(1));
}

/**
 * pp's statistics table:
 *   Job execution statistics:
 *    job count | % of all jobs | job time sum | time per job | speed | job server
 *            9 |        100.00 |       0.1234 |     0.013711 |  1.00 | local
 * Returns the job count of the 'local' row.
 */
function localJobCount(stdout: string): number {
  const at = stdout.indexOf('Job execution statistics');
  assert.notEqual(at, -1, `no "Job execution statistics" table in:\n${stdout}`);
  const table = stdout.slice(at);
  const row = table.split('\n').find((line) => /\|\s*local\s*$/.test(line));
  assert.ok(row, `no 'local' row in the statistics table:\n${table}`);
  const count = /^\s*(\d+)/.exec(row);
  assert.ok(count, `the 'local' row does not start with a job count: ${row}`);
  return Number(count[1]);
}

// ---- independent serial reference computations -------------------------------------------

/** Sum of the primes below n, by a sieve (a different algorithm from the example's trial division). */
function sumPrimesBelow(n: number): number {
  const composite = new Uint8Array(n);
  let sum = 0;
  for (let i = 2; i < n; i++) {
    if (composite[i]) continue;
    sum += i;
    for (let j = i * i; j < n; j += i) composite[j] = 1;
  }
  return sum;
}

/** 1 - 1/2 + 1/3 - ... ± 1/(end-1), summed serially. */
function alternatingHarmonic(end: number): number {
  let sum = 0;
  for (let x = 1; x < end; x++) sum += (x % 2 === 0 ? -1 : 1) / x;
  return sum;
}

function md5(text: string): string {
  return crypto.createHash('md5').update(text).digest('hex');
}

describe('examples', { concurrency: false }, () => {
  test('sum_primes', { timeout: TIMEOUT_MS + 10_000 }, async () => {
    const r = await runExample('sum_primes', '2');
    assertExitedCleanly(r);
    assert.match(r.stdout, /^Usage: .*sum_primes\.ts \[ncpus\]/m);
    assert.match(r.stdout, /^Starting pp with 2 workers$/m);
    // pp documents this one.
    assert.match(r.stdout, /^Sum of primes below 100 is 1060$/m);
    assert.equal(sumPrimesBelow(100), 1060);

    const inputs = [100000, 100100, 100200, 100300, 100400, 100500, 100600, 100700];
    const printed = matchAll(r.stdout, /^Sum of primes below (\d+) is (\d+)$/gm).map(([n, s]) => [
      Number(n),
      Number(s),
    ]);
    assert.deepEqual(
      printed,
      [[100, 1060], ...inputs.map((n) => [n, sumPrimesBelow(n)])],
      'the 9 sums, in submission order',
    );
    assert.equal(localJobCount(r.stdout), 9);
  });

  test('reverse_md5', { timeout: TIMEOUT_MS + 10_000 }, async () => {
    const r = await runExample('reverse_md5', '2');
    assertExitedCleanly(r);
    assert.match(r.stdout, /^Starting pp with 2 workers$/m);
    const hash = md5('1829182');
    assert.match(r.stdout, new RegExp(`^hash = ${hash}$`, 'm'));
    assert.match(r.stdout, new RegExp(`^Reverse md5 for ${hash} is 1829182$`, 'm'));
    assert.equal(md5(String(1829182)), hash);

    // The example submits 128 jobs; like pp's original it prints the statistics as soon as the
    // answer is found, before `server.wait()`, so jobs after the one holding the answer may still
    // be running. Every job up to the one that holds 1829182 has finished by then.
    const parts = 128;
    const step = Math.trunc((2000000 - 1) / parts + 1);
    const foundPart = Math.floor((1829182 - 1) / step);
    const count = localJobCount(r.stdout);
    assert.ok(
      count >= foundPart + 1 && count <= parts,
      `job count ${count} not in [${foundPart + 1}, ${parts}]`,
    );
  });

  test('callback', { timeout: TIMEOUT_MS + 10_000 }, async () => {
    const r = await runExample('callback', '2');
    assertExitedCleanly(r);
    assert.match(r.stdout, /^Starting pp with 2 workers$/m);
    const sums = matchAll(r.stdout, /^Partial sum is (\S+) \| diff = (\S+)$/gm);
    assert.equal(sums.length, 1);
    checkPartialSum(sums[0]!);
    assert.equal(localJobCount(r.stdout), 128);
  });

  test('dynamic_ncpus', { timeout: TIMEOUT_MS + 10_000 }, async () => {
    // like pp's dynamic_ncpus.py, it takes no [ncpus] argument: it sets 1, 2, 4, 8, 16, 1 itself
    const r = await runExample('dynamic_ncpus');
    assertExitedCleanly(r);
    assert.match(r.stdout, /^Usage: .*dynamic_ncpus\.ts$/m);
    const stages = matchAll(r.stdout, /^Starting pp with (\d+) workers$/gm).map(([n]) => Number(n));
    assert.deepEqual(stages, [1, 2, 4, 8, 16, 1]);
    const sums = matchAll(r.stdout, /^Partial sum is (\S+) \| diff = (\S+)$/gm);
    assert.equal(sums.length, 6);
    for (const s of sums) checkPartialSum(s);
    const times = matchAll(r.stdout, /^Time elapsed: +(\S+) s$/gm);
    assert.equal(times.length, 6);
    for (const [t] of times) assert.ok(Number(t) >= 0, `bad elapsed time ${t}`);
    // 6 stages of 64 jobs each
    assert.equal(localJobCount(r.stdout), 6 * 64);
  });

  test('packages', { timeout: TIMEOUT_MS + 10_000 }, async () => {
    const r = await runExample('packages');
    assertExitedCleanly(r);
    const distDir = path.join(root, 'dist', 'protocol');
    const files = readdirSync(distDir)
      .filter((f) => f.endsWith('.js'))
      .sort();
    const lines = matchAll(r.stdout, /^(\S+\.js): (\d+) statements, (\d+) functions$/gm);
    assert.deepEqual(
      lines.map(([f]) => f),
      files,
    );
    for (const [f, statements, functions] of lines) {
      const source = readFileSync(path.join(distDir, f!), 'utf8');
      const ast = acornParse(source, { ecmaVersion: 'latest', sourceType: 'module' });
      assert.equal(Number(statements), ast.body.length, `${f}: statements`);
      // Counted another way: function nodes in the tree's JSON text.
      const json = JSON.stringify(ast, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
      const expected = json.match(
        /"type":"(FunctionDeclaration|FunctionExpression|ArrowFunctionExpression)"/g,
      )?.length;
      assert.equal(Number(functions), expected ?? 0, `${f}: functions`);
    }
    // Both modules (acorn, lib/js-stats.ts) went to the throwaway node, once each.
    const sent = /Modules sent to \S+: (\d+) \((\d+) bytes\)/.exec(r.stdout);
    assert.ok(sent, r.stdout);
    assert.equal(Number(sent[1]), 2);
    assert.ok(Number(sent[2]) > 10_000);
  });

  test('auto_diff', { timeout: TIMEOUT_MS + 10_000 }, async () => {
    const r = await runExample('auto_diff', '2');
    assertExitedCleanly(r);
    assert.match(r.stdout, /^Starting pp with 2 workers$/m);
    const lines = matchAll(r.stdout, /^t_log\((\S+)\) = (\S+), t_log'\((\S+)\) = (\S+)$/gm).map((m) =>
      m.map(Number),
    );
    assert.equal(lines.length, 32);
    // Tolerance: t_log(x) is the series sum_{i=1}^{n-1} (-1)^(i+1) (x-1)^i / i with n = 20000 and
    // x - 1 <= 31/32, so the truncation error is below (31/32)^20000 / 20000 < 1e-270 for the
    // value and below (31/32)^19999 for the derivative; rounding over 20000 terms of size <= 1
    // adds at most ~20000 * 2^-53 < 1e-11. The example prints with %lf (6 decimals), which adds
    // up to 5e-7. Hence 1e-6.
    const tol = 1e-6;
    lines.forEach(([x, value, x2, slope], i) => {
      const expectedX = i / 32 + 1;
      assert.equal(x, Number(expectedX.toFixed(6)), `line ${i}: x`);
      assert.equal(x2, x, `line ${i}: x printed twice`);
      assert.ok(Math.abs(value! - Math.log(expectedX)) <= tol, `t_log(${expectedX}) = ${value}`);
      assert.ok(Math.abs(slope! - 1 / expectedX) <= tol, `t_log'(${expectedX}) = ${slope}`);
    });
    assert.equal(localJobCount(r.stdout), 32);
  });
});

/**
 * A printed "Partial sum is S | diff = D" of 1 - 1/2 + 1/3 - ... over x in [1, 20000000).
 * Alternating series bound: |ln 2 - S_N| <= 1/(N+1) with N = 19999999 terms, i.e. 5e-8.
 * Float slack: 2e7 additions of terms <= 1 round to at most ~2e7 * 2^-53 ≈ 2.2e-9; allow 1e-8.
 * The serial sum computed here must agree to within the same rounding slack (parts are summed
 * in a different order), and diff must be ln 2 - S.
 */
const END = 20000000;
let serialPartialSum: number | undefined;
function checkPartialSum([s, d]: string[]): void {
  const sum = Number(s);
  const diff = Number(d);
  assert.ok(Number.isFinite(sum) && Number.isFinite(diff), `unparsable: ${s} | ${d}`);
  const truncation = 1 / END;
  const slack = 1e-8;
  assert.ok(Math.abs(Math.LN2 - sum) <= truncation + slack, `partial sum ${sum} too far from ln 2`);
  serialPartialSum ??= alternatingHarmonic(END);
  assert.ok(Math.abs(sum - serialPartialSum) <= slack, `partial sum ${sum} vs serial ${serialPartialSum}`);
  assert.ok(Math.abs(diff - (Math.log(2) - sum)) <= 1e-15, `diff ${diff} is not ln 2 - ${sum}`);
}
