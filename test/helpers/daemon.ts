/**
 * The options of a Daemon run inside a test process: on 127.0.0.1 (a free port, no discovery),
 * one worker, quiet logs, the given secret; `more` adds or overrides (name, id, cacheDir...).
 * The tests construct the Daemon themselves: some need the built one (dist/), whose workers
 * run dist/, others the source.
 */
import type { DaemonOptions } from '../../src/daemon/daemon.ts';
import { createLogger } from '../../src/log.ts';
import { resolveSecret } from '../../src/secret.ts';

export function loopbackDaemon<M extends Partial<DaemonOptions> & Pick<DaemonOptions, 'name' | 'id'>>(
  secret: string,
  more: M,
): Pick<DaemonOptions, 'port' | 'host' | 'workers' | 'secret' | 'logger'> & M {
  return {
    port: 0,
    host: '127.0.0.1',
    workers: 1,
    secret: resolveSecret({ secret }).secret,
    logger: createLogger({ level: 'error' }),
    ...more,
  };
}
