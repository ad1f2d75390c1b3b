/** Command-line parsing for `pp-node`: every mistake is a clear message and exit code 2. */
import { availableParallelism, hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { MAX_CONNECTIONS } from '../daemon/admission.ts';
import { LOG_LEVELS, type LogLevel } from '../log.ts';
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

/** One command-line option: how parseArgs reads it and how `--help` teaches it. */
export interface CliOption {
  type: 'string' | 'boolean';
  short?: string;
  /** The placeholder of its value in the help (N, ADDR, ...). */
  value?: string;
  /** Which command takes it. */
  of: 'node' | 'ls' | 'both';
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
    of: 'node',
    help: `TCP port to listen on (default ${DEFAULT_PORT}).`,
    example: 'npx pp-node --port 61000',
  },
  bind: {
    type: 'string',
    value: 'ADDR',
    of: 'node',
    help: 'listen only on this address (default: all interfaces).',
    example: 'npx pp-node --bind 192.168.1.20',
  },
  workers: {
    type: 'string',
    value: 'N',
    of: 'node',
    help: `worker processes, i.e. CPUs lent to clients (default: all, here ${availableParallelism()}).`,
    example: 'npx pp-node --workers 2',
  },
  'secret-file': {
    type: 'string',
    value: 'F',
    of: 'both',
    help: `file holding the cluster's shared secret (default: $PP_SECRET, else
~/.config/pp-node/secret, created with 256 random bits on first run).`,
    example: 'npx pp-node --secret-file /etc/pp-node/secret',
  },
  name: {
    type: 'string',
    value: 'NAME',
    of: 'node',
    help: `name shown to clients and on the LAN (default: the hostname, here ${hostname()}).`,
    example: 'npx pp-node --name desk-42',
  },
  'idle-timeout': {
    type: 'string',
    value: 'S',
    of: 'node',
    help: 'exit after S seconds without any client (default 0: never).',
    example: 'npx pp-node --idle-timeout 3600',
  },
  'max-connections': {
    type: 'string',
    value: 'N',
    of: 'node',
    help: `TCP connections at once, clients included (default ${MAX_CONNECTIONS}); more are dropped.`,
    example: 'npx pp-node --max-connections 256',
  },
  'log-level': {
    type: 'string',
    value: 'L',
    of: 'node',
    help: `${LOG_LEVELS.join(' | ')} (default info, or $PP_LOG_LEVEL). Logs go to stderr.`,
    example: 'npx pp-node --log-level debug',
  },
  'log-format': {
    type: 'string',
    value: 'F',
    of: 'node',
    help: 'text (default) | json: one JSON object per log line, for log collectors.',
    example: 'npx pp-node --log-format json',
  },
  'no-announce': {
    type: 'boolean',
    of: 'node',
    help: "do not announce this node on the LAN (clients then need ppservers: ['host:port']).",
  },
  interface: {
    type: 'string',
    value: 'IF',
    of: 'both',
    help: 'announce (ls: browse) on this network interface or address only (Wi-Fi + Ethernet, VPNs).',
    example: 'npx pp-node --interface 192.168.1.20',
  },
  json: { type: 'boolean', of: 'ls', help: 'ls: print the nodes as JSON.', example: 'npx pp-node ls --json' },
  timeout: {
    type: 'string',
    value: 'S',
    of: 'ls',
    help: 'ls: browse for S seconds, 1 to 60 (default 3).',
    example: 'npx pp-node ls --timeout 10',
  },
  help: { type: 'boolean', short: 'h', of: 'both', help: 'this help.' },
  version: { type: 'boolean', short: 'v', of: 'both', help: 'print the version.' },
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
  if (sub === 'ls') {
    for (const [k, o] of Object.entries(OPTIONS)) {
      if (o.of === 'node' && v[k] !== undefined)
        throw new UsageError(`--${k} is an option of the node, not of 'ls'`);
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
  for (const [k, o] of Object.entries(OPTIONS)) {
    if (o.of === 'ls' && v[k] !== undefined) throw new UsageError(`--${k} is an option of 'ls'`);
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
    secretFile: str('secret-file'),
    name,
    idleTimeoutS: wholeNumber('idle-timeout', str('idle-timeout'), 0, 10 ** 7, 0),
    maxConnections: wholeNumber('max-connections', str('max-connections'), 1, 10 ** 6, MAX_CONNECTIONS),
    logLevel: level,
    logFormat: format,
    announce: !v['no-announce'],
    interface: str('interface'),
  };
}
