/** Command-line parsing for `pp-node`: every mistake is a clear message and exit code 2. */
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MAX_CONNECTIONS } from '../daemon/admission.ts';
import { LOG_LEVELS, type LogLevel } from '../log.ts';
import { DEFAULT_CACHE_MAX_MB } from '../modules/store.ts';
import { statsSignalHint } from '../platform.ts';

export interface NodeConfig {
  command: 'serve';
  port: number;
  bind: string | undefined;
  workers: number;
  secretFile: string | undefined;
  name: string;
  idleTimeoutS: number;
  maxConnections: number;
  /** Module cache folder (undefined: ~/.cache/pp-node) and cap in MiB. */
  cacheDir: string | undefined;
  cacheMaxMb: number;
  logLevel: LogLevel;
  logFormat: 'text' | 'json';
  announce: boolean;
  interface: string | undefined;
}

export interface LsConfig {
  command: 'ls';
  json: boolean;
  secretFile: string | undefined;
  timeoutS: number;
  interface: string | undefined;
}

export type CliCommand = NodeConfig | LsConfig | { command: 'help' } | { command: 'version' };

export class UsageError extends Error {
  override name = 'UsageError';
}

export const DEFAULT_PORT = 60000;

/** What the signals do on `platform` (Windows has no SIGUSR1 and no SIGTERM; see platform.ts). */
export function signalsHelp(platform: NodeJS.Platform = process.platform): string {
  const stop =
    platform === 'win32'
      ? 'Ctrl+C or closing the console window stop cleanly'
      : 'Ctrl+C (SIGINT), SIGTERM or SIGHUP (the terminal closing) stop cleanly';
  return `Signals: ${stop} (queued jobs go back to their clients, running ones finish;
the same again stops at once); ${statsSignalHint(platform)} prints the job statistics table.`;
}

export const HELP = `pp-node — run jobs from pp-node clients on this machine's CPUs

Usage:
  npx pp-node [options]        start a node
  npx pp-node ls [--json]      list the nodes on the LAN (mDNS) and whether they accept this secret

Options:
  --port N            TCP port to listen on (default ${DEFAULT_PORT}).
                        npx pp-node --port 61000
  --bind ADDR         listen only on this address (default: all interfaces).
                        npx pp-node --bind 192.168.1.20
  --workers N         worker processes, i.e. CPUs lent to clients (default: all, here ${availableParallelism()}).
                        npx pp-node --workers 2
  --secret-file F     file holding the cluster's shared secret (default: $PP_SECRET, else
                      ~/.config/pp-node/secret, created with 256 random bits on first run).
                        npx pp-node --secret-file /etc/pp-node/secret
  --name NAME         name shown to clients and on the LAN (default: the hostname, here ${hostname()}).
                        npx pp-node --name desk-42
  --idle-timeout S    exit after S seconds without any client (default 0: never).
                        npx pp-node --idle-timeout 3600
  --max-connections N TCP connections at once, clients included (default ${MAX_CONNECTIONS}); more are dropped.
  --cache-dir DIR     where modules sent by clients are kept (default ~/.cache/pp-node; made mode 0700).
  --cache-max-mb N    cap on that cache (default ${DEFAULT_CACHE_MAX_MB}); the least recently used go first.
  --log-level L       error | warn | info | debug (default info). Logs go to stderr.
                        npx pp-node --log-level debug
  --log-format json   one JSON object per log line, for log collectors.
  --no-announce       do not announce this node on the LAN (clients then need ppservers: ['host:port']).
  --interface IF      announce on this network interface or address only (Wi-Fi + Ethernet, VPNs).
                        npx pp-node --interface 192.168.1.20
  -h, --help          this help.   -v, --version   print the version.

Every client must know the secret: copy ~/.config/pp-node/secret to each machine of the
cluster (mode 0600), or set PP_SECRET to the same value everywhere. A client then uses
this node with:
  new Server({ ppservers: ['this-host:${DEFAULT_PORT}'] })   or   new Server({ autodiscover: true })

${signalsHelp()}`;

function wholeNumber(
  name: string,
  raw: string | undefined,
  min: number,
  max: number,
  fallback: number,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, got '${raw}'`);
  }
  return n;
}

export function parseCli(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliCommand {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      strict: true,
      options: {
        port: { type: 'string' },
        bind: { type: 'string' },
        workers: { type: 'string' },
        'secret-file': { type: 'string' },
        name: { type: 'string' },
        'idle-timeout': { type: 'string' },
        'max-connections': { type: 'string' },
        'cache-dir': { type: 'string' },
        'cache-max-mb': { type: 'string' },
        'log-level': { type: 'string' },
        'log-format': { type: 'string' },
        'no-announce': { type: 'boolean' },
        interface: { type: 'string' },
        json: { type: 'boolean' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/\. To specify a positional.*$/s, ''));
  }
  const v = parsed.values as Record<string, string | boolean | undefined>;
  if (v.help) return { command: 'help' };
  if (v.version) return { command: 'version' };
  const [sub, ...rest] = parsed.positionals;
  if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
  const str = (k: string) => v[k] as string | undefined;
  if (sub === 'ls') {
    for (const k of [
      'port',
      'bind',
      'workers',
      'name',
      'idle-timeout',
      'max-connections',
      'cache-dir',
      'cache-max-mb',
      'no-announce',
    ]) {
      if (v[k] !== undefined) throw new UsageError(`--${k} is an option of the node, not of 'ls'`);
    }
    return {
      command: 'ls',
      json: Boolean(v.json),
      secretFile: str('secret-file'),
      timeoutS: wholeNumber('timeout', str('timeout'), 1, 60, 3),
      interface: str('interface'),
    };
  }
  if (sub !== undefined) throw new UsageError(`unknown command '${sub}' (commands: ls)`);
  if (v.json !== undefined) throw new UsageError(`--json is an option of 'ls'`);
  const level = (str('log-level') ?? env.PP_LOG_LEVEL ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got '${level}'`);
  }
  const format = str('log-format') ?? 'text';
  if (format !== 'text' && format !== 'json')
    throw new UsageError(`--log-format must be text or json, got '${format}'`);
  const name = str('name') ?? hostname();
  if (!name.trim() || name.length > 63) throw new UsageError('--name must be 1 to 63 characters');
  return {
    command: 'serve',
    port: wholeNumber('port', str('port'), 0, 65535, DEFAULT_PORT),
    bind: str('bind'),
    workers: wholeNumber('workers', str('workers'), 1, 4096, availableParallelism()),
    secretFile: str('secret-file'),
    name,
    idleTimeoutS: wholeNumber('idle-timeout', str('idle-timeout'), 0, 10 ** 7, 0),
    maxConnections: wholeNumber('max-connections', str('max-connections'), 1, 10 ** 6, MAX_CONNECTIONS),
    cacheDir: str('cache-dir') ? resolve(str('cache-dir')!) : undefined,
    cacheMaxMb: wholeNumber('cache-max-mb', str('cache-max-mb'), 1, 10 ** 7, DEFAULT_CACHE_MAX_MB),
    logLevel: level,
    logFormat: format,
    announce: !v['no-announce'],
    interface: str('interface'),
  };
}
