// Large arguments through shared memory (src/transport/arena.ts): the allocator alone, the two
// arenas, and the job server end to end, in both isolations, including the paths a crash or
// a full arena takes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fstatSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { WorkerCrashError } from '../src/errors.ts';
import { Server } from '../src/index.ts';
import {
  arenaReader,
  createFileArena,
  createHeapArena,
  createMemoryArena,
  MAX_SHARERS,
  RingAllocator,
} from '../src/transport/arena.ts';
import { pollUntil } from './helpers/poll.ts';

describe('RingAllocator', () => {
  test('hands out aligned blocks in order and reuses them once the oldest are freed', () => {
    const ring = new RingAllocator(1024);
    const a = ring.alloc(100); // 128 bytes
    const b = ring.alloc(300); // 320
    const c = ring.alloc(500); // 512
    assert.deepEqual([a, b, c], [0, 128, 448]);
    assert.equal(ring.alloc(128), -1, 'only 64 bytes left at the end, none before the oldest block');
    ring.free(b);
    assert.equal(ring.alloc(64), 960, 'the end of the ring is still free');
    assert.equal(ring.alloc(64), -1, 'b is free but a, older, is not: nothing to wrap into');
    ring.free(a);
    assert.equal(ring.alloc(400), 0, 'wraps to the start once a and b are both free');
    assert.equal(ring.alloc(64), -1, 'the new block would run into c');
    ring.free(c);
    ring.free(960);
    ring.free(0);
    assert.equal(ring.used, 0);
    assert.equal(ring.alloc(1024), 0, 'an empty ring starts over at 0 with all of its room');
  });

  test('ignores unknown and repeated frees', () => {
    const ring = new RingAllocator(256);
    const a = ring.alloc(64);
    ring.free(a);
    ring.free(a);
    ring.free(12345);
    assert.equal(ring.used, 0);
    assert.equal(ring.alloc(256), 0);
  });

  test('never hands out overlapping live blocks (random workload)', () => {
    const ring = new RingAllocator(64 * 1024);
    const live: Array<[number, number]> = [];
    let seed = 7;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let step = 0; step < 20_000; step++) {
      if (live.length > 0 && rand() < 0.5) {
        // Free mostly the oldest, sometimes one out of order.
        const i = rand() < 0.8 ? 0 : Math.floor(rand() * live.length);
        ring.free(live.splice(i, 1)[0]![0]);
        continue;
      }
      const n = 1 + Math.floor(rand() * 9000);
      const start = ring.alloc(n);
      if (start < 0) continue;
      const end = start + Math.ceil(n / 64) * 64;
      assert.ok(end <= ring.capacity, 'inside the ring');
      for (const [s, e] of live)
        assert.ok(end <= s || start >= e, `[${start}, ${end}) overlaps [${s}, ${e})`);
      live.push([start, end]);
    }
  });
});

