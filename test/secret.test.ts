import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { PPError } from '../src/errors.ts';
import { defaultSecretPath, resolveSecret, SecretError } from '../src/secret.ts';
import { secretWeakness } from '../src/secret-strength.ts';

// Every test works in its own temporary HOME and passes `env` explicitly: the real ~/.config and
// process.env are never read or written.
const root = mkdtempSync(join(tmpdir(), 'pp-node-secret-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
function home(): { dir: string; env: NodeJS.ProcessEnv; path: string } {
  const dir = join(root, `home-${n++}`);
  mkdirSync(dir);
  const env = { HOME: dir };
  return { dir, env, path: join(dir, '.config', 'pp-node', 'secret') };
}

function writeSecret(path: string, text: string, mode = 0o600): void {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o700 });
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
}

/**
 * Every way of reading the secret (found by PP_SECRET's absence, named, or about to be created)
 * refuses the file at `h.path` with a SecretError that names it and passes `check`.
 */
function refusedEveryWay(h: ReturnType<typeof home>, check: (message: string) => void): void {
  for (const opts of [{ env: h.env }, { secretFile: h.path, env: h.env }, { env: h.env, create: true }]) {
    assert.throws(
      () => resolveSecret(opts),
      (e: Error) => {
        assert.ok(e instanceof SecretError, String(e));
        assert.ok(e.message.includes(h.path), e.message);
        check(e.message);
        return true;
      },
    );
  }
}

/** Reading the secret at `h.path`, found or named, is refused for its directory `dir`. */
function refusedForDirectory(
  h: ReturnType<typeof home>,
  dir: string,
  check: (message: string) => void,
): void {
  for (const opts of [{ env: h.env }, { secretFile: h.path, env: h.env }]) {
    assert.throws(
      () => resolveSecret(opts),
      (e: Error) => {
        assert.ok(e instanceof SecretError, String(e));
        assert.ok(e.message.includes(`directory ${dir}`), e.message);
        check(e.message);
        return true;
      },
    );
  }
}

const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');

