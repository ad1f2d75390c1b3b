/** Execution statistics, per node, in the shape of Parallel Python's `print_stats()`. */

/** Statistics of one node ('local' for this machine's workers). */
export interface NodeStats {
  /** Node label: 'local', or the remote node's address. */
  node: string;
  /** Jobs this node completed (including jobs that threw). */
  jobs: number;
  /** Share of all completed jobs, in percent. */
  percent: number;
  /** Sum of the jobs' run times on this node, in seconds. */
  jobTimeSum: number;
  /** Mean run time per job, in seconds (0 when no job ran). */
  timePerJob: number;
  /** CPUs of this node currently in use. */
  ncpus: number;
  /**
   * How fast it ran this server's jobs against the cluster's mean for the same functions (2:
   * in half the time); 1 until measured (and on a node alone). The scheduler places work by it.
   */
  speed: number;
}

/** Everything `printStats()` shows, as data. */
export interface ServerStats {
  nodes: NodeStats[];
  /** Seconds since the server was created. */
  uptime: number;
  /** Jobs submitted and not finished (queued or running). */
  activeJobs: number;
  /** CPUs over all nodes. */
  ncpus: number;
  /** Jobs completed over all nodes. */
  totalJobs: number;
  /** Jobs taken back unstarted from one node to run on another (work stealing). */
  stolen?: number;
  /**
   * Speculative execution: backup copies started, those that finished before the original,
   * and the milliseconds that losing copies ran (CPU time spent for nothing).
   */
  backups?: { started: number; won: number; wastedMs: number };
}

/** Renders stats as pp's table. */
export function formatStats(stats: ServerStats): string {
  const lines = [
    'Job execution statistics:',
    ' job count | % of all jobs | job time sum | time per job | speed | job server',
  ];
  for (const n of stats.nodes) {
    lines.push(
      `${String(n.jobs).padStart(10)} | ${n.percent.toFixed(2).padStart(13)} | ${n.jobTimeSum
        .toFixed(4)
        .padStart(
          12,
        )} | ${n.timePerJob.toFixed(6).padStart(12)} | ${n.speed.toFixed(2).padStart(5)} | ${n.node}`,
    );
  }
  lines.push(`Time elapsed since server creation ${stats.uptime.toFixed(4)}`);
  if (stats.stolen) lines.push(`${stats.stolen} jobs moved between nodes by work stealing`);
  const b = stats.backups;
  if (b?.started)
    lines.push(
      `${b.started} backup copies of late jobs, ${b.won} finished first; ${(b.wastedMs / 1000).toFixed(3)} s spent on losing copies`,
    );
  lines.push(`${stats.activeJobs} active tasks, ${stats.ncpus} cores`);
  return lines.join('\n');
}

/** A node as the job server shows it (`getActiveNodes()`, the 'node-up'/'node-down' events). */
export interface NodeSummary {
  /** 'local', or the remote node's 'host:port'. */
  id: string;
  /** The node's own name (its --name, or hostname). */
  name: string;
  ncpus: number;
  /** Jobs sent to it and not answered yet. */
  inFlight: number;
  /** How fast it runs this server's jobs against the cluster's mean (2: in half the time); 1 until measured. */
  speed: number;
  /** Round trip of the link to it, ms (0 for the local pool). */
  rttMs: number;
  /** pp-node version of a remote node. */
  version?: string;
  /** Modules sent to a remote node because it lacked them: packs and bytes. */
  modulesSent?: { packs: number; bytes: number };
}
