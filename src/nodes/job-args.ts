/**
 * A job's encoded `[thisArg, args]` on its way to a node: the codec bytes, with large binary
 * parts split off (codec `encodeSplit`) and kept either in the local workers' shared arena
 * or as copies on the heap. Either way they are copies taken at submit: the caller may change
 * its arrays as soon as `submit` returns.
 */
import { joinSplit } from '../protocol/codec.ts';
import type { ArenaSlot, SharedArena } from '../transport/arena.ts';

export interface JobArgs {
  readonly bytes: Uint8Array;
  /** Where the split parts' markers are in `bytes`. */
  readonly splits: ReadonlyArray<{ readonly tagAt: number; readonly at: number }>;
  /** The parts on the heap (when not in an arena), each as one or several pieces. */
  readonly copies: ReadonlyArray<Uint8Array | readonly Uint8Array[]> | null;
  /** The parts in a local pool's arena: slots, and the arena they are in (null once freed). */
  stored: { readonly arena: SharedArena; readonly slots: readonly ArenaSlot[] } | null;
}

/** Args with nothing split off (small values, or a message received whole). */
export function wholeArgs(bytes: Uint8Array): JobArgs {
  return { bytes, splits: NO_SPLITS, copies: null, stored: null };
}
const NO_SPLITS: JobArgs['splits'] = Object.freeze([]);

/** The ordinary encoding, as parts: what goes to a node that cannot read the arena. */
export function argsParts(args: JobArgs): Uint8Array[] {
  if (args.splits.length === 0) return [args.bytes];
  const parts = args.stored ? args.stored.slots.map((s) => args.stored!.arena.read(s)) : args.copies!;
  return joinSplit(args.bytes, args.splits, parts);
}

/** Frees the arena slots, once no worker can read them anymore. */
export function releaseArgs(args: JobArgs): void {
  const stored = args.stored;
  if (!stored) return;
  // Once only: a slot freed twice could free a later job's slot at the same offset.
  args.stored = null;
  stored.arena.free(stored.slots);
}
