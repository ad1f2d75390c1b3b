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
        // printable() only rewrites characters inside JSON strings into their \u escapes: still valid JSON.
        write(
          printable(
            JSON.stringify({ time, level, msg, ...fields }, (_k, v) =>
              v instanceof Error ? errorFields(v) : v,
            ),
          ),
        );
        return;
      }
      const extra = Object.entries(fields)
        .map(([k, v]) => `${k}=${formatValue(v)}`)
        .join(' ');
      write(`${time} ${level.padEnd(5)} ${printable(msg)}${extra ? ` ${extra}` : ''}`);
    };
  return { error: emit('error'), warn: emit('warn'), info: emit('info'), debug: emit('debug') };
}

/**
 * Characters a terminal acts on or that change how the text around them reads: C0 controls (ESC,
 * CR, LF, BEL...), DEL, C1 controls (U+0080-U+009F, e.g. the one-character CSI U+009B), format
 * characters (bidi overrides and isolates such as U+202E, zero-width characters, BOM, soft hyphen,
 * tags), line and paragraph separators, and lone surrogates.
 */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

/**
 * `s` safe to print on one terminal line: every character of {@link UNPRINTABLE} becomes its JSON-style
 * escape (`\u001b`, `\u202e`; a surrogate pair above U+FFFF), so a forged name shows what it carries
 * instead of drawing a table row, clearing the screen, setting the window title or reversing text.
 * Everything else, other scripts and emoji included, is kept. Pure and idempotent (its output has
 * nothing left to escape), and a JSON string stays a JSON string of the same value. Log lines use it; so does everything printed that came from the network
 * (names, hosts and TXT values found by discovery, reasons sent by peers).
 */
export function printable(s: string): string {
  return s.replace(UNPRINTABLE, (c) => {
    let out = '';
    for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`;
    return out;
  });
}

function formatValue(v: unknown): string {
  // JSON.stringify escapes C0 controls, quotes and backslashes; printable() the rest (DEL, C1, bidi...).
  if (v instanceof Error) return printable(JSON.stringify(v.message));
  if (typeof v === 'string') return /^[\w.:/@-]+$/.test(v) ? v : printable(JSON.stringify(v));
  return printable(JSON.stringify(v) ?? String(v));
}

/** An error as JSON log fields: its name, message and stack (a collector shows where it came from), and its cause. */
function errorFields(e: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { name: e.name, message: e.message, stack: e.stack };
  if (e.cause !== undefined) out.cause = e.cause;
  return out;
}
