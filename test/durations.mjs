// A reporter for node --test (test/run.mjs --durations): each test file's time, from its
// start to its process's end (an open handle that keeps a file running after its last test
// counts too), slowest first, and their sum. Plain .mjs: node --test loads it before tsx.
import { basename, resolve } from 'node:path';

/** @param {AsyncIterable<{ type: string, data: any }>} source */
export default async function* durations(source) {
  /** @type {Array<[string, number]>} */
  const files = [];
  for await (const { type, data } of source) {
    // The file's own test: nesting 0, named after the file (its path, as given or absolute).
    if (type !== 'test:complete' || data.nesting !== 0 || !data.file) continue;
    if (resolve(data.name) !== resolve(data.file)) continue;
    files.push([basename(data.file), data.details.duration_ms / 1000]);
  }
  files.sort((a, b) => b[1] - a[1]);
  const total = files.reduce((s, [, t]) => s + t, 0);
  yield `# time per test file (${process.version}), slowest first; ${files.length} files, ${total.toFixed(1)} s in all\n`;
  for (const [file, t] of files) yield `# ${t.toFixed(1).padStart(6)} s  ${file}\n`;
}
