import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PPError } from '../src/errors.ts';
import { FailureLimiter } from '../src/protocol/rate-limit.ts';

function clock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

describe('FailureLimiter', () => {
  it('bans after maxFailures failures within the window, and lifts the ban after banMs', () => {
    const c = clock();
    const l = new FailureLimiter({ maxFailures: 3, windowMs: 10_000, banMs: 30_000, now: c.now });
    assert.ok(l.allowed('10.0.0.1'));
    l.failed('10.0.0.1');
    c.advance(1000);
    l.failed('10.0.0.1');
    assert.ok(l.allowed('10.0.0.1'));
    assert.equal(l.retryAfterMs('10.0.0.1'), 0);
    c.advance(1000);
    l.failed('10.0.0.1');
    assert.equal(l.allowed('10.0.0.1'), false);
    assert.equal(l.retryAfterMs('10.0.0.1'), 30_000);
    // Other peers are unaffected.
    assert.ok(l.allowed('10.0.0.2'));
    c.advance(29_999);
    assert.equal(l.allowed('10.0.0.1'), false);
    assert.equal(l.retryAfterMs('10.0.0.1'), 1);
    c.advance(1);
    assert.ok(l.allowed('10.0.0.1'));
    assert.equal(l.retryAfterMs('10.0.0.1'), 0);
    // After a ban the count starts again.
    l.failed('10.0.0.1');
    assert.ok(l.allowed('10.0.0.1'));
  });

  it('forgets failures older than the window', () => {
    const c = clock();
    const l = new FailureLimiter({ maxFailures: 3, windowMs: 10_000, banMs: 30_000, now: c.now });
    l.failed('p');
    l.failed('p');
    c.advance(10_001);
    l.failed('p');
    assert.ok(l.allowed('p'), 'only one failure is inside the window');
    l.failed('p');
    assert.ok(l.allowed('p'));
    l.failed('p');
    assert.equal(l.allowed('p'), false);
  });

  it('uses the documented defaults (5 failures / 60 s, 60 s ban)', () => {
    const c = clock();
    const l = new FailureLimiter({ now: c.now });
    for (let i = 0; i < 4; i++) l.failed('p');
    assert.ok(l.allowed('p'));
    l.failed('p');
    assert.equal(l.allowed('p'), false);
    assert.equal(l.retryAfterMs('p'), 60_000);
  });

  it('a success resets the count', () => {
    const c = clock();
    const l = new FailureLimiter({ maxFailures: 3, now: c.now });
    l.failed('p');
    l.failed('p');
    l.succeeded('p');
    l.failed('p');
    l.failed('p');
    assert.ok(l.allowed('p'));
    assert.equal(l.size, 1);
    l.succeeded('p');
    assert.equal(l.size, 0);
  });

  it('bounds memory, forgetting the stalest peers first', () => {
    const c = clock();
    const l = new FailureLimiter({ maxFailures: 2, maxTracked: 100, now: c.now });
    l.failed('banned');
    l.failed('banned');
    assert.equal(l.allowed('banned'), false);
    for (let i = 0; i < 99; i++) l.failed(`peer-${i}`);
    assert.equal(l.size, 100);
    assert.equal(l.allowed('banned'), false);
    for (let i = 99; i < 10_000; i++) {
      c.advance(1);
      l.failed(`peer-${i}`);
      assert.ok(l.size <= 100);
    }
    assert.equal(l.size, 100);
    // The flood pushed the oldest record out; the newest are kept.
    assert.ok(l.allowed('banned'));
    l.failed('peer-9999');
    assert.equal(l.allowed('peer-9999'), false);
  });

  it('drops records once they are stale', () => {
    const c = clock();
    const l = new FailureLimiter({ maxFailures: 5, windowMs: 1000, banMs: 1000, now: c.now });
    for (let i = 0; i < 50; i++) l.failed(`p${i}`);
    assert.equal(l.size, 50);
    c.advance(5000);
    l.failed('fresh');
    assert.equal(l.size, 1);
  });

  it('checking a peer does not allocate a record', () => {
    const l = new FailureLimiter();
    for (let i = 0; i < 1000; i++) {
      l.allowed(`p${i}`);
      l.retryAfterMs(`p${i}`);
    }
    assert.equal(l.size, 0);
  });

  it('rejects nonsense options', () => {
    assert.throws(() => new FailureLimiter({ maxFailures: 0 }), PPError);
    assert.throws(() => new FailureLimiter({ windowMs: Number.NaN }), PPError);
    assert.throws(() => new FailureLimiter({ maxTracked: 1.5 }), PPError);
    assert.throws(() => new FailureLimiter({ banMs: -1 }), PPError);
  });
});
