/**
 * What one peer (a worker of the local pool, or a remote node) already holds: the function
 * definitions and the Refs (server.put values) sent to it. Jobs name both by key; each is
 * sent once per peer, ahead of the first job that needs it.
 */
import { encodeMessage, type FunctionDefinition } from '../protocol/messages.ts';
import type { DispatchJob } from './compute-node.ts';

/** Where the cache writes its messages: a worker's pipe or a node's socket. */
export interface MessageSink {
  send(parts: Uint8Array[]): void;
}

export class PeerCache {
  /** Function hashes the peer has definitions for. */
  #defs = new Set<string>();
  /** Ref ids the peer holds. */
  #refs = new Set<string>();

  /**
   * Sends `to` the definitions and Refs these jobs need that the peer lacks, and notes them
   * as held; call it before the jobs' run message.
   */
  sendMissing(jobs: readonly DispatchJob[], to: MessageSink): void {
    // Indexed loops, and each run of jobs of one function looked up once: this runs for every
    // job, and until V8 optimises it, a for-of allocates an iterator result per step.
    let defs: FunctionDefinition[] | undefined;
    let last: string | undefined;
    let anyRefs = false;
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i]!;
      if (job.refs.length > 0) anyRefs = true;
      const hash = job.hash;
      if (hash === last) continue;
      last = hash;
      if (this.#defs.has(hash)) continue;
      this.#defs.add(hash);
      (defs ??= []).push(job.definition());
    }
    // One definition per message: each was checked alone against the head limits (functions/bundle.ts).
    if (defs) for (const def of defs) to.send(encodeMessage({ type: 'define', defs: [def] }));
    if (!anyRefs) return;
    let refs: string[] | undefined;
    let blobs: Uint8Array[] | undefined;
    for (const job of jobs) {
      for (const ref of job.refs) {
        if (this.#refs.has(ref.id)) continue;
        this.#refs.add(ref.id);
        (refs ??= []).push(ref.id);
        (blobs ??= []).push(ref.blob);
      }
    }
    if (refs && blobs) to.send(encodeMessage({ type: 'put', refs, blobs }));
  }

  /** Tells `to` to drop those of these Refs it holds, and forgets them here. */
  release(refIds: readonly string[], to: MessageSink): void {
    const held = refIds.filter((id) => this.#refs.delete(id));
    if (held.length > 0) to.send(encodeMessage({ type: 'release', refs: held }));
  }

  /** The peer lost everything it held (a remote node's connection dropped). */
  clear(): void {
    this.#defs.clear();
    this.#refs.clear();
  }
}
