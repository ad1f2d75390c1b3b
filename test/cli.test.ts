import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { test } from 'node:test';
import { ENVIRONMENT, OPTIONS, parseCli, UsageError } from '../src/cli/args.ts';
import { BIN, loopbackNodeArgs, startNode } from './helpers/nodes.ts';
import { pollUntil } from './helpers/poll.ts';

const STRONG = '9f2c4e6a8b0d1f3e5c7a9b1d3f5e7c9a0b2d4f6e8a1c3e5b7d9f0a2c4e6b8d1f';

const run = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PP_SECRET: STRONG },
  });

test('--help teaches every option of the parser, each with its example, and every variable read; exits 0', () => {
  const r = run('--help');
  assert.equal(r.status, 0);
  assert.ok(Object.keys(OPTIONS).length >= 15);
  for (const [name, o] of Object.entries(OPTIONS)) {
    assert.ok(r.stdout.includes(`--${name}`), `help mentions --${name}`);
    if (o.example) assert.ok(r.stdout.includes(o.example), `help shows ${o.example}`);
    // Every option the parser takes, and only those: a typo'd table entry would not parse.
    const value = { 'log-level': 'info', 'log-format': 'json', nodes: '127.0.0.1:7000' }[name] ?? '1';
    const args = o.type === 'string' ? [`--${name}`, value] : [`--${name}`];
    if (name === 'no-mdns') args.push('--nodes', '127.0.0.1:7000'); // it needs them
    const command = o.of[0] === 'node' ? [] : [o.of[0]!];
    assert.doesNotThrow(() => parseCli([...command, ...args]), `--${name} parses`);
  }
  for (const v of Object.keys(ENVIRONMENT)) assert.ok(r.stdout.includes(v), `help mentions ${v}`);
  for (const command of ['ls', 'top', 'doctor', 'secret'])
    assert.ok(r.stdout.includes(`npx pp-node ${command}`), `help mentions ${command}`);
});

test('an option of the other command is a clear error, by the table', () => {
  for (const [name, o] of Object.entries(OPTIONS)) {
    const args = o.type === 'string' ? [`--${name}`, '1'] : [`--${name}`];
    for (const command of ['node', 'ls', 'top', 'doctor'] as const) {
      if (o.of.includes(command)) continue;
      const argv = command === 'node' ? args : [command, ...args];
      assert.throws(() => parseCli(argv), UsageError, `--${name} outside its command (${command})`);
    }
  }
});

test('a bad option is a clear message and exit code 2', () => {
  for (const args of [
    ['--bogus'],
    ['--port', 'abc'],
    ['--workers', '0'],
    ['--log-level', 'loud'],
    ['frobnicate'],
    ['ls', '--port', '1'],
  ]) {
    const r = run(...args);
    assert.equal(r.status, 2, `${args.join(' ')} exits 2`);
    assert.match(r.stderr, /^pp-node: .+\nTry 'npx pp-node --help'\.\n$/);
  }
});

test('parseCli fills defaults and reads every option', () => {
  const c = parseCli(
    [
      '--port',
      '61000',
      '--bind',
      '127.0.0.1',
      '--workers',
      '3',
      '--name',
      'desk',
      '--idle-timeout',
      '60',
      '--log-format',
      'json',
      '--no-announce',
    ],
    {},
  );
  assert.deepEqual(
    { ...c },
    {
      command: 'serve',
      port: 61000,
      bind: '127.0.0.1',
      workers: 3,
      nice: 10,
      secretFile: undefined,
      name: 'desk',
      idleTimeoutS: 60,
      maxConnections: 1024,
      cacheDir: undefined,
      cacheMaxMb: 1024,
      logLevel: 'info',
      logFormat: 'json',
      announce: false,
      interface: undefined,
      allowWeakSecret: false,
    },
  );
  assert.deepEqual(parseCli(['ls', '--json'], {}), {
    command: 'ls',
    json: true,
    secretFile: undefined,
    timeoutS: 3,
    interface: undefined,
    allowWeakSecret: false,
  });
  assert.throws(() => parseCli(['--port', '70000'], {}), UsageError);
  assert.equal((parseCli(['--max-connections', '50'], {}) as { maxConnections: number }).maxConnections, 50);
  const cache = parseCli(['--cache-dir', '/tmp/c', '--cache-max-mb', '64'], {}) as {
    cacheDir: string;
    cacheMaxMb: number;
  };
  assert.deepEqual([cache.cacheDir, cache.cacheMaxMb], ['/tmp/c', 64]);
  assert.throws(() => parseCli(['--cache-max-mb', '0'], {}), /cache-max-mb/);
  assert.throws(() => parseCli(['--max-connections', '0'], {}), UsageError);
  assert.equal((parseCli(['--nice', '0'], {}) as { nice: number }).nice, 0);
  assert.equal((parseCli(['--nice', '19'], {}) as { nice: number }).nice, 19);
  for (const bad of ['-1', '20', 'low']) assert.throws(() => parseCli(['--nice', bad], {}), /--nice/);
});