describe('shared arenas', () => {
  const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

  for (const [kind, make] of [
    ['file (/dev/shm)', () => createFileArena()],
    ['memory (SharedArrayBuffer)', () => createMemoryArena(1024 * 1024)],
  ] as const) {
    test(`${kind}: stores parts, reads them back, frees them`, () => {
      const arena = make();
      assert.ok(arena, 'this machine has /dev/shm');
      const parts = [bytes(70_000, 1), bytes(100_000, 2)];
      const slots = arena.store(parts)!;
      assert.equal(slots.length, 2);
      const read = arenaReader(arena.handle!);
      for (const [i, s] of slots.entries()) {
        assert.deepEqual(new Uint8Array(read(s.offset, s.length)), parts[i]);
        assert.deepEqual(arena.read(s), parts[i]);
      }
      arena.free(slots);
      assert.equal(arena.used, 0);
      arena.close();
      assert.equal(arena.store(parts), null, 'a closed arena stores nothing');
    });
  }

  for (const [kind, make] of [
    ['file (/dev/shm)', () => createFileArena()],
    ['memory (SharedArrayBuffer)', () => createMemoryArena(4 * 1024 * 1024)],
    ['heap', () => createHeapArena(4 * 1024 * 1024)],
  ] as const) {
    test(`${kind}: the same unchanged bytes from the same memory share one slot until all free it`, () => {
      const arena = make()!;
      const data = bytes(100_000, 9);
      const first = arena.store([data])!;
      const used = arena.used;
      const second = arena.store([data])!;
      assert.equal(second[0]!.offset, first[0]!.offset, 'shared');
      assert.equal(arena.used, used, 'no new space');
      data[99_999]! ^= 1; // changed while shared
      const changed = arena.store([data])!;
      assert.notEqual(changed[0]!.offset, first[0]!.offset);
      assert.deepEqual(arena.read(changed[0]!), data);
      data[99_999]! ^= 1;
      arena.free(changed);
      arena.free(first);
      assert.equal(arena.used, used, 'still held by the second job');
      assert.deepEqual(arena.read(second[0]!), data);
      arena.free(second);
      assert.equal(arena.used, 0);
      const third = arena.store([data])!;
      assert.deepEqual(arena.read(third[0]!), data, 'a freed slot is never shared: stored afresh');
      arena.free(third);
      arena.close();
    });

    test(`${kind}: changed bytes, another view of the memory, or equal bytes elsewhere are not shared`, () => {
      const arena = make()!;
      const memory = bytes(200_000, 10);
      const whole = arena.store([memory])!;
      memory[150_000]! ^= 1;
      const changed = arena.store([memory])!;
      assert.notEqual(changed[0]!.offset, whole[0]!.offset);
      assert.deepEqual(arena.read(changed[0]!), memory);
      memory[150_000]! ^= 1;
      assert.deepEqual(arena.read(whole[0]!), memory, 'the first copy kept the bytes of its time');
      const half = arena.store([memory.subarray(0, 100_000)])!;
      const twin = arena.store([memory.slice()])!;
      const offsets = new Set([whole, changed, half, twin].map((s) => s[0]!.offset));
      assert.equal(offsets.size, 4);
      arena.free([...whole, ...changed, ...half, ...twin]);
      assert.equal(arena.used, 0);
      arena.close();
    });

    test(`${kind}: a slot is shared by at most MAX_SHARERS jobs`, () => {
      const arena = make()!;
      const data = bytes(70_000, 11);
      const stores = Array.from({ length: MAX_SHARERS + 1 }, () => arena.store([data])!);
      const offsets = new Set(stores.map((s) => s[0]!.offset));
      assert.equal(offsets.size, 2, `${MAX_SHARERS} share the first, the next one gets its own`);
      for (const s of stores) arena.free(s);
      assert.equal(arena.used, 0);
      arena.close();
    });
  }

  // Arenas small enough to overflow in a test (a file arena takes a quarter of /dev/shm).
  for (const [kind, make] of [
    ['memory (SharedArrayBuffer)', () => createMemoryArena(4 * 1024 * 1024)],
    ['heap', () => createHeapArena(4 * 1024 * 1024)],
  ] as const) {
    test(`${kind}: a store that fails takes back its shares too`, () => {
      const arena = make()!;
      const data = bytes(70_000, 13);
      const first = arena.store([data])!;
      const tooBig = new Uint8Array(5 * 1024 * 1024); // more than the whole arena: every store of it fails
      for (let i = 0; i < MAX_SHARERS + 5; i++) assert.equal(arena.store([data, tooBig]), null);
      const more = Array.from({ length: MAX_SHARERS - 1 }, () => arena.store([data])!);
      const offsets = new Set([first, ...more].map((s) => s[0]!.offset));
      assert.equal(offsets.size, 1, 'the failed stores used up none of the shares');
      for (const s of [first, ...more]) arena.free(s);
      assert.equal(arena.used, 0);
      arena.close();
    });
  }

  test('file arena: a change past the first piece read is found, and the copy kept is whole', () => {
    const arena = createFileArena()!;
    const data = bytes(600_000, 12);
    const first = arena.store([data])!;
    data[500_000]! ^= 1;
    const changed = arena.store([data])!;
    assert.notEqual(changed[0]!.offset, first[0]!.offset);
    const again = arena.store([data])!; // compared with the file, then kept as a copy
    assert.equal(again[0]!.offset, changed[0]!.offset);
    const third = arena.store([data])!; // compared with that copy, which must be whole
    assert.equal(third[0]!.offset, changed[0]!.offset);
    data[599_999]! ^= 1;
    const last = arena.store([data])!;
    assert.notEqual(last[0]!.offset, changed[0]!.offset);
    assert.deepEqual(arena.read(last[0]!), data);
    arena.free([...first, ...changed, ...again, ...third, ...last]);
    assert.equal(arena.used, 0);
    arena.close();
  });

  test('file arena: a part too large to keep a heap copy of is compared piece by piece', () => {
    const arena = createFileArena()!;
    const big = new Uint8Array(17 * 1024 * 1024);
    big[3] = 1;
    const first = arena.store([big])!;
    const second = arena.store([big])!;
    assert.equal(second[0]!.offset, first[0]!.offset);
    big[big.length - 1] = 2; // in the last piece
    const third = arena.store([big])!;
    assert.notEqual(third[0]!.offset, first[0]!.offset);
    assert.deepEqual(arena.read(third[0]!).subarray(-2), Uint8Array.from([0, 2]));
    assert.deepEqual(arena.read(first[0]!).subarray(-2), Uint8Array.from([0, 0]));
    arena.free([...first, ...second, ...third]);
    assert.equal(arena.used, 0);
    arena.close();
  });

  test('a full arena stores nothing (all or none) and keeps what it had', () => {
    const arena = createMemoryArena(256 * 1024);
    const first = arena.store([bytes(200_000, 3)])!;
    assert.ok(first);
    assert.equal(arena.store([bytes(40_000, 4), bytes(40_000, 5)]), null);
    assert.equal(arena.used, 200_000, 'the half-stored second job was given back');
    assert.deepEqual(arena.read(first[0]!), bytes(200_000, 3));
  });

  test('an idle, empty file arena gives its memory back', async () => {
    const arena = createFileArena(undefined, 1000)!;
    const fd = (arena.handle as { fd: number }).fd;
    const slots = arena.store([bytes(3 << 20, 6)])!;
    assert.equal(fstatSync(fd).size, 3 << 20);
    arena.free(slots);
    assert.equal(fstatSync(fd).size, 3 << 20, 'kept until the idle time (1 s here) has passed');
    await pollUntil(() => fstatSync(fd).size === 0, { what: 'the idle, empty arena file to be truncated' });
    const again = arena.store([bytes(70_000, 8)])!;
    assert.deepEqual(arena.read(again[0]!), bytes(70_000, 8), 'and still works');
    arena.close();
  });

  test('a tmpfs that fills up under the arena: store gives up cleanly, and works again once there is room', (t) => {
    if (process.getuid?.() !== 0) {
      if (process.env.CI === 'true') assert.fail('this test mounts a tmpfs: CI must run as root');
      t.skip('needs root to mount a small tmpfs');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'pp-node-shm-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=80m', 'tmpfs', dir]);
    try {
      const arena = createFileArena(dir)!;
      assert.ok(arena, 'an arena on 80 MiB of tmpfs (20 MiB of room)');
      // Someone else fills the tmpfs: the arena's next write fails with ENOSPC.
      writeFileSync(join(dir, 'filler'), Buffer.alloc(79 << 20));
      assert.equal(arena.store([bytes(2 << 20, 1)]), null, 'no room: the job keeps its own copy');
      assert.equal(arena.used, 0, 'nothing half-stored is left');
      rmSync(join(dir, 'filler'));
      const slots = arena.store([bytes(2 << 20, 2)])!;
      assert.deepEqual(arena.read(slots[0]!), bytes(2 << 20, 2));
      arena.close();
    } finally {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true });
    }
  });

  test('the /dev/shm file is unlinked at once: nothing is left behind', () => {
    const before = readdirSync('/dev/shm').filter((f) => f.startsWith('pp-node-'));
    const arena = createFileArena()!;
    const after = readdirSync('/dev/shm').filter((f) => f.startsWith('pp-node-'));
    assert.deepEqual(after, before);
    assert.match(readlinkSync(`/proc/self/fd/${(arena.handle as { fd: number }).fd}`), /\(deleted\)$/);
    arena.close();
  });
});

