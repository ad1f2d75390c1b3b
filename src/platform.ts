/**
 * Every choice pp-node makes by operating system, in one place. Each is a pure function of
 * the platform (the real one by default), so all of them are unit-tested for 'win32',
 * 'darwin' and 'linux' on any machine (test/platform.test.ts): only Linux runs in CI, and
 * the Windows and macOS branches are otherwise known from review alone (issue 18).
 */
import { constants as fsConstants } from 'node:fs';
import { homedir } from 'node:os';

type Platform = NodeJS.Platform;

/**
 * The stdio type of a worker process's channel (fd 3). On Windows, a 'pipe' is synchronous
 * on the child's side, so a worker's result write waits behind its own pending read and the
 * job hangs (nodejs/node#29238, #43936, libuv#95); 'overlapped' opens it for overlapped I/O,
 * which libuv needs. Elsewhere the two are the same, and 'pipe' says what it is.
 */
export function workerChannelStdio(platform: Platform = process.platform): 'pipe' | 'overlapped' {
  return platform === 'win32' ? 'overlapped' : 'pipe';
}

/**
 * Whether a worker may read and write its channel's file descriptor synchronously
 * (fs.readSync, fs.writeSync) besides the socket: write a result straight out, and between two
 * jobs read what the server has sent since the last one began, without a turn of the event
 * loop. On POSIX the descriptor is a non-blocking socket: a short write only means "the rest
 * goes through the socket", a read finds nothing (EAGAIN) or the next bytes in order. On
 * Windows the descriptor is a pipe handle that libuv reads with overlapped I/O: a synchronous
 * call there can block behind that read, the very hang 'overlapped' avoids.
 */
export function syncChannelIo(platform: Platform = process.platform): boolean {
  return platform !== 'win32';
}

/**
 * Signals on which a node stops cleanly (queued jobs go back, running ones finish). SIGHUP
 * too: the terminal closing (POSIX), or the console window closing on Windows, where the
 * process then has about 10 seconds before Windows ends it (see {@link stopGraceMs}).
 * SIGTERM is never delivered on Windows, but listening for it there is harmless.
 */
export function stopSignals(_platform: Platform = process.platform): NodeJS.Signals[] {
  return ['SIGINT', 'SIGTERM', 'SIGHUP'];
}

/** The signal that prints the job statistics: Windows has no SIGUSR1, but Ctrl+Break is SIGBREAK. */
export function statsSignal(platform: Platform = process.platform): NodeJS.Signals {
  return platform === 'win32' ? 'SIGBREAK' : 'SIGUSR1';
}

/** How to send {@link statsSignal}, for the help text and logs. */
export function statsSignalHint(platform: Platform = process.platform): string {
  return platform === 'win32' ? 'Ctrl+Break (SIGBREAK)' : 'SIGUSR1 (kill -USR1 <pid>)';
}

/**
 * How long a stopping node lets running jobs finish after `signal`. Windows ends a process
 * about 10 s after its console closes (SIGHUP), so stop well within that; elsewhere the
 * node's usual grace.
 */
export function stopGraceMs(signal: string, platform: Platform = process.platform): number {
  return platform === 'win32' && signal === 'SIGHUP' ? 8_000 : 10_000;
}

/**
 * Signals worker processes ignore. A terminal sends Ctrl+C (SIGINT), and a hangup (SIGHUP),
 * to the whole foreground process group, workers included; on Windows, Ctrl+C, Ctrl+Break and
 * closing the console reach every process of the console. The parent alone decides what such
 * a signal means (a node: finish running jobs; a client: its own handler, or Node's default),
 * and stops or kills its workers itself.
 * Not ignored: SIGTSTP (Ctrl+Z suspends the workers with their parent, and `fg` resumes them
 * all), SIGQUIT (Ctrl+\, the terminal's "quit now, and dump core"), SIGTERM (sent to one
 * process, by name, not by the terminal).
 */
export function workerIgnoredSignals(platform: Platform = process.platform): NodeJS.Signals[] {
  return platform === 'win32' ? ['SIGINT', 'SIGBREAK', 'SIGHUP'] : ['SIGINT', 'SIGHUP'];
}

