/** `pp-node` command line: start a node, list the nodes on the LAN, watch them (top), check them (doctor). */

import { Daemon } from '../daemon/daemon.ts';
import { machineId } from '../daemon/identity.ts';
import { createLogger } from '../log.ts';
import { listenHint, statsSignal, stopGraceMs, stopSignals } from '../platform.ts';
import { PROTOCOL_VERSION } from '../protocol/handshake.ts';
import { resolveSecret } from '../secret.ts';
import { checkSecretStrength, generateSecret } from '../secret-strength.ts';
import { VERSION } from '../version.ts';
import { HELP, type NodeConfig, parseCli, UsageError } from './args.ts';

export async function main(argv: readonly string[]): Promise<number> {
  let cmd: ReturnType<typeof parseCli>;
  try {
    cmd = parseCli(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`pp-node: ${error.message}\nTry 'npx pp-node --help'.\n`);
    return 2;
  }
  switch (cmd.command) {
    case 'help':
      process.stdout.write(`${HELP}\n`);
      return 0;
    case 'version':
      process.stdout.write(`${VERSION}\n`);
      return 0;
    case 'secret':
      process.stdout.write(`${generateSecret()}\n`);
      return 0;
    case 'ls': {
      const { listNodes } = await import('./ls.ts');
      return listNodes(cmd);
    }
    case 'top': {
      const { top } = await import('./top.ts');
      return top(cmd);
    }
    case 'doctor': {
      const { doctor } = await import('./doctor.ts');
      return doctor(cmd);
    }
    case 'serve':
      return serve(cmd);
  }
}

async function serve(cfg: NodeConfig): Promise<number> {
  const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat });
  let resolved: ReturnType<typeof resolveSecret>;
  try {
    resolved = resolveSecret({ secretFile: cfg.secretFile, create: true });
  } catch (error) {
    log.error((error as Error).message);
    return 1;
  }
  if (resolved.created) {
    log.info(
      `created a new secret in ${resolved.source}: copy this file (mode 0600) to every machine of the cluster, ` +
        'or set PP_SECRET to its content there, so that clients and nodes share it',
    );
  }
  let weak: string | null;
  try {
    weak = checkSecretStrength(resolved.secret, {
      allowWeak: cfg.allowWeakSecret,
      source: resolved.source,
      allowHow: 'start the node with --allow-weak-secret',
    });
  } catch (error) {
    log.error((error as Error).message);
    return 1;
  }
  if (weak) log.warn(weak);

  let stopRequested: (() => void) | null = null;
  const id = machineId();
  const node = new Daemon({
    port: cfg.port,
    host: cfg.bind,
    workers: cfg.workers,
    niceness: cfg.nice,
    secret: resolved.secret,
    name: cfg.name,
    id,
    logger: log,
    idleTimeoutS: cfg.idleTimeoutS,
    maxConnections: cfg.maxConnections,
    ...(cfg.cacheDir ? { cacheDir: cfg.cacheDir } : {}),
    cacheMaxMb: cfg.cacheMaxMb,
    onIdle: () => stopRequested?.(),
  });
  let port: number;
  try {
    port = await node.listen();
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const hint = listenHint(e.code);
    log.error(`cannot listen on ${cfg.bind ?? '*'}:${cfg.port}: ${e.message}${hint}`);
    await node.close(0);
    return 1;
  }
  log.info('pp-node ready', {
    name: cfg.name,
    port,
    workers: cfg.workers,
    version: VERSION,
    secret: resolved.source,
    id,
  });

  let announcer: { stop(): Promise<void> } | null = null;
  if (cfg.announce) {
    const { announce } = await import('../discovery/index.ts');
    let reported = false;
    const a = announce(
      { name: cfg.name, port, id, ncpus: cfg.workers, version: VERSION, protocol: PROTOCOL_VERSION },
      {
        interface: cfg.interface,
        onError: (error) => {
          // Network trouble never stops the node: clients can still use ppservers.
          log[reported ? 'debug' : 'warn']('LAN announcement trouble (still trying)', { error });
          reported = true;
        },
      },
    );
    announcer = a;
    log.info('announced on the LAN', { instance: a.instanceName, interface: cfg.interface ?? 'default' });
  }

  // SIGUSR1, or Ctrl+Break (SIGBREAK) on Windows, which has no SIGUSR1 (platform.ts).
  process.on(statsSignal(), () => process.stderr.write(`${node.statsTable()}\n`));
  // Ctrl+C, SIGTERM, or the terminal (console window) closing: running jobs finish. The
  // workers ignore these signals (worker/ignore-signals.ts), so this alone decides; the same
  // signal again exits at once, and busy workers are killed on the way out (nodes/worker-handle.ts).
  let graceMs: number | undefined;
  await new Promise<void>((resolve) => {
    stopRequested = resolve;
    const signals = stopSignals();
    const onSignal = (sig: NodeJS.Signals) => {
      for (const s of signals) process.off(s, onSignal);
      log.info(
        `${sig}: stopping (queued jobs go back to clients, running ones finish; again to stop at once)`,
      );
      for (const s of signals) process.once(s, () => process.exit(130));
      graceMs = stopGraceMs(sig);
      resolve();
    };
    for (const s of signals) process.on(s, onSignal);
  });
  await announcer?.stop().catch(() => {});
  await node.close(graceMs);
  log.info('stopped');
  return 0;
}
