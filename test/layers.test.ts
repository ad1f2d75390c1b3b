// Every import in src/ points down the layer table of the README's Development section: a
// module imports from its own directory, or from a row below its own, never from a sibling
// on its row. The table is read from README.md, so the two cannot drift apart.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';

const ROOT = resolve(import.meta.dirname, '..');

/** Rows of the table, top first: each a list of entries like 'src/api', 'src/index.ts', 'src/*.ts'. */
export function layerRows(readme: string): string[][] {
  const section = readme.slice(readme.indexOf('## Development'));
  const block = /```\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .split('\n')
    .filter((line) => line.startsWith('src/'))
    .map((line) => line.split(/\s{2,}/)[0]!.split(/,\s*/));
}

/** The table entry a file of src/ belongs to. */
function entryOf(file: string, entries: readonly string[]): string {
  if (entries.includes(file)) return file;
  const parts = file.split('/');
  if (parts.length === 2) return 'src/*.ts';
  return `src/${parts[1]}`;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sourceFiles(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

/** Relative module specifiers of a file: static imports and re-exports, and import('...'). */
function importsOf(code: string): string[] {
  const out: string[] = [];
  for (const m of code.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'";]*?from\s*'(\.[^']+)'/g)) out.push(m[1]!);
  for (const m of code.matchAll(/\bimport\(\s*'(\.[^']+)'\s*\)/g)) out.push(m[1]!);
  return out;
}

/** The imports that break the table, as 'from -> to' lines. */
export function backEdges(rows: string[][], files: ReadonlyMap<string, string>): string[] {
  const entries = rows.flat();
  const rank = new Map<string, number>();
  rows.forEach((row, i) => {
    for (const e of row) rank.set(e, i);
  });
  const bad: string[] = [];
  for (const [file, code] of files) {
    const from = entryOf(file, entries);
    for (const spec of importsOf(code)) {
      const target = relative(ROOT, resolve(ROOT, dirname(file), spec))
        .split('\\')
        .join('/');
      const to = entryOf(target, entries);
      if (to === from) continue;
      const rf = rank.get(from);
      const rt = rank.get(to);
      if (rf === undefined || rt === undefined) bad.push(`${file} -> ${target} (not in the table)`);
      else if (rt <= rf) bad.push(`${file} -> ${target} (${from} -> ${to})`);
    }
  }
  return bad;
}

test('every import in src/ points down the README layer table', () => {
  const rows = layerRows(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  assert.ok(rows.length >= 8, `the README layer table was not found (${rows.length} rows)`);
  const files = new Map(
    sourceFiles(join(ROOT, 'src')).map((f) => [
      relative(ROOT, f).split('\\').join('/'),
      readFileSync(f, 'utf8'),
    ]),
  );
  for (const dir of readdirSync(join(ROOT, 'src'), { withFileTypes: true }))
    if (dir.isDirectory())
      assert.ok(rows.flat().includes(`src/${dir.name}`), `src/${dir.name} is not in the table`);
  assert.deepEqual(backEdges(rows, files), []);
});

test('the check finds an import that points up, one to a sibling, and one to a directory not in the table', () => {
  const rows = [['src/api', 'src/daemon'], ['src/nodes'], ['src/*.ts']];
  const files = new Map([
    ['src/nodes/a.ts', "import { x } from '../api/server.ts';"],
    ['src/daemon/b.ts', "import type { S } from '../api/stats.ts';\nexport { y } from './c.ts';"],
    ['src/log.ts', "const m = await import('./elsewhere/z.ts');"],
    ['src/api/ok.ts', "import { n } from '../nodes/a.ts';\nimport { l } from '../log.ts';"],
  ]);
  assert.deepEqual(backEdges(rows, files), [
    'src/nodes/a.ts -> src/api/server.ts (src/nodes -> src/api)',
    'src/daemon/b.ts -> src/api/stats.ts (src/daemon -> src/api)',
    'src/log.ts -> src/elsewhere/z.ts (not in the table)',
  ]);
});
