/**
 * `server.wait({ progress: true })`: one line on stderr, redrawn at most 10 times a second,
 * while jobs run: a bar, done/total, failures, jobs/s, ETA and the nodes in use. Only when
 * stderr is a terminal; piped or redirected, nothing is written.
 *
 * A tiny renderer of its own rather than a library: the line's fields (failures, nodes in
 * use, a total that grows while callbacks submit more jobs) are not what progress-bar packages
 * compute, and what is left (fit to the width, `\r`, erase to the end of the line, a timer)
 * is a few lines, where the best-known package (cli-progress) would add a dependency tree.
 */
import { etaSeconds, formatSeconds, RateMeter } from '../dashboard/rate.ts';
import type { Progress } from './progress.ts';

/** Redraws per second, at most. */
export const PROGRESS_REDRAWS_PER_SECOND = 10;

/** Where the line is drawn: stderr, or in tests any stream that says it is a terminal. */
export interface ProgressStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

/** What the line shows, read from the server at each redraw. */
export interface ProgressSource {
  progress(): Progress;
  /** Nodes that can run jobs, with the jobs each holds. */
  nodes(): ReadonlyArray<{ inFlight: number }>;
}

/** The line for `p` at `rate` jobs/s, fitted to `columns`. */
export function progressLine(
  p: Progress,
  rate: number,
  nodesBusy: number,
  nodes: number,
  columns: number,
): string {
  const parts = [
    `${p.finished}/${p.total}`,
    ...(p.failed > 0 ? [`${p.failed} failed`] : []),
    `${rate >= 100 ? Math.round(rate) : rate.toFixed(1)} jobs/s`,
    `ETA ${p.pending === 0 ? '0s' : formatSeconds(etaSeconds(p.pending, rate))}`,
    `nodes ${nodesBusy}/${nodes}`,
  ];
  const text = parts.join('  ');
  const room = columns - 1 - text.length - 3; // keep the last column free: no wrap
  if (room < 10) return text.slice(0, Math.max(0, columns - 1));
  const width = Math.min(40, room);
  const full = p.total === 0 ? width : Math.floor((width * p.finished) / p.total);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${text}`;
}

/**
 * Draws the line on `stream` until `idle` settles, then draws it once more and ends the line.
 * Returns `idle`. Writes nothing when the stream is not a terminal.
 */
export function drawProgress(
  idle: Promise<void>,
  source: ProgressSource,
  stream: ProgressStream = process.stderr,
): Promise<void> {
  if (!stream.isTTY) return idle;
  const meter = new RateMeter();
  let last = '';
  const draw = () => {
    const p = source.progress();
    const nodes = source.nodes();
    let busy = 0;
    for (const n of nodes) if (n.inFlight > 0) busy++;
    const line = progressLine(
      p,
      meter.sample(p.finished, performance.now()),
      busy,
      nodes.length,
      stream.columns || 80,
    );
    if (line === last) return;
    last = line;
    stream.write(`\r${line}\x1b[K`);
  };
  draw();
  const timer = setInterval(draw, 1000 / PROGRESS_REDRAWS_PER_SECOND);
  timer.unref();
  return idle.finally(() => {
    clearInterval(timer);
    draw();
    stream.write('\n');
  });
}
