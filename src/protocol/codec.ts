/**
 * Portable, versioned binary value codec for every pp-node message (worker pipes and the
 * network): structured-clone semantics plus registered classes, in a byte format of our own
 * that any Node version on any architecture reads. Split by concern, as msgpackr and cbor-x
 * split theirs (the checklist for adding a type is at the top of codec/format.ts):
 *
 * - codec/format.ts   the byte format: version, tags, flags, kind tables, number forms
 * - codec/classes.ts  the class registry
 * - codec/kinds.ts    which built-in an object is (the encoder's dispatch, error classes)
 * - codec/common.ts   what both directions share: error paths, fast string and byte access
 * - codec/encoder.ts  value to bytes          - codec/decoder.ts  bytes to value
 * - codec/split.ts    out-of-band parts: large binary data left out of the bytes, and joined back
 */
export { type ClassRegistry, makeClassRegistry } from './codec/classes.ts';
export {
  CONTAINER_HEAP_BYTES,
  type DecodeBudget,
  type DecodeLimits,
  decode,
  decodeRange,
  heapBudgetFor,
  ITEM_HEAP_BYTES,
} from './codec/decoder.ts';
export { encode, encodeInto } from './codec/encoder.ts';
export { CODEC_VERSION, CodecError, numberEnd, readNumberAt, writeNumberAt } from './codec/format.ts';
export { encodeSplit, joinSplit, type SegmentSource, type SplitSegment } from './codec/split.ts';
