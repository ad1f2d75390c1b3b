// `server.wait({ progress: true })`: a line on stderr under a terminal (a pty made by
// `script`), redrawn at most 10 times a second, fitted to the width; nothing when piped.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { progressLine } from '../src/api/progress-bar.ts';

const HELPER = fileURLToPath(new URL('./helpers/progress-run.ts', import.meta.url));
const N = 60;
const FAILING = Math.ceil(N / 10); // jobs 0, 10, 20...

// The helper must not think it is a test file of this run.
const env = { ...process.env };
delete env.NODE_TEST_CONTEXT;

function run(file: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { env, timeout: 120_000, maxBuffer: 1 << 24 }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error.code as number) ?? null) : 0, stdout, stderr }),
    );
  });
}

const hasScript = spawnSync('script', ['--version']).status === 0;

describe('progress bar', () => {
  test('under a terminal: one line, redrawn at most 10 times a second, ending at N/N', {
    skip: hasScript ? false : 'no `script` (util-linux) to make a terminal',
  }, async () => {
    const cmd = `stty cols 100; ${process.execPath} --import tsx ${HELPER} ${N}`;
    const r = await run('script', ['-qfec', cmd, '/dev/null']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // Under the pty, stdout and stderr are one stream; the bar is drawn with \r and erase-line.
    const waited = Number(/waited (\d+) ms/.exec(r.stdout)?.[1]);
    assert.ok(waited > 0, r.stdout);
    const frames = r.stdout
      .split('\r')
      .filter((f) => f.startsWith('['))
      .map((f) => f.replace(/\x1b\[K[\s\S]*$/, ''));
    assert.ok(frames.length >= 2, `frames: ${JSON.stringify(frames)}`);
    const allowed = Math.ceil((waited / 1000) * 10) + 2; // the issue: at most ~10 redraws a second
    assert.ok(frames.length <= allowed, `${frames.length} redraws in ${waited} ms`);
    let before = -1;
    for (const f of frames) {
      assert.ok(f.length <= 99, `fits 100 columns: ${f}`);
      const m =
        /^\[[#-]+\] (\d+)\/(\d+) {2}(?:(\d+) failed {2})?[\d.]+ jobs\/s {2}ETA \S+ {2}nodes (\d)\/1$/.exec(f);
      assert.ok(m, `frame: ${JSON.stringify(f)}`);
      assert.equal(Number(m[2]), N);
      assert.ok(Number(m[1]) >= before, 'done only grows');
      before = Number(m[1]);
    }
    const last = frames.at(-1)!;
    assert.match(last, new RegExp(`^\\[#+\\] ${N}/${N}  ${FAILING} failed  .* ETA 0s  nodes 0/1$`));
    assert.match(r.stdout, new RegExp(`${N}/${N}.*\\x1b\\[K\\r?\\n`), 'the line ends with a newline');
  });

  test('not a terminal: nothing drawn', async () => {
    const r = await run(process.execPath, ['--import', 'tsx', HELPER, String(N)]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^waited \d+ ms\n$/);
    assert.equal(r.stderr, '');
  });

  test('the line fits the width, dropping the bar when narrow', () => {
    const p = { total: 1000, finished: 250, failed: 3, pending: 750 };
    const wide = progressLine(p, 50, 2, 3, 120);
    assert.equal(
      wide,
      `[${'#'.repeat(10)}${'-'.repeat(30)}] 250/1000  3 failed  50.0 jobs/s  ETA 15s  nodes 2/3`,
    );
    const narrow = progressLine(p, 50, 2, 3, 40);
    assert.ok(narrow.length <= 39 && narrow.startsWith('250/1000'), narrow);
    assert.match(
      progressLine({ ...p, failed: 0 }, 0, 0, 1, 80),
      /250\/1000 {2}0\.0 jobs\/s {2}ETA \? {2}nodes 0\/1$/,
    );
    assert.match(progressLine(p, 1234.5, 2, 3, 80), /1235 jobs\/s/);
  });
});
