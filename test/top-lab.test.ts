/**
 * `pp-node top` and `pp-node doctor` on a throw-away LAN of network namespaces (test/lab/netlab.ts),
 * finding the nodes by mDNS:
 *
 *   h1 top / doctor (and tmux for the live view)   h2 alpha   h3 beta (cut, healed, then killed)
 *   h4 rogue (another secret)
 *
 * THE RULE: no mDNS stack runs in the root network namespace. Every node, top and doctor run inside
 * lab hosts; tmux's server is started inside h1, and this process only talks to it through its unix
 * socket. tcpdump watches the real interfaces during the suite (test/lab/leak.ts).
 *
 * Needs root, iproute2, tcpdump and tmux, and a built dist/ (`npm run build`). Under CI=true a missing
 * piece fails the run; elsewhere the suite is skipped with the reason.
 * PP_TOP_CAPTURE=file writes the live view as tmux showed it (for the README).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assertCleanLabExit } from './lab/checks.ts';
import { LeakCapture, type LeakCapture as LeakCaptureT, tcpdumpAvailable } from './lab/leak.ts';
import { Lab, type LabProcess, labSkip, logsOf, rootFingerprint } from './lab/netlab.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BIN = fileURLToPath(new URL('../bin/pp-node.js', import.meta.url));
const SECRET = randomBytes(32).toString('hex');
const ROGUE_SECRET = randomBytes(32).toString('hex');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tmuxAvailable(): { what: string; ok: boolean; reason: string } {
  const r = spawnSync('tmux', ['-V'], { encoding: 'utf8' });
  return { what: 'tmux', ok: r.status === 0, reason: 'tmux not found: apt-get install tmux' };
}

/** Polls `f` until it returns a value (not undefined), or fails after `ms` with `what()`. */
async function poll<T>(f: () => T | undefined, ms: number, what: () => string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms: ${what()}`);
    await sleep(50);
  }
}

/** What a command in a lab host wrote to stdout (LabProcess keeps non-event lines in `output`). */
const stdoutOf = (p: LabProcess) => p.output.filter((l) => !l.startsWith('stderr: '));

interface NodeDoc {
  name: string;
  key: string;
  state: string;
  why?: string;
  status?: { ncpus: number; busy: number; jobsDone: number; version: string };
}
interface TopDoc {
  time: string;
  nodes: NodeDoc[];
  totals: { nodes: number; up: number; cpus: number };
}

const skipLan = labSkip([tcpdumpAvailable(), tmuxAvailable()]);

describe('pp-node top and doctor on a lab LAN (mDNS)', { skip: skipLan, timeout: 180_000 }, () => {
  let lab: Lab;
  let capture: LeakCaptureT | undefined;
  let fingerprint = '';
  let dir = '';
  let secretFile = '';
  const nodes = new Map<string, LabProcess>();
  const tmuxSock = () => join(dir, 'tmux.sock');

  const startNode = async (i: number, name: string, secret: string): Promise<LabProcess> => {
    const p = lab.spawn(
      i,
      process.execPath,
      [BIN, '--workers', '1', '--log-format', 'json', '--name', name],
      {
        cwd: ROOT,
        hostname: name,
        env: { PP_SECRET: secret },
      },
    );
    await poll(
      () => logsOf(p).find((l) => l.msg === 'announced on the LAN'),
      15_000,
      () => `${name} announced\n${p.dump()}`,
    );
    nodes.set(name, p);
    return p;
  };

  /** Runs `pp-node ARGS` in h1 (with this cluster's secret unless told) and waits for it. */
  const cli = async (args: string[], env: NodeJS.ProcessEnv = { PP_SECRET: SECRET }) => {
    const p = lab.spawn(1, process.execPath, [BIN, ...args], { cwd: ROOT, env });
    const exit = await p.exited;
    return { code: exit.code, stdout: stdoutOf(p).join('\n'), p };
  };

  const tmux = (...args: string[]) => spawnSync('tmux', ['-S', tmuxSock(), ...args], { encoding: 'utf8' });

  /** The pane's command: top, then a shell that says how it ended and keeps the terminal open. */
  const afterwards = (cmd: string) => `${cmd}; echo "top exited $?"; exec sleep 60`;

  /**
   * Runs `top ...args` in h1 in a detached tmux pane of `width` x `height` (then afterwards()), and
   * returns the pane's first capture that `ready` accepts (within 15 s).
   */
  const topInTmux = async (args: string, width: number, height: number, ready: (shot: string) => boolean) => {
    const made = lab.exec(
      1,
      'tmux',
      [
        '-f',
        '/dev/null',
        '-S',
        tmuxSock(),
        'start-server',
        ';',
        'set-option',
        '-g',
        'remain-on-exit',
        'on',
        ';',
        'new-session',
        '-d',
        '-x',
        String(width),
        '-y',
        String(height),
        afterwards(`${process.execPath} ${BIN} top --secret-file ${secretFile} ${args}`),
      ],
      { cwd: ROOT },
    );
    assert.equal(made.status, 0, made.stderr);
    return poll(
      () => {
        const shot = tmux('capture-pane', '-p').stdout;
        return ready(shot) ? shot : undefined;
      },
      15_000,
      () => tmux('capture-pane', '-p').stdout,
    );
  };

  /**
   * After top quit: it exited 0, the normal screen is back (the table gone with the alternate one),
   * the cursor is shown, and the terminal is in its normal mode again (what is typed is echoed).
   */
  const assertRestored = async (width: number) => {
    const shot = await poll(
      () => {
        const s = tmux('capture-pane', '-p').stdout;
        return /top exited \d+/.test(s) ? s : undefined;
      },
      5000,
      () => tmux('capture-pane', '-p').stdout,
    );
    assert.match(shot, /top exited 0/);
    assert.ok(!/^alpha +up/m.test(shot), `the table went with the alternate screen:\n${shot}`);
    assert.equal(tmux('display', '-p', '#{alternate_on} #{cursor_flag}').stdout.trim(), '0 1');
    tmux('send-keys', 'echoed-again');
    await poll(
      () => (tmux('capture-pane', '-p').stdout.includes('echoed-again') ? true : undefined),
      3000,
      () => `cooked mode (echo) back at width ${width}: ${tmux('capture-pane', '-p').stdout}`,
    );
    tmux('kill-server');
  };

  before(async () => {
    capture = await LeakCapture.start({ strict: process.env.CI === 'true' });
    fingerprint = rootFingerprint();
    lab = Lab.create(4, 'ppq');
    dir = mkdtempSync(join(tmpdir(), 'pp-top-'));
    secretFile = join(dir, 'secret');
    writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
    await Promise.all([startNode(2, 'alpha', SECRET), startNode(3, 'beta', SECRET)]);
  });

  after(async () => {
    if (dir) {
      tmux('kill-server');
      rmSync(dir, { recursive: true, force: true });
    }
    await lab?.destroy();
    if (capture) await capture.stop().catch(() => {});
  });

  it('doctor: a healthy lab is all well (exit 0): mDNS answers, both nodes accept the secret', async () => {
    const r = await cli(['doctor', '--json']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.p.dump()}`);
    const report = JSON.parse(r.stdout) as {
      ok: boolean;
      checks: Array<{ check: string; verdict: string; detail: string }>;
    };
    assert.equal(report.ok, true);
    const by = new Map(report.checks.map((c) => [c.check, c]));
    assert.equal(by.get('mDNS interface')?.verdict, 'ok');
    assert.match(by.get('mDNS interface')!.detail, /^lan0/);
    assert.equal(by.get('mDNS answers')?.verdict, 'ok');
    assert.ok(by.get('mDNS answers')!.detail.includes(lab.addr(2)), by.get('mDNS answers')!.detail);
    for (const n of ['alpha', 'beta']) {
      assert.equal(by.get(`node ${n}`)?.verdict, 'ok', JSON.stringify(report.checks));
      assert.match(by.get(`node ${n}`)!.detail, /accepts the secret/);
    }
    assert.equal(by.get('versions')?.verdict, 'ok');
    assert.equal(by.get('clocks')?.verdict, 'ok');
    // And the text report says so too.
    const text = await cli(['doctor', '--secret-file', secretFile], {});
    assert.equal(text.code, 0, text.stdout);
    assert.match(text.stdout, /all is well$/);
    assert.match(text.stdout, /^ok {4}secret +from .*secret \(mode 0600, 64 bytes\)$/m);
  });

  it('top --once (piped): one table with both nodes up and a node with another secret that says so', async () => {
    await startNode(4, 'rogue', ROGUE_SECRET);
    const r = await cli(['top', '--once']);
    assert.equal(r.code, 0, r.p.dump());
    const lines = r.stdout.split('\n');
    assert.equal(lines.length, 5, r.stdout);
    assert.match(lines[0]!, /^NAME +STATE +ADDRESS +CPUS +BUSY +QUEUED +CLIENTS +JOBS\/S/);
    for (const n of ['alpha', 'beta'])
      assert.match(r.stdout, new RegExp(`^${n} +up +10\\.231\\.\\d+\\.\\d:60000 +1 +0`, 'm'));
    assert.match(r.stdout, /^rogue +rejected .*the node rejected this machine's secret/m);
    assert.match(lines[4]!, /^TOTAL +2\/3 up +2 /);
  });

  it('top live in tmux: the table in the alternate screen, fitted to the width; q quits and restores the terminal', async () => {
    const screen = await topInTmux(
      '',
      100,
      20,
      (shot) => /^alpha +up/m.test(shot) && /^beta +up/m.test(shot) && /^rogue +rejected/m.test(shot),
    );
    if (process.env.PP_TOP_CAPTURE) writeFileSync(process.env.PP_TOP_CAPTURE, screen);
    assert.match(screen, /^pp-node top {2}\d\d:\d\d:\d\d {2}3 nodes, 2 up +q: quit$/m);
    for (const l of screen.split('\n')) assert.ok(l.length < 100, `fits 100 columns: ${l}`);
    assert.equal(
      tmux('display', '-p', '#{alternate_on} #{cursor_flag}').stdout.trim(),
      '1 0',
      'alternate screen, cursor hidden',
    );
    // It refreshes: the clock in the title moves on.
    const t1 = /\d\d:\d\d:\d\d/.exec(screen)![0];
    await poll(
      () => (/\d\d:\d\d:\d\d/.exec(tmux('capture-pane', '-p').stdout)?.[0] !== t1 ? true : undefined),
      5000,
      () => 'a second frame',
    );
    tmux('send-keys', 'q');
    await assertRestored(100);
  });

  it('top live: Ctrl-C quits and restores the terminal too (--no-mdns, --nodes)', async () => {
    const screen = await topInTmux(`--no-mdns --nodes ${lab.addr(2)}`, 60, 10, (shot) =>
      /^alpha +up/m.test(shot),
    );
    for (const l of screen.split('\n')) assert.ok(l.length < 60, `fits 60 columns: ${l}`);
    tmux('send-keys', 'C-c');
    await assertRestored(60);
  });

  it('doctor: a broken lab (another secret, a host cut off) exits 1 and says what to do', async () => {
    lab.cut(3);
    try {
      const r = await cli(['doctor', '--json', '--nodes', `${lab.addr(3)}:60000`]);
      assert.equal(r.code, 1, r.stdout);
      const report = JSON.parse(r.stdout) as {
        ok: boolean;
        checks: Array<{ check: string; verdict: string; detail: string; fix?: string }>;
      };
      assert.equal(report.ok, false);
      const by = new Map(report.checks.map((c) => [c.check, c]));
      assert.equal(by.get('node alpha')?.verdict, 'ok');
      const rogue = by.get('node rogue');
      assert.equal(rogue?.verdict, 'fail', JSON.stringify(report.checks));
      assert.match(rogue!.detail, /rejects this machine's secret/);
      assert.match(rogue!.fix!, /copy the cluster's secret file/);
      const cut = by.get(`node ${lab.addr(3)}:60000`);
      assert.equal(cut?.verdict, 'fail', JSON.stringify(report.checks));
      assert.match(cut!.detail, /no answer within 3 s/);
      assert.match(cut!.fix!, /start npx pp-node there/);
    } finally {
      lab.heal(3);
    }
  });

  it('top --json: one document per refresh; a host cut off is down within 3 s and back when healed; a node killed is down at once', async () => {
    const top = lab.spawn(1, process.execPath, [BIN, 'top', '--json'], {
      cwd: ROOT,
      env: { PP_SECRET: SECRET },
    });
    const docs = () =>
      stdoutOf(top).flatMap((l) => {
        try {
          return [JSON.parse(l) as TopDoc];
        } catch {
          return [];
        }
      });
    const stateOf = (d: TopDoc, name: string) => d.nodes.find((n) => n.name === name)?.state;
    await poll(
      () =>
        docs().find(
          (d) =>
            stateOf(d, 'alpha') === 'up' && stateOf(d, 'beta') === 'up' && stateOf(d, 'rogue') === 'rejected',
        ),
      15_000,
      () => `alpha, beta up and rogue rejected\n${stdoutOf(top).slice(-3).join('\n')}\n${top.dump()}`,
    );
    const ok = docs().at(-1)!;
    assert.equal(ok.totals.up, 2);
    assert.equal(ok.totals.cpus, 2);
    assert.equal(ok.nodes.find((n) => n.name === 'alpha')?.status?.ncpus, 1);
    // A host cut off (no close, no goodbye): down once its status does not come within 2 s.
    const cutAt = Date.now();
    lab.cut(3);
    let cutDoc: TopDoc;
    try {
      cutDoc = await poll(
        () => docs().find((d) => Date.parse(d.time) >= cutAt && stateOf(d, 'beta') === 'down'),
        6000,
        () => `beta down after the cut\n${stdoutOf(top).slice(-2).join('\n')}`,
      );
    } finally {
      lab.heal(3);
    }
    assert.ok(Date.parse(cutDoc.time) - cutAt < 4100, `${Date.parse(cutDoc.time) - cutAt} ms`);
    assert.match(cutDoc.nodes.find((n) => n.name === 'beta')!.why ?? '', /no answer within 2 s/);
    assert.equal(stateOf(cutDoc, 'alpha'), 'up');
    // Healed: connected again.
    const healedAt = Date.now();
    await poll(
      () => docs().find((d) => Date.parse(d.time) >= healedAt && stateOf(d, 'beta') === 'up'),
      10_000,
      () => `beta up again after the heal\n${stdoutOf(top).slice(-2).join('\n')}`,
    );
    const killedAt = Date.now();
    nodes.get('beta')!.kill('SIGKILL');
    const down = await poll(
      () => docs().find((d) => Date.parse(d.time) >= killedAt && stateOf(d, 'beta') === 'down'),
      3000,
      () => `beta down\n${stdoutOf(top).slice(-2).join('\n')}`,
    );
    // Marked down in the first or second document after the kill (one a second).
    assert.ok(Date.parse(down.time) - killedAt < 2100, `${Date.parse(down.time) - killedAt} ms`);
    assert.match(down.nodes.find((n) => n.name === 'beta')!.why ?? '', /closed/);
    assert.equal(stateOf(down, 'alpha'), 'up');
    // About one document a second.
    const times = docs().map((d) => Date.parse(d.time));
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.ok(
      gaps.every((g) => g > 500 && g < 3000),
      `gaps ${gaps}`,
    );
    const exit = await top.stop('SIGTERM', 5000);
    assert.equal(exit.code, 0, top.dump());
  });

  it('clean up: nodes stop, no namespace left, no mDNS in the root namespace, no packet on a real interface', async () => {
    for (const [, p] of nodes) if (p.running) await p.stop('SIGTERM', 5000);
    await assertCleanLabExit(lab, fingerprint, capture!);
    capture = undefined;
  });
});
