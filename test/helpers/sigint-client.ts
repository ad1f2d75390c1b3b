/**
 * A user's script for test/signals.test.ts: a Server with worker processes runs one slow job.
 * Started in its own process group, so the test's SIGINT reaches it and its workers together,
 * as Ctrl+C does. argv: the file the job creates once it runs (holding the worker's pid), and
 * the mode: 'wait' (the script's SIGINT handler waits for the job and prints its outcome) or
 * 'default' (no handler: Node's default ends the script; the job would run for a minute).
 */
import * as fs from 'node:fs';
import { Server } from '../../src/index.ts';

function slowSquare(x: number, startedFlag: string, ms: number): number {
  fs.writeFileSync(startedFlag, String(process.pid));
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  return x * x;
}

const [flag, mode] = process.argv.slice(2) as [string, 'wait' | 'default'];
const server = new Server({ ncpus: 1, isolation: 'process' });
const job = server.submit(slowSquare, [7, flag, mode === 'wait' ? 1500 : 60_000], { modules: ['node:fs'] });
if (mode === 'wait') {
  process.once('SIGINT', async () => {
    let outcome: string;
    try {
      await server.wait();
      outcome = `result ${await job.result()}`;
    } catch (error) {
      outcome = `failed ${(error as Error).name}: ${(error as Error).message}`;
    }
    process.stdout.write(`${outcome}\n`);
    await server.close();
  });
} else {
  job.catch(() => {});
}
