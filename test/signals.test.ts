/**
 * Ctrl+C reaches the whole foreground process group: the client or node and its workers alike.
 * The parent alone decides what happens; a running job finishes (issue 18, item 3).
 * POSIX only: process groups and kill(-pgid) do not exist on Windows.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Server } from '../src/index.ts';
import { type NodeProcess, startNode } from './helpers/nodes.ts';

const skip = process.platform === 'win32' ? 'process groups are POSIX' : false;
const dir = mkdtempSync(join(tmpdir(), 'pp-node-signals-'));
const leftovers: NodeProcess[] = [];
after(() => {
  rmSync(dir, { recursive: true, force: true });
  for (const n of leftovers)
    if (n.child.exitCode === null && n.child.signalCode === null) process.kill(-n.child.pid!, 'SIGKILL');
});
let flags = 0;
const newFlag = () => join(dir, `started-${flags++}`);

const waitFor = async (cond: () => boolean, ms: number, what: string) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** Runs for `ms` once it has said (by creating `startedFlag`) that it runs. */
function slowSquare(x: number, startedFlag: string, ms: number): number {
  fs.writeFileSync(startedFlag, String(process.pid));
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  return x * x;
}

/**
 * A node in its own process group (as a shell's foreground job), a client of it, and a job
 * of `ms` that has started there (it says so by `flag`).
 */
async function nodeRunningJob(ms: number) {
  const SECRET = 'signals-secret-0123456789abcdef0123456789';
  const node = await startNode({ secret: SECRET, workers: 1, detached: true });
  leftovers.push(node); // killed at the end even if what follows fails
  const server = new Server({ ncpus: 0, ppservers: [`127.0.0.1:${node.port}`], secret: SECRET });
  await waitFor(() => server.getActiveNodes().length === 1, 15_000, 'the node');
  const flag = newFlag();
  const job = server.submit(slowSquare, [9, flag, ms], { modules: ['node:fs'] });
  job.catch(() => {}); // the tests assert on it, or not
  await waitFor(() => workerOf(flag) !== undefined, 20_000, 'the job to start');
  return { node, server, flag, job };
}

/** Runs test/helpers/sigint-client.ts in its own process group, like a shell's foreground job. */
function startClient(mode: 'wait' | 'default') {
  const script = fileURLToPath(new URL('./helpers/sigint-client.ts', import.meta.url));
  const flag = newFlag();
  const child = spawn(process.execPath, ['--import', 'tsx', script, flag, mode], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    const worker = workerOf(flag);
    if (worker !== undefined && alive(worker)) process.kill(worker, 'SIGKILL');
  };
  return { child, flag, exited, kill, out: () => out, err: () => err };
}

/**
 * The worker pid a job wrote into its flag file, once written: the file exists a moment
 * before its content (an empty file read as pid 0 would make `alive` and `kill` act on this
 * process group).
 */
function workerOf(flag: string): number | undefined {
  try {
    const pid = Number(readFileSync(flag, 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  if (!(pid > 0)) throw new Error(`not a worker pid: ${pid}`);
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`within ${ms} ms: ${what()}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

describe('Ctrl+C (SIGINT to the process group)', { skip }, () => {
  test('a client whose SIGINT handler waits gets the running job’s result, not a crashed worker', async () => {
    const c = startClient('wait');
    try {
      await waitFor(() => workerOf(c.flag) !== undefined, 20_000, 'the job to start');
      process.kill(-c.child.pid!, 'SIGINT');
      const code = await within(c.exited, 15_000, () => `no exit; stdout: ${c.out()}; stderr: ${c.err()}`);
      assert.equal(c.out().trim(), 'result 49', `stderr: ${c.err()}`);
      assert.equal(code, 0);
    } finally {
      c.kill();
    }
  });

  test('a client without a SIGINT handler ends by it and takes its busy worker along', async () => {
    const c = startClient('default');
    try {
      await waitFor(() => workerOf(c.flag) !== undefined, 20_000, 'the job to start');
      const worker = workerOf(c.flag)!;
      process.kill(-c.child.pid!, 'SIGINT');
      await within(c.exited, 15_000, () => `no exit; stderr: ${c.err()}`);
      assert.equal(c.child.signalCode, 'SIGINT', 'Node’s default: the script ends by the signal');
      // Not an orphan running its minute-long job on.
      await waitFor(() => !alive(worker), 5_000, `worker ${worker} to end`);
    } finally {
      c.kill();
    }
  });

  test('a node (npx pp-node) finishes the running job and its result reaches the client', async () => {
    let node: NodeProcess | undefined;
    let server: Server | undefined;
    try {
      const started = await nodeRunningJob(1500);
      ({ node, server } = started);
      const { job } = started;
      process.kill(-node.child.pid!, 'SIGINT');
      assert.equal(await job, 81);
      assert.equal(await node.exited, 0, JSON.stringify(node.logs));
      assert.ok(!node.text.some((l) => /SIGINT|crash/i.test(l)), node.text.join('\n'));
    } finally {
      await server?.close();
      if (node && node.child.exitCode === null && node.child.signalCode === null)
        process.kill(-node.child.pid!, 'SIGKILL');
    }
  });

  test('a node stopped by a second SIGINT exits at once and kills its busy worker', async () => {
    let node: NodeProcess | undefined;
    let server: Server | undefined;
    let worker = 0;
    try {
      const started = await nodeRunningJob(60_000);
      ({ node, server } = started);
      const { flag } = started;
      worker = workerOf(flag)!;
      const n = node;
      process.kill(-n.child.pid!, 'SIGINT');
      await n.waitLog((l) => typeof l.msg === 'string' && l.msg.startsWith('SIGINT: stopping'));
      process.kill(-n.child.pid!, 'SIGINT');
      assert.equal(await within(n.exited, 5_000, () => 'the node did not exit'), 130);
      await waitFor(() => !alive(worker), 5_000, `worker ${worker} to end`);
    } finally {
      await server?.close();
      if (node && node.child.exitCode === null && node.child.signalCode === null)
        process.kill(-node.child.pid!, 'SIGKILL');
      if (worker && alive(worker)) process.kill(worker, 'SIGKILL');
    }
  });
});
