// The systems the benchmark compares. Each one is a pool of `n` workers behind the same small
// interface, so later rows (e.g. "pp-node remote") only have to add an entry here.

import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { loopbackNodeArgs } from '../test/helpers/nodes.ts';
import { inc, isprime, md5test, sum_primes, sumArray } from './tasks.ts';

export type TaskName = 'inc' | 'sum_primes' | 'md5test' | 'sumArray';

/** Runs one task on the system; resolves to the task's result. */
export type Call = (task: TaskName, args: unknown[]) => PromiseLike<unknown>;

export interface Workload {
  id: string;
  title: string;
  unit: string;
  /** Runs the whole workload through `call` and returns the elapsed milliseconds (checked results). */
  execute(call: Call): Promise<number>;
}

export interface System {
  label: string;
  /** Starts a pool of n workers; throws if this system cannot run here (the row then shows n/a). */
  start(n: number): Promise<void>;
  /** Resolves once every worker has started and can take a job at once (used by W1 cold). */
  ready?(): Promise<void>;
  /** Runs a workload; returns elapsed milliseconds. */
  run(workload: Workload): Promise<number>;
  stop(): Promise<void>;
}

const peerFile = (name: string): string => fileURLToPath(new URL(`./peers/${name}`, import.meta.url));

// ---- pp-node ------------------------------------------------------------------------------------

type PpServer = import('pp-node').Server;

/** pp-node's local job server, with the jobs written as a pp-node user writes them. */
export function ppNode(
  label: string,
  extra: Record<string, unknown> = {},
): System & { startWith(opts: Record<string, unknown>): Promise<void> } {
  let server: PpServer | undefined;
  const call: Call = (task, args) => {
    const s = server!;
    switch (task) {
      case 'inc':
        return s.submit(inc, args as [number]);
      case 'sum_primes':
        return s.submit(sum_primes, args as [number], { deps: [isprime] });
      case 'md5test':
        return s.submit(md5test, args as [string, number, number], { modules: ['node:crypto'] });
      case 'sumArray':
        return s.submit(sumArray, args as [Float64Array]);
    }
  };
  return {
    label,
    async start(n) {
      const { Server } = await import('pp-node');
      server = new Server({ ncpus: n, ppservers: [], ...extra } as ConstructorParameters<typeof Server>[0]);
    },
    /** A server with these options, used once it has CPUs (remote nodes connect first). */
    async startWith(opts) {
      const { Server } = await import('pp-node');
      const s = new Server(opts as ConstructorParameters<typeof Server>[0]);
      server = s;
      const until = Date.now() + 10_000;
      while (s.getActiveNodes().length === 0) {
        if (Date.now() > until) throw new Error('the remote node did not connect');
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    ready: () => server!.ready(),
    run: (workload) => workload.execute(call),
    async stop() {
      const s = server;
      server = undefined;
      await s?.close();
    },
  };
}

/**
 * pp-node through a remote node: a `pp-node` process on 127.0.0.1 with n workers, and a
 * client Server with `ncpus: 0`, so every job crosses the encrypted WebSocket.
 */
export function ppNodeRemote(label: string): System {
  const inner = ppNode(label);
  let node: import('node:child_process').ChildProcess | undefined;
  let port = 0;
  const secret = randomBytes(32).toString('hex');
  return {
    label,
    async start(n) {
      const { spawn } = await import('node:child_process');
      const bin = fileURLToPath(new URL('../bin/pp-node.js', import.meta.url));
      const child = spawn(process.execPath, [bin, ...loopbackNodeArgs(n), '--log-format', 'json'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, PP_SECRET: secret },
      });
      node = child;
      port = await new Promise<number>((resolve, reject) => {
        let buf = '';
        child.stderr!.on('data', (d: Buffer) => {
          buf += d.toString();
          const m = /"msg":"pp-node ready".*?"port":(\d+)/.exec(buf);
          if (m) resolve(Number(m[1]));
        });
        child.once('exit', (code) => reject(new Error(`pp-node exited (${code}): ${buf}`)));
      });
      await inner.startWith({ ncpus: 0, ppservers: [`127.0.0.1:${port}`], secret });
    },
    run: (workload) => inner.run(workload),
    async stop() {
      await inner.stop();
      node?.kill('SIGTERM');
      node = undefined;
    },
  };
}

// ---- piscina ------------------------------------------------------------------------------------

type PiscinaPool = import('piscina').Piscina;
/** The key of the message a piscina thread posts once it is ready (piscina's common.js READY). */
const PISCINA_READY = '_WORKER_READY';

/** Piscina with a plain .mjs worker (bench/peers/piscina-worker.mjs). */
export function piscina(label: string, extra: Record<string, unknown> = {}): System {
  let pool: PiscinaPool | undefined;
  let started: Promise<void> | undefined;
  const call: Call = (task, args) => pool!.run(args.length === 1 ? args[0] : args, { name: task });
  return {
    label,
    async start(n) {
      const { Piscina } = await import('piscina');
      const p = new Piscina({
        filename: peerFile('piscina-worker.mjs'),
        minThreads: n,
        maxThreads: n,
        ...extra,
      });
      pool = p;
      // Each thread posts this once it has loaded the task module (piscina's worker.js).
      started = Promise.all(
        p.threads.map(
          (t) =>
            new Promise<void>((resolve) => {
              const onMessage = (m: unknown) => {
                if (m && typeof m === 'object' && PISCINA_READY in m) {
                  t.off('message', onMessage);
                  resolve();
                }
              };
              t.on('message', onMessage);
            }),
        ),
      ).then(() => {});
    },
    ready: () => started!,
    run: (workload) => workload.execute(call),
    async stop() {
      const p = pool;
      pool = undefined;
      await p?.destroy();
    },
  };
}

// ---- workerpool ---------------------------------------------------------------------------------

type WorkerPool = import('workerpool').Pool;

/** workerpool with a worker script that registers the tasks (bench/peers/workerpool-worker.mjs). */
export function workerpool(label: string): System {
  let pool: WorkerPool | undefined;
  const call: Call = (task, args) => pool!.exec(task, args);
  return {
    label,
    async start(n) {
      const wp = await import('workerpool');
      pool = wp.pool(peerFile('workerpool-worker.mjs'), {
        minWorkers: n,
        maxWorkers: n,
        workerType: 'thread',
      });
    },
    run: (workload) => workload.execute(call),
    async stop() {
      const p = pool;
      pool = undefined;
      await p?.terminate();
    },
  };
}
