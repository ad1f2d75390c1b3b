/**
 * `pp-node top`: every node mDNS finds (and `--nodes`), live, one row each, refreshed every second.
 *
 * On a terminal it draws in the alternate screen, each frame over the last (cursor home, every
 * line cleared to its end, the rest of the screen cleared: no flicker), fitted to the width
 * (columns that matter least are dropped first, see {@link formatTop}); `q` or Ctrl-C quits and
 * gives the terminal back as it was. Piped, or with `--once`: one table. `--json`: one JSON
 * document per refresh (one line each), or one with `--once`.
 */
import { writeSync } from 'node:fs';
import { printable } from '../log.ts';
import { cliSecret } from '../secret-strength.ts';
import type { TopConfig } from './args.ts';
import { ClusterWatch, type WatchedNode } from './watch.ts';

const REFRESH_MS = 1000;

// ------------------------------------------------------------------ the table (pure)

/** One row of the table: a node, as top shows it. */
export interface TopRow {
  name: string;
  address: string;
  /** up, down, rejected, refused, version, no-secret, connecting, error. */
  state: string;
  cpus: number | null;
  busy: number | null;
  queued: number | null;
  clients: number | null;
  jobsPerSecond: number | null;
  jobsDone: number | null;
  failures: number | null;
  load: number | null;
  freeMemory: number | null;
  version: string;
  uptimeS: number | null;
  /** Why it is not up, or what else to know. */
  note: string;
}

interface Column {
  header: string;
  /** 0: always shown; higher numbers are dropped first when the terminal is narrow. */
  drop: number;
  right: boolean;
  cell: (r: TopRow) => string;
}

const num = (v: number | null, f: (v: number) => string = String) => (v === null ? '' : f(v));

/** 1234 -> 1234, 12345 -> 12.3k, 1234567 -> 1.23M. */
export function formatCount(v: number): string {
  if (v < 10_000) return Number.isInteger(v) ? String(v) : v < 100 ? v.toFixed(1) : String(Math.round(v));
  if (v < 1_000_000) return `${(v / 1000).toFixed(v < 100_000 ? 1 : 0)}k`;
  return `${(v / 1_000_000).toFixed(2)}M`;
}

