import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostKey } from '../src/daemon/admission.ts';
import { PPError } from '../src/errors.ts';
import { HandshakeLimiter, LIMITER_DEFAULTS } from '../src/protocol/rate-limit.ts';

function clock(start = 1_000_000) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

/** HELLOs accepted (answered, at once or late) when `keyOf(i)` sends one every `everyMs` for `forMs`. */
function attack(
  l: HandshakeLimiter,
  c: ReturnType<typeof clock>,
  keyOf: (i: number) => string,
  everyMs: number,
  forMs: number,
) {
  let accepted = 0;
  let refused = 0;
  for (let i = 0; i * everyMs < forMs; i++) {
    if (l.hello(keyOf(i)).retryAfterMs === undefined) accepted++;
    else refused++;
    c.advance(everyMs);
  }
  return { accepted, refused };
}

describe('HandshakeLimiter', () => {
  it('answers a burst at once, then slows down (answers late), then refuses with the time to retry', () => {
    const c = clock();
    const l = new HandshakeLimiter({ now: c.now });
    const d = LIMITER_DEFAULTS;
    const spacing = 60_000 / d.perMinute;
    for (let i = 0; i < d.burst; i++) assert.deepEqual(l.hello('10.0.0.1'), { delayMs: 0 });
    // The next is not refused: it waits for the bucket to have room.
    assert.deepEqual(l.hello('10.0.0.1'), { delayMs: spacing });
    // One more would wait longer than maxWaitMs: refused, and not counted.
    const r = l.hello('10.0.0.1');
    assert.equal(r.retryAfterMs, 2 * spacing);
    assert.equal(l.waitMs('10.0.0.1'), 2 * spacing);
    assert.ok(l.waitMs('10.0.0.1') > l.maxWaitMs);
    // Another host is not affected.
    assert.deepEqual(l.hello('10.0.0.2'), { delayMs: 0 });
    // The bucket leaks: after one spacing, the wait is one spacing again.
    c.advance(spacing);
    assert.equal(l.waitMs('10.0.0.1'), spacing);
    c.advance(10 * spacing);
    assert.equal(l.waitMs('10.0.0.1'), 0);
  });

  it('a successful handshake gives its count back: clients with the secret never wait', () => {
    const c = clock();
    const l = new HandshakeLimiter({ now: c.now });
    for (let i = 0; i < 1000; i++) {
      assert.deepEqual(l.hello('10.0.0.1'), { delayMs: 0 }, `HELLO ${i}`);
      l.succeeded('10.0.0.1');
    }
  });

  it('one host gets at most burst + perMinute answers a minute, however fast it tries', () => {
    const c = clock();
    const l = new HandshakeLimiter({ now: c.now });
    // 100 tries a second for 10 minutes.
    const { accepted } = attack(l, c, () => '127.0.0.0/8', 10, 600_000);
    const bound =
      LIMITER_DEFAULTS.burst + (10 + LIMITER_DEFAULTS.maxWaitMs / 60_000) * LIMITER_DEFAULTS.perMinute;
    assert.ok(accepted <= bound + 1, `${accepted} answers in 10 minutes, bound ${bound}`);
    assert.ok(accepted >= bound - 2, `${accepted} answers in 10 minutes: slowed, not banned`);
  });

  it('many addresses together get at most globalBurst + globalPerMinute a minute', () => {
    const c = clock();
    const l = new HandshakeLimiter({ now: c.now });
    // A new address for every try, 100 a second for 5 minutes.
    const { accepted } = attack(
      l,
      c,
      (i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      10,
      300_000,
    );
    const d = LIMITER_DEFAULTS;
    const bound = d.globalBurst + (5 + d.maxWaitMs / 60_000) * d.globalPerMinute;
    assert.ok(accepted <= bound + 1, `${accepted} answers in 5 minutes, bound ${bound}`);
  });

  it('a host that authenticated skips the global bucket; its own still applies', () => {
    const c = clock();
    const l = new HandshakeLimiter({ now: c.now });
    l.hello('192.168.1.5');
    l.succeeded('192.168.1.5');
    for (let i = 0; i < 200; i++) l.hello(`10.1.${i >> 8}.${i & 255}`);
    assert.ok(l.hello('10.2.0.1').retryAfterMs !== undefined, 'the global bucket is full');
    assert.deepEqual(l.hello('192.168.1.5'), { delayMs: 0 });
    for (let i = 0; i < LIMITER_DEFAULTS.burst; i++) l.hello('192.168.1.5');
    assert.ok(l.hello('192.168.1.5').retryAfterMs !== undefined, 'its own bucket still counts');
  });

  it('10,001 other addresses cannot erase what a host owes', () => {
    const c = clock();
    // The global bucket out of the way, so that every address is recorded.
    const l = new HandshakeLimiter({ now: c.now, globalBurst: 1e9, maxTracked: 10_000 });
    for (let i = 0; i < 20; i++) l.hello('10.0.0.1');
    const owed = l.waitMs('10.0.0.1');
    assert.ok(owed > l.maxWaitMs);
    for (let i = 0; i < 10_001; i++) l.hello(`10.9.${i >> 8}.${i & 255}`);
    assert.ok(l.size <= 10_000);
    assert.equal(l.waitMs('10.0.0.1'), owed, 'still owed');
    // Hosts whose buckets emptied are forgotten first, to make room.
    c.advance(60_000);
    l.hello('10.8.0.1');
    assert.ok(l.size <= 10_000);
    assert.equal(l.waitMs('10.8.0.1'), 0);
  });

  it('checking a host does not allocate a record; a refused HELLO of a new host neither', () => {
    const c = clock();
    const l = new HandshakeLimiter({ now: c.now, globalBurst: 1, maxWaitMs: 100 });
    assert.equal(l.waitMs('10.0.0.1'), 0);
    assert.equal(l.size, 0);
    assert.deepEqual(l.hello('10.0.0.1'), { delayMs: 0 });
    assert.equal(l.size, 1);
    assert.equal(l.hello('10.0.0.2').retryAfterMs, 500); // the global bucket is full
    assert.equal(l.size, 1);
  });

  it('rejects nonsense options', () => {
    assert.throws(() => new HandshakeLimiter({ burst: 0 }), PPError);
    assert.throws(() => new HandshakeLimiter({ perMinute: Number.NaN }), PPError);
    assert.throws(() => new HandshakeLimiter({ maxTracked: 1.5 }), PPError);
    assert.throws(() => new HandshakeLimiter({ maxWaitMs: -1 }), PPError);
  });
});

describe('hostKey', () => {
  it('counts every 127.x.y.z as one host, other IPv4 addresses each, and IPv6 by /64', () => {
    assert.equal(hostKey('127.0.0.1'), '127.0.0.0/8');
    assert.equal(hostKey('127.3.2.1'), '127.0.0.0/8');
    assert.equal(hostKey('::ffff:127.0.0.9'), '127.0.0.0/8');
    assert.equal(hostKey('192.168.1.20'), '192.168.1.20');
    assert.equal(hostKey('192.168.1.21'), '192.168.1.21');
    assert.equal(hostKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(hostKey('2001:db8:1:2::9'), '2001:db8:1:2::/64');
  });
});
