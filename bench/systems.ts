// The systems the benchmark compares. Each one is a pool of `n` workers behind the same small
// interface, so later rows (e.g. "pp-node remote") only have to add an entry here.

import { fileURLToPath } from 'node:url';
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
  /** Runs a workload; returns elapsed milliseconds. */
  run(workload: Workload): Promise<number>;
  stop(): Promise<void>;
}

const peerFile = (name: string): string => fileURLToPath(new URL(`./peers/${name}`, import.meta.url));

// ---- pp-node ------------------------------------------------------------------------------------

type PpServer = import('pp-node').Server;

/** pp-node's local job server, with the jobs written as a pp-node user writes them. */
export function ppNode(label: string, extra: Record<string, unknown> = {}): System {
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
    run: (workload) => workload.execute(call),
    async stop() {
      const s = server;
      server = undefined;
      await s?.close();
    },
  };
}

// ---- piscina ------------------------------------------------------------------------------------

type PiscinaPool = import('piscina').Piscina;

/** Piscina with a plain .mjs worker (bench/peers/piscina-worker.mjs). */
export function piscina(label: string, extra: Record<string, unknown> = {}): System {
  let pool: PiscinaPool | undefined;
  const call: Call = (task, args) => pool!.run(args.length === 1 ? args[0] : args, { name: task });
  return {
    label,
    async start(n) {
      const { Piscina } = await import('piscina');
      pool = new Piscina({
        filename: peerFile('piscina-worker.mjs'),
        minThreads: n,
        maxThreads: n,
        ...extra,
      });
    },
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
