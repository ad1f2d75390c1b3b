// `npm test`: every test/*.test.ts, one file at a time. Not a shell glob in package.json:
// cmd.exe does not expand globs and Node 20's --test does not either, so on Windows
// `test/*.test.ts` matched nothing. Plain .mjs, since it starts the TypeScript loader.
// `--exclude=a,b` leaves out test/a.test.ts and test/b.test.ts (.ci/run's passes on other Node
// versions); `--durations` prints each file's time at the end, slowest first (test/durations.mjs);
// other extra arguments go to node --test (e.g. --test-name-pattern=...).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const argv = process.argv.slice(2);
const durations = argv.includes('--durations');
const args = argv.filter((a) => a !== '--durations');
const excluded = new Set(
  args.filter((a) => a.startsWith('--exclude=')).flatMap((a) => a.slice('--exclude='.length).split(',')),
);
const files = readdirSync('test')
  .filter((f) => f.endsWith('.test.ts'))
  .sort();
const unknown = [...excluded].filter((name) => !files.includes(`${name}.test.ts`));
if (unknown.length > 0) {
  console.error(
    `test/run.mjs: --exclude names no test file: ${unknown.join(', ')} (give names like 'cluster' for test/cluster.test.ts)`,
  );
  process.exit(2);
}
const selected = files
  .filter((f) => !excluded.has(f.slice(0, -'.test.ts'.length)))
  .map((f) => join('test', f));
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-concurrency=1',
    // A file that hangs (a tsx/esbuild transform that never returns, seen twice in 20 full runs)
    // is cancelled after 10 minutes and the run goes on, instead of holding CI to its limit.
    // Each test's own time is far below (the slowest file takes about a minute).
    '--test-timeout=600000',
    // Naming a reporter replaces the default one, so the default (spec on a terminal, else tap)
    // is named too.
    ...(durations
      ? [
          `--test-reporter=${process.stdout.isTTY ? 'spec' : 'tap'}`,
          '--test-reporter-destination=stdout',
          `--test-reporter=${pathToFileURL(join('test', 'durations.mjs')).href}`,
          '--test-reporter-destination=stdout',
        ]
      : []),
    ...args.filter((a) => !a.startsWith('--exclude=')),
    ...selected,
  ],
  // tsx transforms synchronously through esbuild, which by default runs that in a worker thread
  // and waits for it in Atomics.wait: a test file's process once hung there for good in CI (main
  // thread in a futex, no esbuild child). ESBUILD_WORKER_THREADS=0 is esbuild's own switch to its
  // plain synchronous path (lib/main.js), for every test process and what they spawn.
  { stdio: 'inherit', env: { ...process.env, ESBUILD_WORKER_THREADS: '0' } },
);
process.exit(r.status ?? 1);
