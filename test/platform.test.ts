/**
 * Every per-platform choice (src/platform.ts), for the three platforms: only Linux runs in
 * CI, so this is what checks the Windows and macOS branches. Also the node id kept beside
 * the secret where there is no machine-id (macOS, Windows).
 */
import assert from 'node:assert/strict';
import {
  constants as fsConstants,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { signalsHelp } from '../src/cli/args.ts';
import { machineId, nodeIdPath } from '../src/daemon/identity.ts';
import {
  discoveryHint,
  homeDir,
  listenHint,
  posixPermissions,
  secretOpenFlags,
  statsSignal,
  stopGraceMs,
  stopSignals,
  syncChannelIo,
  unreachableHint,
  workerChannelStdio,
  workerIgnoredSignals,
} from '../src/platform.ts';
import { defaultSecretPath } from '../src/secret.ts';

describe('platform choices', () => {
  test('worker channel: overlapped on Windows, a pipe elsewhere; no synchronous writes on Windows', () => {
    assert.equal(workerChannelStdio('win32'), 'overlapped');
    assert.equal(workerChannelStdio('darwin'), 'pipe');
    assert.equal(workerChannelStdio('linux'), 'pipe');
    assert.equal(syncChannelIo('win32'), false);
    assert.equal(syncChannelIo('darwin'), true);
    assert.equal(syncChannelIo('linux'), true);
  });

  test('signals: SIGHUP stops cleanly everywhere; stats on SIGBREAK on Windows, SIGUSR1 elsewhere', () => {
    for (const p of ['win32', 'darwin', 'linux'] as const) {
      assert.deepEqual(stopSignals(p), ['SIGINT', 'SIGTERM', 'SIGHUP'], p);
      assert.equal(stopGraceMs('SIGINT', p), 10_000, p);
    }
    assert.ok(stopGraceMs('SIGHUP', 'win32') < 10_000, 'within the console-close grace');
    assert.equal(stopGraceMs('SIGHUP', 'linux'), 10_000);
    assert.equal(statsSignal('win32'), 'SIGBREAK');
    assert.equal(statsSignal('darwin'), 'SIGUSR1');
    assert.equal(statsSignal('linux'), 'SIGUSR1');
  });

  test('workers ignore the terminal’s signals, not Ctrl+Z, Ctrl+\\ or SIGTERM', () => {
    assert.deepEqual(workerIgnoredSignals('win32'), ['SIGINT', 'SIGBREAK', 'SIGHUP']);
    for (const p of ['darwin', 'linux'] as const) {
      assert.deepEqual(workerIgnoredSignals(p), ['SIGINT', 'SIGHUP'], p);
      for (const s of ['SIGTSTP', 'SIGQUIT', 'SIGTERM'] as const)
        assert.ok(!workerIgnoredSignals(p).includes(s));
    }
    // The stats signal is never one a worker dies of while the parent prints.
    assert.ok(workerIgnoredSignals('win32').includes(statsSignal('win32')));
  });

  test('--help names each platform’s signals', () => {
    assert.match(signalsHelp('win32'), /closing the console window stop cleanly/);
    assert.match(signalsHelp('win32'), /Ctrl\+Break \(SIGBREAK\) prints/);
    assert.doesNotMatch(signalsHelp('win32'), /SIGUSR1|SIGTERM/);
    for (const p of ['darwin', 'linux'] as const) {
      assert.match(signalsHelp(p), /SIGINT.*SIGTERM.*SIGHUP/s, p);
      assert.match(signalsHelp(p), /SIGUSR1/, p);
      assert.match(signalsHelp(p), /running ones finish/, p);
    }
  });

  test('home: USERPROFILE on Windows even when Git Bash sets HOME; HOME elsewhere; os.homedir() without either', () => {
    const env = { HOME: '/h/gitbash', USERPROFILE: 'C:\\Users\\ann' };
    assert.equal(homeDir(env, 'win32'), 'C:\\Users\\ann');
    assert.equal(homeDir(env, 'darwin'), '/h/gitbash');
    assert.equal(homeDir(env, 'linux'), '/h/gitbash');
    assert.equal(homeDir({}, 'linux'), homedir());
    assert.equal(homeDir({ HOME: '/h/gitbash' }, 'win32'), homedir());
    // The real environment gives exactly os.homedir() (what the secret and node id use).
    assert.equal(homeDir(), homedir());
  });

  test('secret file: owner and mode checked on POSIX only; O_NOFOLLOW | O_NONBLOCK where they exist', () => {
    assert.equal(posixPermissions('win32'), false);
    assert.equal(posixPermissions('darwin'), true);
    assert.equal(posixPermissions('linux'), true);
    // Windows' fs.constants has O_RDONLY but neither O_NOFOLLOW nor O_NONBLOCK.
    assert.deepEqual(secretOpenFlags('win32', { O_RDONLY: 0 }), { flags: 0, noFollow: false });
    assert.deepEqual(secretOpenFlags('win32', fsConstants), { flags: fsConstants.O_RDONLY, noFollow: false });
    const darwin = { O_RDONLY: 0, O_NOFOLLOW: 0x100, O_NONBLOCK: 0x4 }; // macOS's values
    assert.deepEqual(secretOpenFlags('darwin', darwin), { flags: 0x104, noFollow: true });
    const linux = secretOpenFlags('linux', fsConstants);
    assert.equal(linux.noFollow, process.platform !== 'win32');
    if (process.platform !== 'win32') {
      assert.equal(linux.flags & fsConstants.O_NOFOLLOW, fsConstants.O_NOFOLLOW);
      assert.equal(linux.flags & fsConstants.O_NONBLOCK, fsConstants.O_NONBLOCK);
      assert.equal(linux.flags & (fsConstants.O_WRONLY | fsConstants.O_RDWR | fsConstants.O_CREAT), 0);
    }
    // A POSIX system without O_NOFOLLOW falls back to looking first, like Windows.
    assert.deepEqual(secretOpenFlags('linux', { O_RDONLY: 0 }), { flags: 0, noFollow: false });
  });

  test('network hints name the real cause per platform', () => {
    assert.match(unreachableHint('EHOSTUNREACH', 'darwin'), /Local Network/);
    assert.match(
      unreachableHint('EHOSTUNREACH', 'darwin'),
      /System Settings › Privacy & Security › Local Network/,
    );
    assert.doesNotMatch(unreachableHint('ECONNREFUSED', 'darwin'), /Local Network/);
    for (const p of ['win32', 'linux'] as const)
      assert.doesNotMatch(unreachableHint('EHOSTUNREACH', p), /Local Network/);
    for (const p of ['win32', 'darwin', 'linux'] as const)
      assert.match(unreachableHint(undefined, p), /node\.exe/);
    assert.match(discoveryHint('win32'), /Windows Defender Firewall must allow node\.exe \(UDP 5353/);
    assert.match(discoveryHint('darwin'), /Local Network/);
    assert.match(discoveryHint('linux'), /firewalls \(UDP 5353\)/);
    assert.doesNotMatch(discoveryHint('linux'), /node\.exe|Local Network/);
    assert.match(listenHint('EADDRINUSE', 'linux'), /another pp-node/);
    assert.match(listenHint('EACCES', 'win32'), /excludedportrange/);
    assert.equal(listenHint('EOTHER', 'linux'), '');
  });
});

describe('node id', () => {
  const root = mkdtempSync(join(tmpdir(), 'pp-node-id-test-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const home = () => {
    const dir = join(root, `home-${n++}`);
    mkdirSync(dir);
    return { HOME: dir, USERPROFILE: dir };
  };

  test('without a machine-id: a random id, stored once beside the secret (0600), the same ever after', () => {
    const env = home();
    const path = nodeIdPath(env);
    assert.equal(join(path, '..'), join(defaultSecretPath(env), '..'));
    const first = machineId({ env, machineIdPaths: [] });
    assert.match(readFileSync(path, 'utf8'), /^[0-9a-f]{32}\n$/);
    if (process.platform !== 'win32') assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(machineId({ env, machineIdPaths: [] }), first);
    // Another desk of the same hostname gets another id.
    assert.notEqual(machineId({ env: home(), machineIdPaths: [] }), first);
  });

  test('with a machine-id, the id comes from it and no file is written', () => {
    const env = home();
    const file = join(env.HOME, 'machine-id');
    writeFileSync(file, '0123456789abcdef0123456789abcdef\n');
    const a = machineId({ env, machineIdPaths: [file] });
    assert.equal(machineId({ env: home(), machineIdPaths: [file] }), a);
    assert.throws(() => statSync(nodeIdPath(env)), /ENOENT/);
  });
});
