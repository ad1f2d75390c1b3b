/** A small leveled logger for the node: text for people, JSON lines for log collectors. */

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type LogFields = Record<string, unknown>;

export interface Logger {
  error(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'text' | 'json';
  /** Where lines go; default stderr (stdout stays free for jobs' output and `ls --json`). */
  write?: (line: string) => void;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const max = LOG_LEVELS.indexOf(opts.level ?? 'info');
  const write = opts.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const json = opts.format === 'json';
  const emit =
    (level: LogLevel) =>
    (msg: string, fields: LogFields = {}) => {
      if (LOG_LEVELS.indexOf(level) > max) return;
      const time = new Date().toISOString();
      if (json) {
        write(
          JSON.stringify({ time, level, msg, ...fields }, (_k, v) => (v instanceof Error ? v.message : v)),
        );
        return;
      }
      const extra = Object.entries(fields)
        .map(([k, v]) => `${k}=${formatValue(v)}`)
        .join(' ');
      write(`${time} ${level.padEnd(5)} ${msg}${extra ? ` ${extra}` : ''}`);
    };
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: emit('debug') };
}

function formatValue(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === 'string') return /^[\w.:/@-]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}