/** Bytes in binary units: 812M, 3.2G. */
export function formatBytes(v: number): string {
  const units = ['B', 'K', 'M', 'G', 'T'];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v < 10 && i > 0 ? v.toFixed(1) : Math.round(v)}${units[i]}`;
}

/** 42s, 5m12s, 2h05m, 3d04h. */
export function formatUptime(s: number): string {
  const t = Math.floor(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  if (t < 86_400) return `${Math.floor(t / 3600)}h${String(Math.floor(t / 60) % 60).padStart(2, '0')}m`;
  return `${Math.floor(t / 86_400)}d${String(Math.floor(t / 3600) % 24).padStart(2, '0')}h`;
}

const COLUMNS: Column[] = [
  { header: 'NAME', drop: 0, right: false, cell: (r) => r.name },
  { header: 'STATE', drop: 0, right: false, cell: (r) => r.state },
  { header: 'ADDRESS', drop: 4, right: false, cell: (r) => r.address },
  { header: 'CPUS', drop: 1, right: true, cell: (r) => num(r.cpus) },
  { header: 'BUSY', drop: 1, right: true, cell: (r) => num(r.busy) },
  { header: 'QUEUED', drop: 2, right: true, cell: (r) => num(r.queued, formatCount) },
  { header: 'CLIENTS', drop: 3, right: true, cell: (r) => num(r.clients) },
  { header: 'JOBS/S', drop: 1, right: true, cell: (r) => num(r.jobsPerSecond, formatCount) },
  { header: 'DONE', drop: 5, right: true, cell: (r) => num(r.jobsDone, formatCount) },
  { header: 'FAILED', drop: 2, right: true, cell: (r) => num(r.failures, formatCount) },
  { header: 'LOAD', drop: 3, right: true, cell: (r) => num(r.load, (v) => v.toFixed(2)) },
  { header: 'FREE MEM', drop: 4, right: true, cell: (r) => num(r.freeMemory, formatBytes) },
  { header: 'VERSION', drop: 6, right: false, cell: (r) => r.version },
  { header: 'UPTIME', drop: 5, right: true, cell: (r) => num(r.uptimeS, formatUptime) },
];
/** Why a node is not up: dropped after the load and the clients, before the jobs and the CPUs. */
const NOTE: Column = { header: 'NOTE', drop: 2.5, right: false, cell: (r) => r.note };
const GAP = 2;
const MIN_NAME = 6;
/** The note column needs this much, else it goes; it takes whatever room is left. */
const MIN_NOTE = 20;
/** What the note gets before the less important columns when it can. */
const NOTE_WANT = 32;

/** The totals row: sums over the nodes that are up. */
export function totalsRow(rows: readonly TopRow[]): TopRow {
  const up = rows.filter((r) => r.state === 'up');
  const sum = (k: keyof TopRow) => {
    let s = 0;
    let any = false;
    for (const r of up) {
      const v = r[k];
      if (typeof v === 'number') {
        s += v;
        any = true;
      }
    }
    return any ? s : null;
  };
  return {
    name: 'TOTAL',
    address: '',
    state: `${up.length}/${rows.length} up`,
    cpus: sum('cpus'),
    busy: sum('busy'),
    queued: sum('queued'),
    clients: null,
    jobsPerSecond: sum('jobsPerSecond'),
    jobsDone: sum('jobsDone'),
    failures: sum('failures'),
    load: null,
    freeMemory: sum('freeMemory'),
    version: '',
    uptimeS: null,
    note: '',
  };
}

const cut = (s: string, w: number) => (s.length <= w ? s : w <= 1 ? s.slice(0, w) : `${s.slice(0, w - 1)}…`);

/**
 * The table, every line at most `width` characters: a header, a row per node, a totals row.
 * When it does not fit, the columns that matter least go first (version, done, uptime, address,
 * free memory, ...), then names are shortened (with …), and the note column takes what is left
 * (dropped below 12 characters). Every cell goes through printable(): a name announced on the LAN
 * cannot move the cursor or draw rows of its own.
 */
export function formatTop(rows: readonly TopRow[], width: number): string[] {
  const all = [...rows, totalsRow(rows)];
  const fit = (minNote: number) => {
    const cols = [...COLUMNS, NOTE].map((c) => {
      const vals = all.map((r) => printable(c.cell(r)));
      const w = Math.max(c.header.length, ...vals.map((v) => v.length));
      return { c, vals, w: c === NOTE ? Math.min(w, minNote) : w, full: w };
    });
    // No note at all: no note column.
    let shown = cols.filter((x) => x.c !== NOTE || x.vals.some((v) => v));
    const total = () => shown.reduce((s, x) => s + x.w, 0) + GAP * Math.max(0, shown.length - 1);
    // Drop the least important columns (highest `drop`, the rightmost first) until it fits.
    while (total() > width) {
      const worst = Math.max(...shown.map((x) => x.c.drop));
      if (worst === 0) break;
      const i = shown.map((x) => x.c.drop).lastIndexOf(worst);
      shown = shown.filter((_, j) => j !== i);
    }
    return { shown, total, hasNote: cols.some((x) => x.c === NOTE && x.vals.some((v) => v)) };
  };
  // A readable note first (columns of less weight make room for it), else a short one.
  let { shown, total, hasNote } = fit(NOTE_WANT);
  if (hasNote && !shown.some((x) => x.c === NOTE)) ({ shown, total } = fit(MIN_NOTE));
  // Then shorten the names.
  const name = shown[0]!;
  const over = total() - width;
  if (over > 0) name.w = Math.max(MIN_NAME, name.w - over);
  // The note takes what is left.
  const note = shown.find((x) => x.c === NOTE);
  if (note) note.w = Math.min(note.full, note.w + Math.max(0, width - total()));
  const line = (pick: (x: (typeof shown)[number]) => string) =>
    cut(
      shown
        .map((x) => {
          const v = cut(pick(x), x.w);
          return x.c.right ? v.padStart(x.w) : v.padEnd(x.w);
        })
        .join(' '.repeat(GAP))
        .trimEnd(),
      width,
    );
  const out = [line((x) => x.c.header)];
  for (let i = 0; i < all.length; i++) out.push(line((x) => x.vals[i]!));
  return out;
}

// ------------------------------------------------------------------ from the watch to rows

/** A watched node as a row (what it said last, while up). */
export function rowOf(n: WatchedNode): TopRow {
  const s = n.state === 'up' ? n.sample?.status : undefined;
  const state = n.state === 'no-secret' ? 'no secret' : n.state;
  return {
    name: n.name,
    address: n.address,
    state,
    cpus: s?.ncpus ?? (n.info?.ncpus || n.announced.ncpus || null),
    busy: s?.busy ?? null,
    queued: s?.queued ?? null,
    clients: s?.clients ?? null,
    jobsPerSecond: s?.jobsPerSecond ?? null,
    jobsDone: s?.jobsDone ?? null,
    failures: s?.failures ?? null,
    load: s?.load[0] ?? null,
    freeMemory: s?.freeMemory ?? null,
    version: printable(s?.version ?? n.info?.version ?? n.announced.version),
    uptimeS: s?.uptimeS ?? null,
    note: n.why,
  };
}

/** The `--json` document for one refresh. */
export function topDocument(nodes: readonly WatchedNode[], now = new Date()): object {
  const rows = nodes.map((n) => ({
    name: n.name,
    key: n.key,
    address: n.address,
    source: n.source,
    state: n.state,
    why: n.why || undefined,
    since: new Date(n.since).toISOString(),
    id: n.info?.id,
    protocol: n.protocol || undefined,
    status: n.state === 'up' ? n.sample?.status : undefined,
    rttMs: n.state === 'up' ? n.sample?.rttMs : undefined,
    clockSkewMs: n.state === 'up' ? n.sample && Math.round(n.sample.clockSkewMs) : undefined,
  }));
  const t = totalsRow(nodes.map(rowOf));
  return {
    time: now.toISOString(),
    nodes: rows,
    totals: {
      nodes: nodes.length,
      up: nodes.filter((n) => n.state === 'up').length,
      cpus: t.cpus ?? 0,
      busy: t.busy ?? 0,
      queued: t.queued ?? 0,
      jobsPerSecond: t.jobsPerSecond ?? 0,
      jobsDone: t.jobsDone ?? 0,
      failures: t.failures ?? 0,
    },
  };
}

function title(nodes: readonly WatchedNode[], width: number, live: boolean): string {
  const up = nodes.filter((n) => n.state === 'up').length;
  const time = new Date().toTimeString().slice(0, 8);
  const left = `pp-node top  ${time}  ${nodes.length} node${nodes.length === 1 ? '' : 's'}, ${up} up`;
  const right = live ? 'q: quit' : '';
  const pad = width - left.length - right.length;
  return cut(pad >= 2 ? `${left}${' '.repeat(pad)}${right}` : left, width);
}

// ------------------------------------------------------------------ the command

const ALT_ON = '\x1b[?1049h\x1b[?25l'; // alternate screen, cursor hidden
const ALT_OFF = '\x1b[?1049l\x1b[?25h'; // normal screen back, cursor shown
const HOME = '\x1b[H';
const CLEAR_EOL = '\x1b[K';
const CLEAR_EOS = '\x1b[J';

export async function top(cfg: TopConfig): Promise<number> {
  let secret: Uint8Array | null = null;
  try {
    secret = cliSecret('top', cfg);
  } catch (error) {
    process.stderr.write(`pp-node top: cannot ask the nodes: ${(error as Error).message}\n`);
  }
  const out = process.stdout;
  const live = !cfg.once && !cfg.json && out.isTTY === true;
  let redraw = () => {};
  const reported = new Set<string>();
  const watch = new ClusterWatch(cfg, secret, {
    onChange: () => redraw(),
    onDiscoveryError: (e) => {
      const m = printable(e.message);
      if (live || reported.has(m)) return;
      reported.add(m);
      process.stderr.write(`pp-node top: discovery: ${m}\n`);
    },
  });
  await watch.start();
  try {
    if (cfg.once) {
      await settle(watch, cfg);
      writeOnce(watch.nodes, cfg);
      return 0;
    }
    if (cfg.json) return await streamJson(watch);
    if (!live) {
      // Piped: one table.
      await settle(watch, cfg);
      writeOnce(watch.nodes, cfg);
      return 0;
    }
    return await liveView(watch, (f) => (redraw = f));
  } finally {
    await watch.stop();
  }
}

/** Waits for discovery (`--timeout`, with mDNS) and for every node to answer or fail. */
async function settle(watch: ClusterWatch, cfg: TopConfig): Promise<void> {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  if (cfg.mdns) await sleep(cfg.timeoutS * 1000);
  const deadline = Date.now() + 10_000;
  while (!watch.settled && Date.now() < deadline) await sleep(50);
}

function writeOnce(nodes: readonly WatchedNode[], cfg: TopConfig): void {
  if (cfg.json) {
    process.stdout.write(`${JSON.stringify(topDocument(nodes))}\n`);
    return;
  }
  if (nodes.length === 0) {
    process.stdout.write(
      cfg.mdns
        ? `no pp-node found within ${cfg.timeoutS} s: try 'npx pp-node doctor'\n`
        : 'no node answered\n',
    );
    return;
  }
  const width = process.stdout.isTTY ? process.stdout.columns || 80 : 1000;
  process.stdout.write(`${formatTop(nodes.map(rowOf), width).join('\n')}\n`);
}

/** One JSON document per refresh, until SIGINT / SIGTERM (or stdout closes). */
function streamJson(watch: ClusterWatch): Promise<number> {
  return new Promise((resolve) => {
    const write = () => {
      if (!process.stdout.writable) return stop(0);
      process.stdout.write(`${JSON.stringify(topDocument(watch.nodes))}\n`);
      watch.tick();
    };
    const timer = setInterval(write, REFRESH_MS);
    const stop = (code: number) => {
      clearInterval(timer);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      process.stdout.off('error', onError);
      resolve(code);
    };
    const onSignal = () => stop(0);
    const onError = () => stop(0); // EPIPE: the reader is gone
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    process.stdout.on('error', onError);
  });
}

/** The live view: alternate screen, a frame per second (and on every change), q or Ctrl-C quits. */
function liveView(watch: ClusterWatch, setRedraw: (f: () => void) => void): Promise<number> {
  const out = process.stdout;
  const input = process.stdin;
  const restore = () => {
    try {
      writeSync(1, ALT_OFF);
    } catch {}
  };
  return new Promise((resolve) => {
    let pending = false;
    const draw = () => {
      pending = false;
      const width = Math.max(20, (out.columns || 80) - 1); // never the last column: no wrap
      const height = Math.max(3, out.rows || 24);
      const nodes = watch.nodes;
      const lines = [title(nodes, width, true), '', ...formatTop(nodes.map(rowOf), width)];
      if (nodes.length === 0) lines.push('', 'looking for nodes...');
      const shown = lines.slice(0, height);
      out.write(`${HOME}${shown.map((l) => `${l}${CLEAR_EOL}`).join('\r\n')}${CLEAR_EOS}`);
    };
    // Changes (a node that comes or goes) draw at once, at most one frame per turn.
    setRedraw(() => {
      if (pending) return;
      pending = true;
      setImmediate(draw);
    });
    const timer = setInterval(() => {
      watch.tick();
      draw();
    }, REFRESH_MS);
    const stop = () => {
      clearInterval(timer);
      setRedraw(() => {});
      out.off('resize', draw);
      input.off('data', onKey);
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('SIGHUP', stop);
      process.off('exit', restore);
      if (input.isTTY) input.setRawMode(false);
      input.pause();
      restore();
      resolve(0);
    };
    const onKey = (data: Buffer) => {
      // q, Q, Ctrl-C (raw mode delivers it as a byte), Ctrl-D.
      if (data.some((b) => b === 0x71 || b === 0x51 || b === 0x03 || b === 0x04)) stop();
    };
    process.on('exit', restore);
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    process.on('SIGHUP', stop);
    out.write(ALT_ON);
    if (input.isTTY) input.setRawMode(true);
    input.on('data', onKey);
    input.resume();
    out.on('resize', draw);
    draw();
  });
}
