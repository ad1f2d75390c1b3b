/** The out-of-band split: large binary parts left out of the encoded bytes, and joined back. */
import type { ClassRegistry } from './classes.ts';
import { Encoder, sharedEncoder } from './encoder.ts';

/** A large binary part that {@link encodeSplit} left out of the encoded bytes. */
export interface SplitSegment {
  /** Position of its T_SPLIT marker in the encoded bytes. */
  readonly tagAt: number;
  /** Position where its bytes would follow their header (in the encoded bytes). */
  readonly at: number;
  /** Its bytes: a view of the caller's memory, not a copy. */
  readonly bytes: Uint8Array;
}

/** Gives the next out-of-band part to {@link decode}: an ArrayBuffer of exactly `byteLength` bytes it may keep. */
export type SegmentSource = (byteLength: number) => ArrayBuffer;

/**
 * Like {@link encode}, but typed arrays, Buffers and ArrayBuffers of 64 KiB or more are not
 * copied: the encoded bytes hold their headers, marked as split, and `segments` lists their
 * memory in order. The caller copies the segments wherever the receiver can read them (the
 * local workers' shared arena) before anything can change them, and the receiver decodes
 * with a {@link SegmentSource}. {@link joinSplit} turns the two back into an ordinary message.
 */
export function encodeSplit(
  value: unknown,
  classes?: ClassRegistry,
  rootName = 'value',
): { bytes: Buffer; segments: SplitSegment[] } {
  const enc = sharedEncoder.busy ? new Encoder() : sharedEncoder;
  return enc.runSplit(value, classes, rootName);
}

/** The ordinary encoding (as {@link encode} makes it) of a split one, as parts (no copy). */
export function joinSplit(
  bytes: Uint8Array,
  segments: ReadonlyArray<{ readonly tagAt: number; readonly at: number }>,
  segmentBytes: ReadonlyArray<Uint8Array | readonly Uint8Array[]>,
): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let from = 0;
  segments.forEach((s, i) => {
    if (s.tagAt > from) parts.push(bytes.subarray(from, s.tagAt));
    parts.push(bytes.subarray(s.tagAt + 1, s.at));
    const b = segmentBytes[i]!;
    if (b instanceof Uint8Array) parts.push(b);
    else parts.push(...b);
    from = s.at;
  });
  if (from < bytes.byteLength) parts.push(bytes.subarray(from));
  return parts;
}
