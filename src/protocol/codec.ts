/**
 * Portable, versioned binary value codec for every pp-node message (worker pipes and the network).
 *
 * Semantics follow structured clone (plus registered classes), but the byte format is our own so that
 * any Node version on any architecture can read it; `v8.serialize` output is tied to the V8 version.
 *
 * Wire format: byte 0 is CODEC_VERSION, then exactly one value. Multi-byte numbers are little-endian.
 * `varint` is unsigned LEB128 (at most 8 bytes, value <= 2^53 - 1).
 *
 *   0x00-0x7f  int 0..127                      0xe0-0xff  int -32..-1
 *   0x80-0x9f  ASCII/Latin-1 string, 0..31 bytes
 *   0xa0-0xaf  array, 0..15 slots, then slots   0xb0-0xbf  plain object, 0..15 entries, then entries
 *   0xc0 undefined  0xc1 null  0xc2 false  0xc3 true
 *   0xc4 int8  0xc5 uint8  0xc6 int16  0xc7 int32  0xc8 float64
 *   0xc9 bigint: sign byte (0/1), varint n, n magnitude bytes (little-endian)
 *   0xca Latin-1 string, u8 length    0xcb Latin-1 string, u32 length
 *   0xcc UTF-8 string, u8 byte length 0xcd UTF-8 string, u32 byte length
 *   0xce UTF-16LE string (has lone surrogates), varint code units, 2 bytes each
 *   0xcf array: varint length, then slots (a slot is a value or 0xd0 hole)
 *   0xd0 hole (only inside arrays)
 *   0xd1 plain object: varint n, then n x (string key, value)
 *   0xd2 null-prototype object: same as 0xd1
 *   0xd3 back-reference: varint object id
 *   0xd4 Map: varint n, then n x (key, value)          0xd5 Set: varint n, then n values
 *   0xd6 Date: float64 time (NaN = invalid date)       0xd7 RegExp: source string, flags string
 *   0xd8 ArrayBuffer: varint n, n bytes
 *   0xd9 view: kind byte (see VIEW_KINDS), varint byte length, bytes (elements little-endian)
 *   0xda boxed Number: float64   0xdb boxed String: string   0xdc boxed false   0xdd boxed true
 *   0xde boxed BigInt: bigint value
 *   0xdf Error: kind byte (0..7 built-in, 8 = registered class followed by class name string),
 *        flags byte (name, message, stack, cause, errors present), those values in that order,
 *        then varint n and n x (string key, value) own enumerable props
 *   0xbf is not used by errors; 0xc0-0xdf is full, so class instances use:
 *   0x9f... no: see TAG_INSTANCE below.
 *
 * Every object-valued item (everything with a structured-clone identity) gets the next object id in
 * pre-order, as soon as its header is read, so cycles and shared references become back-references.
 */
export {};
