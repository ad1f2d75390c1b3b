/**
 * What kind of built-in an object is, for the encoder's dispatch (by exact prototype, or by
 * internal slots for objects of another realm) and for error classes on both sides.
 */
import { types } from 'node:util';
import { getProto } from './common.ts';
import { ERROR_CTORS, ERROR_NAMES, VIEW_BUFFER, VIEW_KINDS } from './format.ts';

// Dispatch on the exact prototype; a subclass of a built-in is not the built-in.
export const K_MAP = 1;
export const K_SET = 2;
export const K_DATE = 3;
export const K_REGEXP = 4;
export const K_ARRAY_BUFFER = 5;
export const K_NUMBER = 6;
export const K_STRING = 7;
export const K_BOOLEAN = 8;
export const K_BIGINT = 9;
export const K_SYMBOL = 10;
const K_SHARED = 11;
export const K_PLAIN = 12;
export const K_NULL_PROTO = 13;
export const K_VIEW = 0x100; // + view kind
export const K_ERROR = 0x200; // + error kind

export const PROTO_KINDS = new Map<object, number>([
  [Map.prototype, K_MAP],
  [Set.prototype, K_SET],
  [Date.prototype, K_DATE],
  [RegExp.prototype, K_REGEXP],
  [ArrayBuffer.prototype, K_ARRAY_BUFFER],
  [Number.prototype, K_NUMBER],
  [String.prototype, K_STRING],
  [Boolean.prototype, K_BOOLEAN],
  [BigInt.prototype, K_BIGINT],
  [Symbol.prototype, K_SYMBOL],
  [Buffer.prototype, K_VIEW + VIEW_BUFFER],
]);
if (typeof SharedArrayBuffer === 'function') PROTO_KINDS.set(SharedArrayBuffer.prototype, K_SHARED);
VIEW_KINDS.forEach((k, i) => {
  if (k.ctor !== undefined) PROTO_KINDS.set(k.ctor.prototype, K_VIEW + i);
});
ERROR_CTORS.forEach((c, i) => {
  if (c !== undefined) PROTO_KINDS.set(c.prototype, K_ERROR + i);
});

const VIEW_NAMES = VIEW_KINDS.map((k) => k.name);

/** Kind of a built-in object created in another realm, found via internal slots, not prototypes. */
export function foreignKind(v: object, proto: object): number | undefined {
  if (types.isMap(v)) return K_MAP;
  if (types.isSet(v)) return K_SET;
  if (types.isDate(v)) return K_DATE;
  if (types.isRegExp(v)) return K_REGEXP;
  if (types.isArrayBuffer(v)) return K_ARRAY_BUFFER;
  if (types.isSharedArrayBuffer(v)) return K_SHARED;
  if (types.isArrayBufferView(v)) {
    const i = VIEW_NAMES.indexOf(Object.prototype.toString.call(v).slice(8, -1));
    return i < 0 ? undefined : K_VIEW + i;
  }
  if (types.isNumberObject(v)) return K_NUMBER;
  if (types.isStringObject(v)) return K_STRING;
  if (types.isBooleanObject(v)) return K_BOOLEAN;
  if (types.isBigIntObject(v)) return K_BIGINT;
  if (types.isSymbolObject(v)) return K_SYMBOL;
  const ctor = (proto as { constructor?: unknown }).constructor;
  if (getProto(proto) === null && typeof ctor === 'function' && ctor.name === 'Object') return K_PLAIN;
  return undefined;
}

/** Built-in error kind closest to `proto` in its prototype chain (0 = Error). */
export function errorKindOf(proto: object | null, e: Error | undefined): number {
  for (let p = proto; p !== null; p = getProto(p)) {
    const k = PROTO_KINDS.get(p);
    if (k !== undefined && k >= K_ERROR) return k - K_ERROR;
  }
  // An error from another realm: go by its name.
  const i = e === undefined ? -1 : ERROR_NAMES.indexOf((e as { name?: string }).name ?? '');
  return Math.max(i, 0);
}
