/**
 * What a node says about itself when an authenticated client asks ('status', protocol 3+;
 * STATUS_PROTOCOL in handshake.ts): `pp-node top` and `pp-node doctor` show it. Only sent inside
 * the encrypted channel, so nobody without the secret learns any of it.
 *
 * Checked field by field on receipt (the peer proved the secret, but a newer or broken node
 * must not crash a reader); fields a newer node adds are ignored, so the report can grow.
 */

/** A node's report, as of `time`. Counts since the node started unless said otherwise. */
export interface NodeStatus {
  id: string;
  name: string;
  version: string;
  protocol: number;
  /** Workers (CPUs) the node lends. */
  ncpus: number;
  /** Workers started and able to run a job. */
  ready: number;
  /** Workers running a job right now. */
  busy: number;
  /** Jobs held by the node that have not started. */
  queued: number;
  /** Clients connected that submit jobs (not counting monitors such as `pp-node top`). */
  clients: number;
  /** Connections that only asked for the status (`pp-node top`, `doctor`). */
  monitors: number;
  /** Jobs that ran to an end (a value, an error, a crash or a timeout); cancelled ones excluded. */
  jobsDone: number;
  /** Of those, the ones that failed: threw, could not start, crashed their worker, timed out. */
  failures: number;
  /** Jobs done per second over the last `rateWindowS` seconds. */
  jobsPerSecond: number;
  rateWindowS: number;
  /** os.loadavg(): 1, 5 and 15 minutes (zeros on Windows). */
  load: [number, number, number];
  freeMemory: number;
  totalMemory: number;
  /** Seconds since the node started. */
  uptimeS: number;
  /** The node's clock (ms since the epoch) when it made the report: clock skew. */
  time: number;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isNonNegative = (v: unknown): v is number =>
  typeof v === 'number' && Number.isFinite(v) && (v as number) >= 0;

const COUNTS = [
  'protocol',
  'ncpus',
  'ready',
  'busy',
  'queued',
  'clients',
  'monitors',
  'jobsDone',
  'failures',
] as const;
const NUMBERS = ['jobsPerSecond', 'rateWindowS', 'freeMemory', 'totalMemory', 'uptimeS', 'time'] as const;

/** Is `v` a well-formed report? (Extra fields are allowed: a newer node may say more.) */
export function isNodeStatus(v: unknown): v is NodeStatus {
  if (v === null || typeof v !== 'object') return false;
  const o = v as Record<string, unknown>;
  if (!isString(o.id) || !isString(o.name) || !isString(o.version)) return false;
  for (const k of COUNTS) if (!isCount(o[k])) return false;
  for (const k of NUMBERS) if (!isNonNegative(o[k])) return false;
  return Array.isArray(o.load) && o.load.length === 3 && o.load.every(isNonNegative);
}
