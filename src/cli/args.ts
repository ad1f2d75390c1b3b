/** Command-line parsing for `pp-node`: every mistake is a clear message and exit code 2. */
import { availableParallelism, hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { MAX_CONNECTIONS } from '../daemon/admission.ts';
import { DEFAULT_NICE } from '../daemon/daemon.ts';
import { LOG_LEVELS, type LogLevel } from '../log.ts';
import { DEFAULT_CACHE_MAX_MB } from '../modules/store.ts';
import { statsSignalHint } from '../platform.ts';
import { parseAddress } from '../protocol/dial.ts';

export interface NodeConfig {
  command: 'serve';
  port: number;
  bind: string | undefined;
  workers: number;
  /** Scheduling priority (nice value, 0-19) of the worker processes. */
  nice: number;
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

/** What `npx pp-node [command]` runs: 'node' is the daemon itself (no command). */
export type Command = 'node' | 'ls' | 'top' | 'doctor';
const ALL: readonly Command[] = ['node', 'ls', 'top', 'doctor'];
const WATCH: readonly Command[] = ['ls', 'top', 'doctor'];

/** "an option of the node" / "an option of 'top' and 'doctor'", for usage errors. */
function optionOf(name: string): string {
  const of = OPTIONS[name]?.of ?? [];
  const names = of.map((c) => (c === 'node' ? 'the node' : `'${c}'`));
  return `an option of ${names.length > 1 ? `${names.slice(0, -1).join(', ')} and ${names.at(-1)}` : names[0]}`;
}

/** One command-line option: how parseArgs reads it and how `--help` teaches it. */
export interface CliOption {
  type: 'string' | 'boolean';
  short?: string;
  /** The placeholder of its value in the help (N, ADDR, ...). */
  value?: string;
  /** The commands that take it ('node': `npx pp-node` itself). */
  of: readonly Command[];
  help: string;
  /** A command line that uses it. */
  example?: string;
}

/**
 * Every option, in the order `--help` lists them: parseArgs reads this table and the help's
 * option list is made from it, so the two cannot drift apart.
 */
export const OPTIONS: Readonly<Record<string, CliOption>> = {
  port: {
    type: 'string',
    value: 'N',
    of: ['node'],
    help: `TCP port to listen on (default ${DEFAULT_PORT}).`,
    example: 'npx pp-node --port 61000',
  },
  bind: {
    type: 'string',
    value: 'ADDR',
    of: ['node'],
    help: 'listen only on this address (default: all interfaces).',
    example: 'npx pp-node --bind 192.168.1.20',
  },
  workers: {
    type: 'string',
    value: 'N',
    of: ['node'],
    help: `worker processes, i.e. CPUs lent to clients (default: all, here ${availableParallelism()}).`,
    example: 'npx pp-node --workers 2',
  },
  nice: {
    type: 'string',
    value: 'N',
    of: ['node'],
    help: `priority of the workers, 0 to 19 (default ${DEFAULT_NICE}: the machine's own programs come
first, and its owner hardly notices the jobs; 0 on a machine kept for jobs).`,
    example: 'npx pp-node --nice 0',
  },
  'secret-file': {
    type: 'string',
    value: 'F',
    of: ALL,
    help: `file holding the cluster's shared secret (default: $PP_SECRET, else
~/.config/pp-node/secret, created with 256 random bits on first run).`,
    example: 'npx pp-node --secret-file /etc/pp-node/secret',
  },
  name: {
    type: 'string',
    value: 'NAME',
    of: ['node'],
    help: `name shown to clients and on the LAN (default: the hostname, here ${hostname()}).`,
    example: 'npx pp-node --name desk-42',
  },
  'idle-timeout': {
    type: 'string',
    value: 'S',
    of: ['node'],
    help: 'exit after S seconds without any client (default 0: never).',
    example: 'npx pp-node --idle-timeout 3600',
  },
  'max-connections': {
    type: 'string',
    value: 'N',
    of: ['node'],
    help: `TCP connections at once, clients included (default ${MAX_CONNECTIONS}); more are dropped.`,
    example: 'npx pp-node --max-connections 256',
  },
  'log-level': {
    type: 'string',
    value: 'L',
    of: ['node'],
    help: `${LOG_LEVELS.join(' | ')} (default info, or $PP_LOG_LEVEL). Logs go to stderr.`,
    example: 'npx pp-node --log-level debug',
  },
  'log-format': {
    type: 'string',
    value: 'F',
    of: ['node'],
    help: 'text (default) | json: one JSON object per log line, for log collectors.',
    example: 'npx pp-node --log-format json',
  },
  'no-announce': {
    type: 'boolean',
    of: ['node'],
    help: "do not announce this node on the LAN (clients then need ppservers: ['host:port']).",
  },
  interface: {
    type: 'string',
    value: 'IF',
    of: ALL,
    help: 'announce (ls, top, doctor: browse) on this network interface or address only (Wi-Fi + Ethernet, VPNs).',
    example: 'npx pp-node --interface 192.168.1.20',
  },
  'allow-weak-secret': {
    type: 'boolean',
    of: ALL,
    help: `run with a weak secret (under 16 bytes or an estimated 80 bits), which is
refused otherwise: a rogue node could guess it offline.`,
  },
  'cache-dir': {
    type: 'string',
    value: 'DIR',
    of: ['node'],
    help: 'where modules sent by clients are kept (default ~/.cache/pp-node; made mode 0700).',
    example: 'npx pp-node --cache-dir /var/cache/pp-node',
  },
  'cache-max-mb': {
    type: 'string',
    value: 'N',
    of: ['node'],
    help: `cap on that cache (default ${DEFAULT_CACHE_MAX_MB}); the least recently used go first.`,
    example: 'npx pp-node --cache-max-mb 2048',
  },
  json: {
    type: 'boolean',
    of: WATCH,
    help: 'ls, doctor: print JSON; top: one JSON document per refresh.',
    example: 'npx pp-node ls --json',
  },
  timeout: {
    type: 'string',
    value: 'S',
    of: WATCH,
    help: 'ls, top --once, doctor: browse for S seconds, 1 to 60 (default 3).',
    example: 'npx pp-node ls --timeout 10',
  },
  nodes: {
    type: 'string',
    value: 'H:P,...',
    of: ['top', 'doctor'],
    help: 'top, doctor: these nodes too, besides those mDNS finds (host, host:port or [ipv6]:port).',
    example: 'npx pp-node top --nodes 192.168.1.20,desk-42:61000',
  },
  'no-mdns': { type: 'boolean', of: ['top', 'doctor'], help: 'top, doctor: only the --nodes given.' },
  once: { type: 'boolean', of: ['top'], help: 'top: print one table (or JSON document), then exit.' },
  help: { type: 'boolean', short: 'h', of: ALL, help: 'this help.' },
  version: { type: 'boolean', short: 'v', of: ALL, help: 'print the version.' },
};

/** Environment variables read, for `--help`. */
export const ENVIRONMENT: Readonly<Record<string, string>> = {
  PP_SECRET: 'the shared secret itself, instead of a secret file.',
  PP_LOG_LEVEL: 'the log level when --log-level is not given.',
};

/** The option list of `--help`, made from {@link OPTIONS}. */
export function optionsHelp(): string {
  const lines: string[] = [];
  for (const [name, o] of Object.entries(OPTIONS)) {
    const flag = `${o.short ? `-${o.short}, ` : ''}--${name}${o.value ? ` ${o.value}` : ''}`;
    const [first, ...more] = o.help.split('\n');
    lines.push(`  ${flag.padEnd(20)}${flag.length >= 20 ? ' ' : ''}${first}`);
    for (const m of more) lines.push(`${' '.repeat(22)}${m}`);
    if (o.example) lines.push(`${' '.repeat(24)}${o.example}`);
  }
  return lines.join('\n');
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
${optionsHelp()}

Environment:
${Object.entries(ENVIRONMENT)
  .map(([k, v]) => `  ${k.padEnd(20)}${v}`)
  .join('\n')}

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
      options: Object.fromEntries(
        Object.entries(OPTIONS).map(([name, o]) => [
          name,
          o.short ? { type: o.type, short: o.short } : { type: o.type },
        ]),
      ),
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
    for (const [k, o] of Object.entries(OPTIONS)) {
      if (!o.of.includes('ls') && v[k] !== undefined)
        throw new UsageError(`--${k} is ${optionOf(k)}, not of 'ls'`);
    }
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
    for (const [k, o] of Object.entries(OPTIONS)) {
      if (!o.of.includes(sub) && v[k] !== undefined)
        throw new UsageError(`--${k} is ${optionOf(k)}, not of '${sub}'`);
    }
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
  if (sub !== undefined) throw new UsageError(`unknown command '${sub}' (commands: ls, top, doctor, secret)`);
  for (const [k, o] of Object.entries(OPTIONS)) {
    if (!o.of.includes('node') && v[k] !== undefined) throw new UsageError(`--${k} is ${optionOf(k)}`);
  }
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
    nice: wholeNumber('nice', str('nice'), 0, 19, DEFAULT_NICE),
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
