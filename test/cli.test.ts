import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { ENVIRONMENT, OPTIONS, parseCli, UsageError } from '../src/cli/args.ts';
import { BIN } from './helpers/nodes.ts';

const run = (...args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, PP_SECRET: 'x'.repeat(32) },
  });

test('--help teaches every option of the parser, each with its example, and every variable read; exits 0', () => {
  const r = run('--help');
  assert.equal(r.status, 0);
  assert.ok(Object.keys(OPTIONS).length >= 15);
  for (const [name, o] of Object.entries(OPTIONS)) {
    assert.ok(r.stdout.includes(`--${name}`), `help mentions --${name}`);
    if (o.example) assert.ok(r.stdout.includes(o.example), `help shows ${o.example}`);
    // Every option the parser takes, and only those: a typo'd table entry would not parse.
    const value = { 'log-level': 'info', 'log-format': 'json' }[name] ?? '1';
    const args = o.type === 'string' ? [`--${name}`, value] : [`--${name}`];
    assert.doesNotThrow(() => parseCli(o.of === 'ls' ? ['ls', ...args] : args), `--${name} parses`);
  }
  for (const v of Object.keys(ENVIRONMENT)) assert.ok(r.stdout.includes(v), `help mentions ${v}`);
  assert.ok(r.stdout.includes('ls'));
});

test('an option of the other command is a clear error, by the table', () => {
  for (const [name, o] of Object.entries(OPTIONS)) {
    if (o.of === 'both') continue;
    const args = o.type === 'string' ? [`--${name}`, '1'] : [`--${name}`];
    const argv = o.of === 'node' ? ['ls', ...args] : args;
    assert.throws(() => parseCli(argv), UsageError, `--${name} outside its command`);
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
      secretFile: undefined,
      name: 'desk',
      idleTimeoutS: 60,
      maxConnections: 1024,
      logLevel: 'info',
      logFormat: 'json',
      announce: false,
      interface: undefined,
    },
  );
  assert.deepEqual(parseCli(['ls', '--json'], {}), {
    command: 'ls',
    json: true,
    secretFile: undefined,
    timeoutS: 3,
    interface: undefined,
  });
  assert.throws(() => parseCli(['--port', '70000'], {}), UsageError);
  assert.equal((parseCli(['--max-connections', '50'], {}) as { maxConnections: number }).maxConnections, 50);
  assert.throws(() => parseCli(['--max-connections', '0'], {}), UsageError);
});

test('--idle-timeout stops a node that has no client', () => {
  const started = Date.now();
  const r = spawnSync(
    process.execPath,
    [BIN, '--port', '0', '--bind', '127.0.0.1', '--workers', '1', '--no-announce', '--idle-timeout', '1'],
    {
      encoding: 'utf8',
      env: { ...process.env, PP_SECRET: 'y'.repeat(32) },
      timeout: 20_000,
    },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /no client for 1 s/);
  assert.ok(Date.now() - started < 15_000);
});
