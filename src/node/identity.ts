import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/** A stable id for this machine: the same across restarts, different between machines. */
export function machineId(): string {
  let machine = '';
  for (const path of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      machine = readFileSync(path, 'utf8').trim();
      if (machine) break;
    } catch {
      // not on this system
    }
  }
  return createHash('sha256').update(`pp-node\0${hostname()}\0${machine}`).digest('hex').slice(0, 16);
}
