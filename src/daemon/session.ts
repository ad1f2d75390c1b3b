/** The daemon's side of one authenticated client connection: what it sent, and what goes back. */

import type { Logger } from '../log.ts';
import type { RefData } from '../nodes/compute-node.ts';
import { encode } from '../protocol/codec.ts';
import {
  decodeMessage,
  encodeMessage,
  type FunctionDefinition,
  type Message,
  MessageError,
  type ResultEntry,
} from '../protocol/messages.ts';
import { CloseCode, type SecureSocket } from '../transport/secure-socket.ts';

/** What a session asks of the daemon that owns it. */
export interface SessionOwner {
  readonly logger: Logger;
  /** A client silent for this long is dropped. */
  readonly clientTimeoutMs: number;
  /** A decoded message from the client. */
  handle(s: ClientSession, msg: Message): void;
  /** A message that broke the head limits: true when its jobs were failed instead (see Daemon.refused). */
  refused(s: ClientSession, frame: Uint8Array, error: Error): boolean;
  sessionClosed(s: ClientSession, code: number, reason: string): void;
}

/** One authenticated client connection. */
export class ClientSession {
  readonly defs = new Map<string, FunctionDefinition>();
  /** Why definitions this client sent could not be read, by its hash (see Daemon.refused). */
  readonly unreadable = new Map<string, Error>();
  readonly refs = new Map<string, RefData>();
  readonly byClientId = new Map<number, number>();
  open = true;
  private results: ResultEntry[] = [];
  private blobs: Uint8Array[] = [];
  private flushScheduled = false;
  private lastHeard = Date.now();
  private readonly watchdog: NodeJS.Timeout;

  constructor(
    readonly id: string,
    readonly peer: string,
    readonly socket: SecureSocket,
    node: SessionOwner,
  ) {
    socket.on('message', (data) => {
      this.lastHeard = Date.now();
      let msg: Message;
      try {
        try {
          msg = decodeMessage(data);
        } catch (error) {
          if (error instanceof MessageError && node.refused(this, data, error)) return;
          throw error;
        }
        node.handle(this, msg);
      } catch (error) {
        node.logger.warn('closing connection: bad message', { peer, error });
        socket.close(CloseCode.Protocol, `bad message: ${(error as Error).message}`);
      }
    });
    socket.on('close', (code, reason) => {
      this.open = false;
      clearInterval(this.watchdog);
      node.sessionClosed(this, code, reason);
    });
    this.watchdog = setInterval(() => {
      if (Date.now() - this.lastHeard > node.clientTimeoutMs) {
        node.logger.warn('client went silent: dropping it', { peer });
        socket.terminate();
      }
    }, 1000);
    this.watchdog.unref();
  }

  send(msg: Message): void {
    if (this.open) this.socket.send(encodeMessage(msg));
  }

  /** Results are coalesced: one message per turn of the event loop, not one per job. */
  queueResult(entry: ResultEntry, blob: Uint8Array): void {
    this.results.push(entry);
    this.blobs.push(blob);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      const results = this.results;
      const blobs = this.blobs;
      this.results = [];
      this.blobs = [];
      this.send({ type: 'done', results, blobs });
    });
  }

  sendFailed(clientId: number, error: Error): void {
    this.send({ type: 'failed', ids: [clientId], blobs: [encode(error)] });
  }
}
