import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { defaultSecretPath } from '../secret.ts';

/** Where systemd and D-Bus keep a machine's id (Linux; macOS and Windows have neither). */
const MACHINE_ID_PATHS = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

/** The file holding this machine's random node id, beside the secret (~/.config/pp-node/node-id). */
export function nodeIdPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(dirname(defaultSecretPath(env)), 'node-id');
}

/**
 * A stable id for this machine: the same across restarts, different between machines.
 * From the machine-id where there is one (Linux), so it never changes there. Elsewhere a
 * hash of the hostname alone would merge two desks of the same name in a client, and change
 * when a Mac is renamed: so a random id is made once and kept in {@link nodeIdPath}.
 */
export function machineId(
  opts: { env?: NodeJS.ProcessEnv; machineIdPaths?: readonly string[] } = {},
): string {
  let machine = '';
  for (const path of opts.machineIdPaths ?? MACHINE_ID_PATHS) {
    try {
      machine = readFileSync(path, 'utf8').trim();
      if (machine) break;
    } catch {
      // not on this system
    }
  }
  if (!machine) machine = storedNodeId(nodeIdPath(opts.env)) ?? '';
  return createHash('sha256').update(`pp-node\0${hostname()}\0${machine}`).digest('hex').slice(0, 16);
}

/**
 * Reads the stored random id, creating it first if absent (mode 0600; `wx`, so of two
 * processes starting at once, the second reads the first's). Undefined when it can be
 * neither read nor made (a read-only home): the id is then the hostname's, as before.
 */
function storedNodeId(path: string): string | undefined {
  const read = () => {
    try {
      const id = readFileSync(path, 'utf8').trim();
      return /^[0-9a-f]{32}$/.test(id) ? id : undefined;
    } catch {
      return undefined;
    }
  };
  const existing = read();
  if (existing) return existing;
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeSync(fd, `${randomBytes(16).toString('hex')}\n`);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Someone else made it (EEXIST), or it cannot be made: read what there is.
  }
  return read();
}
