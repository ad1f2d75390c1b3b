// `npm test`: every test/*.test.ts, one file at a time. Not a shell glob in package.json:
// cmd.exe does not expand globs and Node 20's --test does not either, so on Windows
// `test/*.test.ts` matched nothing. Plain .mjs, since it starts the TypeScript loader.
// Extra arguments go to node --test (e.g. --test-name-pattern=...).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const files = readdirSync('test')
  .filter((f) => f.endsWith('.test.ts'))
  .sort()
  .map((f) => join('test', f));
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', '--test-concurrency=1', ...process.argv.slice(2), ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