test('--idle-timeout stops a node that has no client', () => {
  const started = Date.now();
  const r = spawnSync(process.execPath, [BIN, ...loopbackNodeArgs(), '--idle-timeout', '1'], {
    encoding: 'utf8',
    env: { ...process.env, PP_SECRET: STRONG },
    timeout: 20_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /no client for 1 s/);
  assert.ok(Date.now() - started < 15_000);
});

test('`pp-node secret` prints a new 256-bit secret each time, which a node accepts', () => {
  const a = run('secret');
  const b = run('secret');
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stdout, /^[0-9a-f]{64}\n$/);
  assert.notEqual(a.stdout, b.stdout);
  assert.deepEqual(parseCli(['secret'], {}), { command: 'secret' });
  assert.throws(() => parseCli(['secret', '--port', '1'], {}), /not an option of 'secret'/);
});

test('a node refuses a weak secret, saying how to make a strong one, unless --allow-weak-secret', () => {
  const node = (secret: string, ...args: string[]) =>
    spawnSync(process.execPath, [BIN, ...loopbackNodeArgs(), '--idle-timeout', '1', ...args], {
      encoding: 'utf8',
      env: { ...process.env, PP_SECRET: secret },
      timeout: 20_000,
    });
  for (const weak of ['hunter2', 'x'.repeat(32), 'abcdefghijklmnopqrstuvwxyz', '0123456789abcdef0123']) {
    const r = node(weak);
    assert.equal(r.status, 1, `${weak}: ${r.stderr}`);
    assert.match(r.stderr, /too weak/);
    assert.match(r.stderr, /npx pp-node secret/);
    assert.match(r.stderr, /--allow-weak-secret/);
  }
  const allowed = node('hunter2', '--allow-weak-secret');
  assert.equal(allowed.status, 0, allowed.stderr);
  assert.match(allowed.stderr, /is weak/);
  assert.match(allowed.stderr, /pp-node ready/);
  assert.equal(parseCli(['ls', '--allow-weak-secret'], {}).command, 'ls');
});

test('--nice sets the workers’ priority (default 10; 0 leaves them at the node’s own)', {
  skip: process.platform !== 'linux' && 'reads /proc',
}, async () => {
  /** The nice values of the processes whose parent is `ppid` (field 19 of /proc/PID/stat). */
  const childNices = (ppid: number): number[] => {
    const nices: number[] = [];
    for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
      let stat: string;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // from field 3 (state) on
      if (Number(fields[1]) === ppid) nices.push(Number(fields[16]));
    }
    return nices;
  };
  for (const [args, want] of [
    [['--nice', '7'], 7],
    [[], 10],
    [['--nice', '0'], 0],
  ] as const) {
    const node = await startNode({ secret: STRONG, workers: 2, args: [...args] });
    try {
      const pid = node.child.pid!;
      const nices = await pollUntil(
        () => {
          const n = childNices(pid);
          return n.length === 2 ? n : undefined;
        },
        { what: 'two workers' },
      );
      // Workers never run at a higher priority than their node (without root, they cannot).
      const expected = Math.max(want, getPriority(pid));
      assert.deepEqual(nices, [expected, expected], `pp-node ${args.join(' ')}`);
    } finally {
      await node.stop();
    }
  }
});