/**
 * The user's home directory, as os.homedir() finds it, read from `env` (so tests can point
 * it elsewhere): HOME on POSIX, USERPROFILE on Windows. Not HOME on Windows: Git Bash sets
 * it (often to a network drive) while cmd and PowerShell do not, so a node started in one
 * and a client in the other would read different secret files.
 */
export function homeDir(env: NodeJS.ProcessEnv = process.env, platform: Platform = process.platform): string {
  const fromEnv = platform === 'win32' ? env.USERPROFILE : env.HOME;
  return fromEnv || homedir();
}

/**
 * Whether files have POSIX owners and permission bits worth checking. On Windows, `mode` and
 * `uid` from stat are made up (ACLs decide who may read a file), so the secret file's owner,
 * mode and directory checks are skipped there.
 */
export function posixPermissions(platform: Platform = process.platform): boolean {
  return platform !== 'win32';
}

/**
 * Flags to open the secret file with: read-only; on POSIX also O_NOFOLLOW (a symbolic link at
 * the path is refused with ELOOP rather than followed) and O_NONBLOCK (a FIFO or device at the
 * path opens at once, to be refused as "not a regular file", instead of blocking startup; reads
 * of a regular file are unaffected). Windows has neither flag (fs.constants lacks them there):
 * the caller checks for a link with lstat first instead.
 */
export function secretOpenFlags(
  platform: Platform = process.platform,
  constants: Partial<Record<'O_RDONLY' | 'O_NOFOLLOW' | 'O_NONBLOCK', number>> = fsConstants,
): { flags: number; noFollow: boolean } {
  const rdonly = constants.O_RDONLY ?? 0;
  if (platform === 'win32' || constants.O_NOFOLLOW === undefined) return { flags: rdonly, noFollow: false };
  return { flags: rdonly | constants.O_NOFOLLOW | (constants.O_NONBLOCK ?? 0), noFollow: true };
}

/**
 * What to check when a client cannot reach a node, given the error's code. The firewall in
 * question is the node's; the one permission that fails on the client's side is macOS 15's
 * Local Network privacy, which makes connections from apps such as VS Code's terminal or
 * iTerm2 fail with EHOSTUNREACH until allowed (Terminal.app, ssh and launchd are exempt).
 */
export function unreachableHint(code: string | undefined, platform: Platform = process.platform): string {
  const firewall =
    'Is `npx pp-node` running there, and does that machine let its TCP port in (Windows: allow node.exe ' +
    'in Windows Defender Firewall; Linux: the firewall, e.g. ufw or firewalld)?';
  if (platform === 'darwin' && (code === 'EHOSTUNREACH' || code === 'ENETUNREACH')) {
    return `${firewall} On macOS 15 and later, Local Network privacy also gives ${code} from apps such as VS Code's terminal or iTerm2: allow the app in System Settings › Privacy & Security › Local Network, or run from Terminal.app.`;
  }
  return firewall;
}

/** What to check when `pp-node ls` finds no node on the LAN (mDNS, UDP 5353). */
export function discoveryHint(platform: Platform = process.platform): string {
  const common = 'Wi-Fi client isolation, --interface (see "Troubleshooting" and "Platforms" in the README)';
  switch (platform) {
    case 'win32':
      return `Windows Defender Firewall must allow node.exe (UDP 5353 for discovery, TCP 60000 for the node; Windows asks on first run), ${common}`;
    case 'darwin':
      return `macOS 15+ Local Network permission for this terminal app (System Settings › Privacy & Security › Local Network), firewalls (UDP 5353), ${common}`;
    default:
      return `firewalls (UDP 5353), ${common}`;
  }
}

/** What to do when a node cannot listen with `code`, if the platform has its own cause. */
export function listenHint(code: string | undefined, platform: Platform = process.platform): string {
  if (code === 'EADDRINUSE') return ' — is another pp-node running? Pick another port with --port.';
  if (code === 'EADDRNOTAVAIL') return ' — --bind must be an address of this machine';
  if (code === 'EACCES' && platform === 'win32')
    return ' — Windows reserves some port ranges (netsh interface ipv4 show excludedportrange protocol=tcp): pick another port with --port';
  if (code === 'EACCES') return ' — ports below 1024 need privileges: pick another port with --port';
  return '';
}
