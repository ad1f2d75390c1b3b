import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff } from '../src/backoff.ts';

test('Backoff doubles from the first wait up to the largest, and starts over on reset', () => {
  const b = new Backoff(1000, 30_000);
  assert.deepEqual(
    Array.from({ length: 7 }, () => b.next()),
    [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000],
  );
  b.reset();
  assert.equal(b.next(), 1000);
  assert.equal(new Backoff(250, 100).next(), 100, 'the first wait is capped too');
});

test('Backoff.atLeast raises the next wait, and later waits grow from it', () => {
  const b = new Backoff(250, 30_000);
  b.atLeast(5000);
  assert.deepEqual([b.next(), b.next()], [5000, 10_000]);
  b.atLeast(5000); // already past it: no change
  assert.equal(b.next(), 20_000);
  const capped = new Backoff(250, 3000);
  capped.atLeast(5000);
  assert.equal(capped.next(), 3000);
});

test('Backoff jitter spreads each wait within ± the fraction', () => {
  const b = new Backoff(1000, 1000, 0.25);
  const waits = Array.from({ length: 200 }, () => b.next());
  for (const w of waits) assert.ok(w >= 750 && w <= 1250, `${w} outside 750..1250`);
  assert.ok(new Set(waits).size > 1, 'jitter varies the waits');
});
