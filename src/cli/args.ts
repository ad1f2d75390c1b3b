/** Command-line parsing for `pp-node`: every mistake is a clear message and exit code 2. */
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MAX_CONNECTIONS } from '../daemon/admission.ts';
import { LOG_LEVELS, type LogLevel } from '../log.ts';
import { DEFAULT_CACHE_MAX_MB } from '../modules/store.ts';
import { parseAddress } from '../nodes/remote-node.ts';
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
  allowWeakSecret: boolean;
}

export interface LsConfig {
  command: 'ls';
  json: boolean;
  secretFile: string | undefined;
  timeoutS: number;
  interface: string | undefined;
  allowWeakSecret: boolean;
}

/** Where `top` and `doctor` look for nodes, and with which secret. */
export interface WatchConfig {
  json: boolean;
  secretFile: string | undefined;
  /** Seconds to browse before `--once` / `doctor` report. */
  timeoutS: number;
  interface: string | undefined;
  /** `--nodes host:port,...`: nodes to watch besides those mDNS finds. */
  nodes: Array<{ host: string; port: number }>;
  /** False with `--no-mdns`: only `--nodes`. */
  mdns: boolean;
  allowWeakSecret: boolean;
}

export interface TopConfig extends WatchConfig {
  command: 'top';
  /** One table (or JSON document), then exit; also when stdout is not a terminal (table only). */
  once: boolean;
}

export interface DoctorConfig extends WatchConfig {
  command: 'doctor';
}

export type CliCommand =
  | NodeConfig
  | LsConfig
  | TopConfig
  | DoctorConfig
  | { command: 'help' }
  | { command: 'version' }
  | { command: 'secret' };

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
  npx pp-node secret           print a new secret (256 random bits), e.g. for PP_SECRET or the secret file:
                                 (umask 077; npx pp-node secret > ~/.config/pp-node/secret)
  npx pp-node top [--once] [--json] [--nodes H:P,...] [--no-mdns]
                               live table of every node: CPUs, busy workers, queued jobs, clients,
                               jobs/s, failures, load, free memory, version, uptime (q or Ctrl-C quits;
                               piped or --once: one table; --json: one JSON document per second)
  npx pp-node doctor [--json] [--nodes H:P,...] [--no-mdns]
                               checks what discovery and the cluster need (interfaces, mDNS answers,
                               nodes and the secret, versions, secret file, /dev/shm, ports, clocks)
                               and says what to do for each problem; exit 0 when all is well, else 1

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
  --allow-weak-secret run with a weak secret (under 16 bytes or an estimated 80 bits), which is
                      refused otherwise: a rogue node could guess it offline (also for 'ls').
  --cache-dir DIR     where modules sent by clients are kept (default ~/.cache/pp-node; made mode 0700).
  --cache-max-mb N    cap on that cache (default ${DEFAULT_CACHE_MAX_MB}); the least recently used go first.
  --log-level L       error | warn | info | debug (default info). Logs go to stderr.
                        npx pp-node --log-level debug
  --log-format json   one JSON object per log line, for log collectors.
  --no-announce       do not announce this node on the LAN (clients then need ppservers: ['host:port']).
  --interface IF      announce on this network interface or address only (Wi-Fi + Ethernet, VPNs).
                        npx pp-node --interface 192.168.1.20
  -h, --help          this help.   -v, --version   print the version.

Options of ls, top and doctor:
  --secret-file F     the secret to prove (default: $PP_SECRET, else ~/.config/pp-node/secret).
  --interface IF      browse (mDNS) on this interface or address only.
  --timeout S         seconds to browse before reporting (ls, top --once, doctor; default 3).
  --json              machine-readable output.
  --nodes H:P,...     top, doctor: these nodes too (host, host:port or [ipv6]:port; port 60000).
                        npx pp-node top --nodes 192.168.1.20,desk-42:61000
  --no-mdns           top, doctor: no mDNS at all, only --nodes.
  --once              top: one table (or JSON document), then exit.

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

/** `--nodes a,b:61000,[fe80::1]:60000` → addresses (default port 60000). */
function parseNodes(raw: string | undefined): Array<{ host: string; port: number }> {
  if (raw === undefined) return [];
  const out: Array<{ host: string; port: number }> = [];
  for (const spec of raw.split(',')) {
    if (!spec.trim()) continue;
    try {
      out.push(parseAddress(spec, DEFAULT_PORT));
    } catch (error) {
      throw new UsageError(`--nodes: ${(error as Error).message}`);
    }
  }
  if (out.length === 0) throw new UsageError('--nodes needs host:port,... (port 60000 when left out)');
  return out;
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
        'allow-weak-secret': { type: 'boolean' },
        interface: { type: 'string' },
        json: { type: 'boolean' },
        timeout: { type: 'string' },
        nodes: { type: 'string' },
        'no-mdns': { type: 'boolean' },
        once: { type: 'boolean' },
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
  if (sub === 'secret') {
    for (const k of Object.keys(v))
      if (v[k] !== undefined) throw new UsageError(`--${k} is not an option of 'secret'`);
    return { command: 'secret' };
  }
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
    for (const k of ['nodes', 'no-mdns', 'once'])
      if (v[k] !== undefined) throw new UsageError(`--${k} is not an option of 'ls' (see 'top')`);
    return {
      command: 'ls',
      json: Boolean(v.json),
      secretFile: str('secret-file'),
      timeoutS: wholeNumber('timeout', str('timeout'), 1, 60, 3),
      interface: str('interface'),
      allowWeakSecret: Boolean(v['allow-weak-secret']),
    };
  }
  if (sub === 'top' || sub === 'doctor') {
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
      if (v[k] !== undefined) throw new UsageError(`--${k} is an option of the node, not of '${sub}'`);
    }
    if (sub === 'doctor' && v.once !== undefined) throw new UsageError(`--once is an option of 'top'`);
    const nodes = parseNodes(str('nodes'));
    if (v['no-mdns'] && nodes.length === 0)
      throw new UsageError(
        `--no-mdns needs --nodes host:port,... (else there is nothing to ${sub === 'top' ? 'watch' : 'check'})`,
      );
    const watch: WatchConfig = {
      json: Boolean(v.json),
      secretFile: str('secret-file'),
      timeoutS: wholeNumber('timeout', str('timeout'), 1, 60, 3),
      interface: str('interface'),
      nodes,
      mdns: !v['no-mdns'],
      allowWeakSecret: Boolean(v['allow-weak-secret']),
    };
    return sub === 'top'
      ? { command: 'top', once: Boolean(v.once), ...watch }
      : { command: 'doctor', ...watch };
  }
  for (const k of ['nodes', 'no-mdns', 'once']) {
    if (v[k] !== undefined)
      throw new UsageError(`--${k} is an option of 'top'${k === 'once' ? '' : " and 'doctor'"}`);
  }
  if (sub !== undefined) throw new UsageError(`unknown command '${sub}' (commands: ls, top, doctor, secret)`);
  if (v.json !== undefined) throw new UsageError(`--json is an option of 'ls', 'top' and 'doctor'`);
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
    allowWeakSecret: Boolean(v['allow-weak-secret']),
  };
}
