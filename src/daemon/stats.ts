/** The daemon's statistics: jobs and their time per client address, shown as pp's table. */
import { formatStats, type NodeStats } from '../api/stats.ts';

export class PeerStats {
  private readonly byPeer = new Map<string, { jobs: number; timeMs: number }>();
  private readonly created = performance.now();

  /** A job of the client at `peer` (address:port) ran for `durationMs`. */
  record(peer: string, durationMs: number): void {
    const peerIp = peer.replace(/:\d+$/, '');
    let st = this.byPeer.get(peerIp);
    if (!st) this.byPeer.set(peerIp, (st = { jobs: 0, timeMs: 0 }));
    st.jobs++;
    st.timeMs += durationMs;
  }

  /** pp's stats table, a row per client address. */
  table(ncpus: number, activeJobs: number): string {
    let total = 0;
    for (const s of this.byPeer.values()) total += s.jobs;
    const rows: NodeStats[] = [...this.byPeer].map(([peer, s]) => ({
      node: peer,
      jobs: s.jobs,
      percent: total ? (100 * s.jobs) / total : 0,
      jobTimeSum: s.timeMs / 1000,
      timePerJob: s.jobs ? s.timeMs / 1000 / s.jobs : 0,
      ncpus,
      speed: 1,
    }));
    return formatStats({
      nodes: rows,
      uptime: (performance.now() - this.created) / 1000,
      activeJobs,
      ncpus,
      totalJobs: total,
    });
  }
}
