import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameReader, FrameTooLargeError, joinFrame } from '../src/transport/frames.ts';

function frames(payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads.map((p) => joinFrame([p], true)));
}

test('FrameReader reassembles frames split at every possible byte boundary', () => {
  const payloads = [Buffer.from('a'), Buffer.alloc(0), Buffer.from('hello world'), Buffer.alloc(300, 7)];
  const stream = frames(payloads);
  for (let cut = 0; cut <= stream.length; cut++) {
    const got: Buffer[] = [];
    const r = new FrameReader((b, s, e) => got.push(Buffer.from(b.subarray(s, e))));
    r.push(stream.subarray(0, cut));
    r.push(stream.subarray(cut));
    assert.deepEqual(got, payloads, `cut at ${cut}`);
  }
});

test('FrameReader handles one byte at a time', () => {
  const payloads = [Buffer.from('xyz'), Buffer.alloc(70_000, 1)];
  const stream = frames(payloads);
  const got: Buffer[] = [];
  const r = new FrameReader((b, s, e) => got.push(Buffer.from(b.subarray(s, e))));
  for (let i = 0; i < stream.length; i++) r.push(stream.subarray(i, i + 1));
  assert.deepEqual(got, payloads);
});

test('FrameReader rejects a frame larger than its limit before allocating it', () => {
  const r = new FrameReader(() => {}, 1024);
  const header = Buffer.alloc(4);
  header.writeUInt32BE(0xffffffff);
  assert.throws(() => r.push(header), FrameTooLargeError);
});
