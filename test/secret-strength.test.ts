import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Server } from '../src/index.ts';
import {
  checkSecretStrength,
  estimateSecretBits,
  generateSecret,
  MIN_SECRET_BITS,
  secretWeakness,
  WeakSecretError,
} from '../src/secret-strength.ts';

const bytes = (s: string) => Buffer.from(s, 'utf8');

test('weak: under 16 bytes, or an estimate under 80 bits (runs, repeats and hex-only count for what they are)', () => {
  for (const weak of [
    'hunter2',
    'Tr0ub4dor&3',
    'x'.repeat(64), // one character
    'abcdefghijklmnopqrstuvwxyz', // a run
    '0123456789abcdef0123456789abcdef', // runs
    'hunter2hunter2hunter2hunter2', // a repeated whole
    '0f3a9c2e7b1d4f6a8c', // 18 hex characters: 72 bits
    'aaaaaaaaaaaaaaaaaaaab',
  ]) {
    assert.ok(
      secretWeakness(bytes(weak)),
      `${weak} is weak (${estimateSecretBits(bytes(weak)).toFixed(0)} bits)`,
    );
  }
  for (const strong of [
    generateSecret(),
    '3f9a1c7e5b2d8f4a6c0e9b3d', // 24 hex characters: 96 bits
    'k8Qz!m2Wp#x7Lr4V', // 16 random printable characters
    'test-secret-0123456789abcdef0123456789',
    'a test secret of some length',
  ]) {
    assert.equal(
      secretWeakness(bytes(strong)),
      null,
      `${strong} (${estimateSecretBits(bytes(strong)).toFixed(0)} bits)`,
    );
  }
  assert.equal(estimateSecretBits(bytes(generateSecret().replace(/./g, '7'))), 4);
  // 64 random hex characters: about 208 bits by the estimate (3 in 16 steps look like runs).
  for (let i = 0; i < 100; i++) assert.ok(estimateSecretBits(bytes(generateSecret())) >= 128);
});

test('checkSecretStrength: refuses with a way out, or warns when allowed', () => {
  const opts = { source: 'PP_SECRET', allowHow: 'pass `allowWeakSecret: true`' };
  assert.equal(checkSecretStrength(bytes(generateSecret()), opts), null);
  assert.throws(
    () => checkSecretStrength(bytes('hunter2'), opts),
    (e: Error) =>
      e instanceof WeakSecretError &&
      /PP_SECRET/.test(e.message) &&
      /npx pp-node secret/.test(e.message) &&
      /allowWeakSecret: true/.test(e.message) &&
      e.message.includes(`${MIN_SECRET_BITS}+ bits`),
  );
  assert.match(checkSecretStrength(bytes('hunter2'), { ...opts, allowWeak: true })!, /is weak/);
});

test('a client Server refuses a weak secret for remote nodes unless allowWeakSecret', async () => {
  assert.throws(
    () => new Server({ ncpus: 0, ppservers: ['127.0.0.1:9'], secret: 'hunter2' }),
    WeakSecretError,
  );
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  const server = new Server({
    ncpus: 0,
    ppservers: ['127.0.0.1:9'],
    secret: 'hunter2',
    allowWeakSecret: true,
  });
  await server.close();
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarning);
  assert.ok(
    warnings.some((w) => /is weak/.test(w)),
    JSON.stringify(warnings),
  );
  // Local only: no secret is used, none is checked.
  const local = new Server({ ncpus: 1, secret: 'hunter2' });
  await local.close();
});