function checksum(a: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * ((i % 7) + 1);
  return s;
}
function describeArgs(a: Float64Array, raw: ArrayBuffer, b: Buffer, small: Uint8Array) {
  return {
    type: a.constructor.name,
    own: a.buffer.byteLength === a.byteLength && a.byteOffset === 0,
    sum: checksum(a),
    raw: [raw.byteLength, new Uint8Array(raw)[raw.byteLength - 1]],
    buffer: [Buffer.isBuffer(b), b.length, b[0]],
    small: Array.from(small),
  };
}
function exitIf(flag: boolean, a: Float64Array): number {
  if (flag) process.exit(3);
  return checksum(a);
}

for (const isolation of ['process', 'thread'] as const) {
  for (const sharedMemory of [true, false]) {
    describe(`large arguments, ${isolation}es, sharedMemory ${sharedMemory}`, () => {
      test('arrive whole and owned, as they were at submit', async () => {
        await using server = new Server({ ncpus: 2, isolation, sharedMemory });
        const jobs = [];
        const want = [];
        const a = new Float64Array(50_000);
        const raw = new ArrayBuffer(80_000);
        const b = Buffer.alloc(70_000);
        for (let k = 0; k < 12; k++) {
          a.fill(k + 0.5);
          new Uint8Array(raw)[79_999] = k;
          b.fill(k);
          jobs.push(server.submit(describeArgs, [a, raw, b, new Uint8Array([k])], { deps: [checksum] }));
          want.push({
            type: 'Float64Array',
            own: true,
            sum: checksum(a),
            raw: [80_000, k],
            buffer: [true, 70_000, k],
            small: [k],
          });
        }
        // Changed after every submit: each job must see the value as it was when submitted.
        assert.deepEqual(await Promise.all(jobs), want);
      });

      test('jobs given one array get a copy each: a job that changes its own changes no other', async () => {
        await using server = new Server({ ncpus: 2, isolation, sharedMemory });
        const a = Float64Array.from({ length: 30_000 }, (_, i) => i);
        const bump = (x: Float64Array) => {
          x[7] = x[7]! + 1;
          return x[7];
        };
        const jobs = Array.from({ length: 150 }, () => server.submit(bump, [a]));
        assert.deepEqual(new Set(await Promise.all(jobs)), new Set([8]));
        assert.equal(a[7], 7, 'nor the caller’s');
      });

      test('a worker that dies loses no other job’s arguments', async () => {
        await using server = new Server({ ncpus: 1, isolation, sharedMemory });
        const a = Float64Array.from({ length: 40_000 }, (_, i) => i);
        const jobs = Array.from({ length: 8 }, (_, k) =>
          server.submit(exitIf, [k === 3, a.map((x) => x + k)], { deps: [checksum] }),
        );
        const settled = await Promise.allSettled(jobs);
        for (const [k, s] of settled.entries()) {
          if (k === 3) {
            assert.equal(s.status, 'rejected');
            assert.ok((s as PromiseRejectedResult).reason instanceof WorkerCrashError);
          } else {
            assert.deepEqual(s, { status: 'fulfilled', value: checksum(a.map((x) => x + k)) });
          }
        }
      });
    });
  }
}

test('worker processes read the arena from fd 4', async () => {
  await using server = new Server({ ncpus: 1 });
  const pid = await server.submit(() => process.pid);
  assert.match(readlinkSync(`/proc/${pid}/fd/4`), /^\/dev\/shm\/pp-node-.*\(deleted\)$/);
  assert.equal(
    await server.submit(() => process.env.PP_NODE_ARENA_FD),
    undefined,
    'jobs do not inherit the claim',
  );
});