describe('secret', () => {
  it('default path: XDG_CONFIG_HOME when absolute, else ~/.config', () => {
    assert.equal(defaultSecretPath({ HOME: '/home/ann' }), '/home/ann/.config/pp-node/secret');
    assert.equal(
      defaultSecretPath({ HOME: '/home/ann', XDG_CONFIG_HOME: '/xdg/conf' }),
      '/xdg/conf/pp-node/secret',
    );
    assert.equal(
      defaultSecretPath({ HOME: '/home/ann', XDG_CONFIG_HOME: 'relative/conf' }),
      '/home/ann/.config/pp-node/secret',
    );
    assert.equal(
      defaultSecretPath({ HOME: '/home/ann', XDG_CONFIG_HOME: '' }),
      '/home/ann/.config/pp-node/secret',
    );
  });

  it('sources in order: option, secretFile, PP_SECRET, default file', () => {
    const h = home();
    writeSecret(h.path, 'from-default-file\n');
    const file = join(h.dir, 'custom-secret');
    writeSecret(file, 'from-secret-file\n');
    const env = { ...h.env, PP_SECRET: 'from-env' };

    let r = resolveSecret({ secret: 'from-option', secretFile: file, env });
    assert.deepEqual([text(r.secret), r.source, r.created], ['from-option', 'option', false]);
    r = resolveSecret({ secretFile: file, env });
    assert.deepEqual([text(r.secret), r.source], ['from-secret-file', file]);
    r = resolveSecret({ env });
    assert.deepEqual([text(r.secret), r.source], ['from-env', 'PP_SECRET']);
    r = resolveSecret({ env: h.env });
    assert.deepEqual([text(r.secret), r.source, r.created], ['from-default-file', h.path, false]);
    r = resolveSecret({ secret: new Uint8Array([1, 2, 3, 0x0a]), env });
    assert.deepEqual([...r.secret], [1, 2, 3]);
  });

  it('gives the same bytes for a file and the same text in PP_SECRET or the option', () => {
    const h = home();
    writeSecret(h.path, 'shared secret value\r\n');
    const fromFile = resolveSecret({ env: h.env }).secret;
    assert.deepEqual(resolveSecret({ env: { ...h.env, PP_SECRET: 'shared secret value' } }).secret, fromFile);
    assert.deepEqual(resolveSecret({ secret: 'shared secret value\n' }).secret, fromFile);
    assert.deepEqual(resolveSecret({ secret: readFileSync(h.path) }).secret, fromFile);
  });

  it('refuses empty and whitespace-only secrets from every source, saying what to do', () => {
    const h = home();
    for (const secret of ['', ' ', '\n', ' \t\r\n', new Uint8Array(0), Buffer.from(' \n')]) {
      assert.throws(
        () => resolveSecret({ secret, env: h.env }),
        (e: Error) => {
          assert.ok(e instanceof PPError && e instanceof SecretError);
          assert.match(e.message, /`secret` option is empty/);
          assert.match(e.message, /npx pp-node/);
          return true;
        },
      );
    }
    for (const value of ['', '  \n']) {
      assert.throws(() => resolveSecret({ env: { ...h.env, PP_SECRET: value } }), /PP_SECRET is empty/);
    }
    for (const content of ['', '\n', '   \n\n']) {
      writeSecret(h.path, content);
      assert.throws(
        () => resolveSecret({ env: h.env }),
        (e: Error) => {
          assert.ok(e instanceof SecretError);
          assert.ok(e.message.includes(h.path));
          assert.match(e.message, /empty/);
          return true;
        },
      );
      assert.throws(() => resolveSecret({ secretFile: h.path, env: h.env }), /empty/);
      // An existing empty default file is never silently replaced.
      assert.throws(() => resolveSecret({ env: h.env, create: true }), /empty/);
    }
  });

  it('refuses a secret file readable or writable by group or others', () => {
    const h = home();
    for (const mode of [0o644, 0o640, 0o604, 0o660, 0o602]) {
      writeSecret(h.path, 'a fine secret\n', mode);
      assert.throws(
        () => resolveSecret({ env: h.env }),
        (e: Error) => {
          assert.ok(e instanceof SecretError);
          assert.ok(e.message.includes(`chmod 600 ${h.path}`), e.message);
          return true;
        },
      );
      assert.throws(() => resolveSecret({ secretFile: h.path, env: h.env }), /chmod 600/);
    }
    chmodSync(h.path, 0o400);
    assert.equal(text(resolveSecret({ env: h.env }).secret), 'a fine secret');
  });

  const posix = process.platform !== 'win32';
  const isRoot = posix && process.geteuid?.() === 0;
  /** A user that is not us: `nobody` (65534) when we are root, else skip (only root can chown). */
  function otherUser(t: TestContext): number | null {
    if (!isRoot) {
      t.skip('changing a file owner needs root');
      return null;
    }
    return 65534;
  }

  it('refuses a symbolic link at the secret path (O_NOFOLLOW), saying what to do', (t) => {
    if (!posix) return t.skip('POSIX symlinks');
    const h = home();
    const real = join(h.dir, 'real-secret');
    writeSecret(real, 'a fine secret\n');
    mkdirSync(join(h.path, '..'), { recursive: true, mode: 0o700 });
    symlinkSync(real, h.path);
    refusedEveryWay(h, (message) => {
      assert.match(message, /symbolic link/);
      assert.match(message, /replace the link/);
    });
    // A link to a directory above the file (a dotfiles setup) is fine: only the file itself must not be one.
    const h2 = home();
    const realConfig = join(h2.dir, 'dotfiles-config');
    writeSecret(join(realConfig, 'pp-node', 'secret'), 'linked dir secret\n');
    symlinkSync(realConfig, join(h2.dir, '.config'));
    assert.equal(text(resolveSecret({ env: h2.env }).secret), 'linked dir secret');
  });

  it('refuses a FIFO at the secret path at once instead of hanging (O_NONBLOCK)', (t) => {
    if (!posix) return t.skip('POSIX FIFOs');
    const h = home();
    mkdirSync(join(h.path, '..'), { recursive: true, mode: 0o700 });
    execFileSync('mkfifo', ['-m', '600', h.path]);
    // In a child with a deadline: a blocking open() on a FIFO would hang this whole process.
    const moduleUrl = new URL('../src/secret.ts', import.meta.url).href;
    const code = `
      import { resolveSecret } from ${JSON.stringify(moduleUrl)};
      for (const opts of [{}, { secretFile: ${JSON.stringify(h.path)} }]) {
        try { resolveSecret({ ...opts, env: { HOME: ${JSON.stringify(h.dir)} } }); console.log('accepted'); }
        catch (e) { console.log(e.name + ': ' + e.message); }
      }
    `;
    const started = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      encoding: 'utf8',
      timeout: 10_000,
      killSignal: 'SIGKILL',
    });
    assert.equal(r.signal, null, `resolveSecret hung on a FIFO (killed after ${Date.now() - started} ms)`);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 2, r.stdout + r.stderr);
    for (const line of lines) {
      assert.ok(line.startsWith('SecretError: '), line);
      assert.ok(line.includes(h.path), line);
      assert.match(line, /not a regular file/);
    }
  });

  it('refuses a secret file owned by another user, saying to chown it', (t) => {
    const other = otherUser(t);
    if (other === null) return;
    const h = home();
    writeSecret(h.path, 'a fine secret\n');
    chownSync(h.path, other, other);
    refusedEveryWay(h, (message) => {
      assert.match(message, /owned by uid 65534/);
      assert.ok(message.includes(`chown ${process.geteuid!()} ${h.path}`), message);
    });
    chownSync(h.path, process.geteuid!(), process.getegid!());
    assert.equal(text(resolveSecret({ env: h.env }).secret), 'a fine secret');
  });

  it('refuses a secret file in a directory owned by another user', (t) => {
    const other = otherUser(t);
    if (other === null) return;
    const h = home();
    writeSecret(h.path, 'a fine secret\n');
    const dir = join(h.path, '..');
    chownSync(dir, other, other);
    refusedForDirectory(h, dir, (message) => {
      assert.match(message, /owned by uid 65534/);
      assert.ok(message.includes(`chown ${process.geteuid!()} ${dir}`), message);
    });
    // Nothing is created in such a directory either.
    const h2 = home();
    mkdirSync(join(h2.path, '..'), { recursive: true, mode: 0o700 });
    chownSync(join(h2.path, '..'), other, other);
    assert.throws(() => resolveSecret({ env: h2.env, create: true }), /owned by uid 65534/);
    assert.deepEqual(readdirSync(join(h2.path, '..')), []);
  });

  it('refuses a secret file in a directory writable by group or others, saying chmod go-w', (t) => {
    if (!posix) return t.skip('POSIX modes');
    for (const mode of [0o777, 0o770, 0o730, 0o703, 0o1777]) {
      const h = home();
      writeSecret(h.path, 'a fine secret\n');
      const dir = join(h.path, '..');
      chmodSync(dir, mode);
      refusedForDirectory(h, dir, (message) => {
        assert.match(message, /writable by group or others/);
        assert.ok(message.includes(`chmod go-w ${dir}`), message);
      });
      // ... and no secret is created in one.
      rmSync(h.path);
      assert.throws(() => resolveSecret({ env: h.env, create: true }), /writable by group or others/);
      assert.deepEqual(readdirSync(dir), [], `mode ${mode.toString(8)}`);
      chmodSync(dir, 0o755);
      assert.equal(resolveSecret({ env: h.env, create: true }).created, true);
    }
  });

  it('refuses a missing secretFile, a directory, and a huge file, naming the path', () => {
    const h = home();
    const missing = join(h.dir, 'nope');
    assert.throws(
      () => resolveSecret({ secretFile: missing, env: h.env }),
      (e: Error) => {
        assert.ok(e instanceof SecretError);
        assert.ok(e.message.includes(missing));
        assert.match(e.message, /does not exist/);
        return true;
      },
    );
    const dir = join(h.dir, 'a-dir');
    mkdirSync(dir, { mode: 0o700 });
    assert.throws(() => resolveSecret({ secretFile: dir, env: h.env }), /not a regular file/);
    const big = join(h.dir, 'big');
    writeSecret(big, 'x'.repeat(100_000));
    assert.throws(() => resolveSecret({ secretFile: big, env: h.env }), /larger than/);
  });

  it('without any secret and without create, says how to get one', () => {
    const h = home();
    assert.throws(
      () => resolveSecret({ env: h.env }),
      (e: Error) => {
        assert.ok(e instanceof SecretError);
        assert.equal(
          e.message,
          `no secret: run \`npx pp-node\` once on this machine to create ${h.path}, then copy that file to every machine of the cluster (keep it mode 600), or set PP_SECRET`,
        );
        return true;
      },
    );
    assert.throws(() => statSync(h.path), /ENOENT/);
  });

  it('creates the default file: 0700 directory, 0600 file, 64 hex chars and a newline', () => {
    const h = home();
    const r = resolveSecret({ env: h.env, create: true });
    assert.equal(r.created, true);
    assert.equal(r.source, h.path);
    const content = readFileSync(h.path, 'utf8');
    assert.match(content, /^[0-9a-f]{64}\n$/);
    assert.equal(text(r.secret), content.trim());
    assert.equal(r.secret.length, 64);
    assert.equal(statSync(h.path).mode & 0o777, 0o600);
    assert.equal(statSync(join(h.path, '..')).mode & 0o777, 0o700);
    assert.equal(secretWeakness(r.secret), null);
    // Only the secret is left in the directory (no temporary files).
    assert.deepEqual(readdirSync(join(h.path, '..')), ['secret']);
    const again = resolveSecret({ env: h.env, create: true });
    assert.equal(again.created, false);
    assert.deepEqual(again.secret, r.secret);
  });

  it('creates under XDG_CONFIG_HOME when set', () => {
    const h = home();
    const xdg = join(h.dir, 'xdg');
    const r = resolveSecret({ env: { ...h.env, XDG_CONFIG_HOME: xdg }, create: true });
    assert.equal(r.source, join(xdg, 'pp-node', 'secret'));
    assert.equal(r.created, true);
    assert.throws(() => statSync(h.path), /ENOENT/);
  });

  it('create does not override a secret from another source', () => {
    const h = home();
    const r = resolveSecret({ env: { ...h.env, PP_SECRET: 'env secret' }, create: true });
    assert.equal(r.source, 'PP_SECRET');
    assert.throws(() => statSync(h.path), /ENOENT/);
  });

  it('processes racing to create the file all end up with the same secret', async () => {
    const moduleUrl = new URL('../src/secret.ts', import.meta.url).href;
    // Three rounds, each in a new HOME, run by the same four processes (started once).
    const homes = [home(), home(), home()];
    const startAt = Date.now() + 2000;
    // Each child spins until the same instant, then creates: as close to a real race as we can get.
    const code = `
      import { resolveSecret } from ${JSON.stringify(moduleUrl)};
      const homes = ${JSON.stringify(homes.map((h) => h.dir))};
      const out = [];
      for (let round = 0; round < homes.length; round++) {
        while (Date.now() < ${startAt} + round * 250) {}
        const r = resolveSecret({ env: { HOME: homes[round] }, create: true });
        out.push({ secret: Buffer.from(r.secret).toString(), created: r.created });
      }
      console.log(JSON.stringify(out));
    `;
    const runs = await Promise.all(
      Array.from(
        { length: 4 },
        () =>
          new Promise<Array<{ secret: string; created: boolean }>>((resolve, reject) => {
            const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
              stdio: ['ignore', 'pipe', 'inherit'],
            });
            let out = '';
            child.stdout.on('data', (d) => {
              out += d;
            });
            child.on('error', reject);
            child.on('exit', (status) => {
              if (status === 0) resolve(JSON.parse(out));
              else reject(new Error(`child exited with ${status}`));
            });
          }),
      ),
    );
    homes.forEach((h, round) => {
      const secrets = new Set(runs.map((r) => r[round]!.secret));
      assert.equal(secrets.size, 1, `round ${round}: different secrets ${[...secrets]}`);
      assert.equal(runs.filter((r) => r[round]!.created).length, 1, `round ${round}: exactly one creator`);
      assert.equal(readFileSync(h.path, 'utf8'), `${[...secrets][0]}\n`);
    });
  });
});
