/** Starts real `pp-node` processes (the built CLI) on 127.0.0.1 for tests, and reads their JSON logs. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/pp-node.js', import.meta.url));

/**
 * The command line (after the script) of a node for one machine: on 127.0.0.1, a free port, no
 * mDNS announcement, `workers` workers. Tests and benchmarks add what they test.
 */
export function loopbackNodeArgs(workers = 1, port = 0): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--workers', String(workers), '--no-announce'];
}

export interface NodeProcess {
  child: ChildProcess;
  port: number;
  logs: Array<Record<string, unknown>>;
  /** stderr lines that are not JSON log entries (the SIGUSR1 stats table, crashes). */
  text: string[];
  /** Resolves with the first log line matching `pred` (already seen or future). */
  waitLog(pred: (l: Record<string, unknown>) => boolean, ms?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startNode(opts: {
  secret: string;
  port?: number;
  workers?: number;
  args?: string[];
  /** Start it in its own process group (POSIX), so a test can signal it and its workers together. */
  detached?: boolean;
  /** Extra environment of the node (and of its workers, which inherit it). */
  env?: Record<string, string>;
  /** Its working directory (default this process's). */
  cwd?: string;
  /** Default 'debug' (tests read debug logs); a benchmark wants 'info', so logs cost nothing. */
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** The Node.js binary to run it with (default: this one), e.g. another major version. */
  execPath?: string;
}): Promise<NodeProcess> {
  const child = spawn(
    opts.execPath ?? process.execPath,
    [
      BIN,
      ...loopbackNodeArgs(opts.workers ?? 2, opts.port ?? 0),
      '--log-format',
      'json',
      '--log-level',
      opts.logLevel ?? 'debug',
      ...(opts.args ?? []),
    ],
    {
      stdio: ['ignore', 'inherit', 'pipe'],
      env: { ...process.env, ...opts.env, PP_SECRET: opts.secret },
      detached: opts.detached ?? false,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    },
  );
  const logs: Array<Record<string, unknown>> = [];
  const waiters: Array<{
    pred: (l: Record<string, unknown>) => boolean;
    resolve: (l: Record<string, unknown>) => void;
  }> = [];
  const text: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line);
    } catch {
      text.push(line);
      return;
    }
    logs.push(entry);
    for (const w of [...waiters]) {
      if (w.pred(entry)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(entry);
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitLog = (pred: (l: Record<string, unknown>) => boolean, ms = 10_000) => {
    const seen = logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no matching node log within ${ms} ms; logs: ${JSON.stringify(logs)}`)),
        ms,
      );
      waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  };
  const ready = await Promise.race([
    waitLog((l) => l.msg === 'pp-node ready'),
    exited.then((code) => {
      throw new Error(`pp-node exited with ${code} before it was ready: ${JSON.stringify(logs)}`);
    }),
  ]).catch((error: unknown) => {
    child.kill('SIGKILL'); // never left running when it did not start
    throw error;
  });
  return {
    child,
    port: ready.port as number,
    logs,
    text,
    waitLog,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
