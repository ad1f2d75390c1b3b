/**
 * The job protocol over a WebSocket: the handshake first (small, fixed-size messages), then
 * every message encrypted and authenticated by the session.
 *
 * Messages larger than a chunk are split into several sealed chunks, so the WebSocket's
 * `maxPayload` stays at one chunk (MAX_WS_PAYLOAD) on every connection. Before a peer has
 * authenticated, a node accepts only PREAUTH_MAX_PAYLOAD bytes a message (daemon/admission.ts).
 */
import { EventEmitter } from 'node:events';
import type { WebSocket } from 'ws';
import {
  ClientHandshake,
  type HandshakeError,
  type HandshakeStep,
  MAX_HANDSHAKE_MESSAGE,
  NodeHandshake,
} from './handshake.ts';
import type { HelloVerdict } from './rate-limit.ts';
import type { Session } from './secure-channel.ts';

/** Plaintext bytes per sealed chunk: a 1 MiB argument plus its message head fits in one. */
export const CHUNK_BYTES = 2 << 20;
/** Per WebSocket message: a chunk, its flag byte and the AEAD tag, with room to spare. */
export const MAX_WS_PAYLOAD = CHUNK_BYTES + 1024;
/** Largest message (all chunks together) a peer may send after authentication. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1 << 30;

/**
 * WebSocket masking for client frames: all zeros, which ws skips. Masking exists to keep
 * scripts in browsers from poisoning proxy caches; our frames are already encrypted and
 * authenticated, and XOR-ing every byte in JavaScript cost more than the encryption.
 */
export function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}

const LAST = 1;
const MORE = 0;

/** WebSocket close codes of the protocol (4000-4999 are for applications). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  /** The peer's proof of the secret failed. */
  AuthFailed: 4001,
  /** No protocol version in common. */
  Version: 4002,
  /** Bytes that are not the protocol: malformed, tampered, replayed. */
  Protocol: 4003,
  /** Too many failed handshakes from this address. */
  RateLimited: 4004,
  /** Handshake or heartbeat timed out. */
  Timeout: 4005,
} as const;

export class SecureSocket extends EventEmitter<{ message: [Buffer]; close: [code: number, reason: string] }> {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private closed = false;
  /** Frames that arrived before the owner listened (see resume). */
  private early: Array<[Buffer, boolean]> | null = [];
  private earlyClose: [number, string] | null = null;
  /**
   * A client's first measure of the link's round trip, ms: the shorter of the handshake's two
   * (hello and answer, proof and answer). Undefined on a node's side. A first estimate for
   * placement, until the heartbeat's pings measure it.
   */
  handshakeRttMs: number | undefined = undefined;

  constructor(
    readonly ws: WebSocket,
    readonly session: Session,
    private readonly maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES,
  ) {
    super();
    ws.on('message', (data, isBinary) => {
      if (this.early) this.early.push([data as Buffer, isBinary]);
      else this.onData(data as Buffer, isBinary);
    });
    ws.on('close', (code, reason) => {
      if (this.early) this.earlyClose = [code, reason.toString()];
      else this.onClosed(code, reason.toString());
    });
    ws.on('error', () => {}); // followed by 'close'
  }

  /**
   * Starts delivering messages. The socket exists from the instant the handshake completes,
   * because the peer's first message can arrive in the same read as its last handshake
   * message (ws emits both in one tick); frames are held until the owner has its listeners.
   */
  resume(): void {
    const early = this.early;
    this.early = null;
    for (const [data, isBinary] of early ?? []) this.onData(data, isBinary);
    if (this.earlyClose) this.onClosed(...this.earlyClose);
  }

  /** Bytes queued in the socket, for back-pressure. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Encrypts and sends one message given as parts (not concatenated first). */
  send(parts: readonly Uint8Array[]): void {
    if (this.closed) return;
    let total = 0;
    for (const p of parts) total += p.byteLength;
    if (total <= CHUNK_BYTES) {
      this.sendSealed([FLAG[LAST]!, ...parts]);
      return;
    }
    let chunk: Uint8Array[] = [];
    let room = CHUNK_BYTES;
    let left = total;
    for (const part of parts) {
      let offset = 0;
      while (offset < part.byteLength) {
        const take = Math.min(room, part.byteLength - offset);
        chunk.push(part.subarray(offset, offset + take));
        offset += take;
        room -= take;
        left -= take;
        if (room === 0 || left === 0) {
          this.sendSealed([FLAG[left === 0 ? LAST : MORE]!, ...chunk]);
          chunk = [];
          room = CHUNK_BYTES;
        }
      }
    }
  }

  /**
   * One sealed frame as one WebSocket message. Not as fragments: the receiving ws would
   * concatenate them, a copy more on the receiver. A large frame is written as its pieces
   * (see writeMessage), saving the copy that ws.send's single buffer would cost here.
   */
  private sendSealed(parts: Uint8Array[]): void {
    const pieces = this.session.sealParts(parts);
    let length = 0;
    for (const p of pieces) length += p.length;
    if (length >= DIRECT_WRITE_BYTES && writeMessage(this.ws, pieces, length, this.session.role === 'client'))
      return;
    this.ws.send(pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, length), { binary: true });
  }

  close(code: number = CloseCode.Normal, reason = ''): void {
    if (this.closed) return;
    this.ws.close(code, reason.slice(0, 120));
    // A peer that never answers the close must not keep us waiting.
    setTimeout(() => this.ws.terminate(), 2000).unref();
  }

  /** Drops the connection at once (no close handshake), e.g. when the peer went silent. */
  terminate(): void {
    this.ws.terminate();
  }

  private onData(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    if (!isBinary) {
      this.fail('text frame on a binary protocol');
      return;
    }
    let plain: Buffer;
    try {
      plain = this.session.open(data);
    } catch (error) {
      this.fail(`frame failed authentication (${(error as Error).message})`);
      return;
    }
    if (plain.length < 1 || (plain[0] !== LAST && plain[0] !== MORE)) {
      this.fail('bad chunk flag');
      return;
    }
    const body = plain.subarray(1);
    if (plain[0] === LAST && this.pending.length === 0) {
      this.emit('message', body);
      return;
    }
    this.pendingBytes += body.length;
    if (this.pendingBytes > this.maxMessageBytes) {
      this.fail(`message larger than the limit of ${this.maxMessageBytes} bytes`);
      return;
    }
    this.pending.push(body);
    if (plain[0] === LAST) {
      const whole = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
      this.emit('message', whole);
    }
  }

  private fail(why: string): void {
    this.close(CloseCode.Protocol, why);
    this.onClosed(CloseCode.Protocol, why);
  }

  private onClosed(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.pending = [];
    this.emit('close', code, reason);
  }
}

const FLAG = [Buffer.from([MORE]), Buffer.from([LAST])];

/** Sealed frames at least this large go to the socket as pieces (writeMessage). */
const DIRECT_WRITE_BYTES = 64 * 1024;

/**
 * Messages writeMessage has written itself (not through ws.send), for test/ws-fast-path.test.ts:
 * it fails when ws (pinned exactly in package.json) no longer has the private fields read below.
 */
export const directWrites = { count: 0 };

/** What writeMessage reads of ws's internals (ws 8.23.0, pinned). */
interface WsInternals {
  _socket?: { cork(): void; uncork(): void; write(b: Uint8Array): boolean } | null;
  _sender?: { _state?: number; _queue?: unknown[] } | null;
}

/**
 * Writes one binary WebSocket message whose payload is `pieces`, straight to ws's socket
 * (one writev): ws.send takes a single buffer, so joining a 1 MiB sealed frame would cost a
 * copy. Only while ws's sender is idle with nothing queued (we never enable compression, so
 * it writes synchronously and this message cannot overtake one of its own). The client's
 * mask is zero, as with `zeroMask`: masking guards browsers' proxies, not this protocol.
 * Returns false, and writes nothing, when it cannot (the caller then uses ws.send).
 */
export function writeMessage(
  ws: WebSocket,
  pieces: readonly Uint8Array[],
  length: number,
  masked: boolean,
): boolean {
  const { _socket: socket, _sender: sender } = ws as unknown as WsInternals;
  if (
    ws.readyState !== ws.OPEN ||
    !socket ||
    !sender ||
    sender._state !== 0 ||
    !Array.isArray(sender._queue) ||
    sender._queue.length > 0
  ) {
    return false;
  }
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + extended + (masked ? 4 : 0)); // mask key: zeros
  header[0] = 0x82; // FIN, binary
  header[1] = (masked ? 0x80 : 0) | (extended === 0 ? length : extended === 2 ? 126 : 127);
  if (extended === 2) header.writeUInt16BE(length, 2);
  else if (extended === 8) header.writeBigUInt64BE(BigInt(length), 2);
  socket.cork();
  socket.write(header);
  for (const p of pieces) socket.write(p);
  socket.uncork();
  directWrites.count++;
  return true;
}

/** Outcome of a failed handshake, for logs and error messages. */
export class HandshakeFailure extends Error {
  constructor(
    message: string,
    readonly code: number,
    readonly handshakeCode: HandshakeError['code'] | 'timeout' | 'closed' | 'rate-limited',
    /** For a REJECTED answer: why the peer said it refused (unauthenticated). */
    readonly rejectReason?: HandshakeError['rejectReason'],
  ) {
    super(message);
    this.name = 'HandshakeFailure';
  }
}

const closeCodeOf = (e: HandshakeError) =>
  e.code === 'bad-proof' || e.code === 'rejected'
    ? CloseCode.AuthFailed
    : e.code === 'version'
      ? CloseCode.Version
      : CloseCode.Protocol;

/**
 * Runs the handshake over a fresh WebSocket. Resolves with the session; rejects with a
 * HandshakeFailure after closing the socket with a code that tells the peer why.
 */
function runHandshake(
  ws: WebSocket,
  step: (msg: Uint8Array) => HandshakeStep,
  first: Uint8Array | null,
  timeoutMs: number,
  authenticated?: () => void,
  onHello?: () => HelloVerdict,
): Promise<SecureSocket> {
  return new Promise<SecureSocket>((resolve, reject) => {
    let done = false;
    let gate = onHello;
    /** Messages that arrived while the first one is held (see onHello); a few at most. */
    let held: Array<[Buffer, boolean]> | null = null;
    let holdTimer: NodeJS.Timeout | undefined;
    /** When this side last sent a handshake message, and the shortest wait for an answer (ms). */
    let sentAt = 0;
    let roundTrip = Number.POSITIVE_INFINITY;
    const finish = (error: HandshakeFailure | null, session?: Session, rttMs?: number) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(holdTimer);
      held = null;
      ws.off('message', onMessage);
      ws.off('close', onClose);
      if (error) {
        if (ws.readyState === ws.OPEN) ws.close(error.code, error.message.slice(0, 120));
        setTimeout(() => ws.terminate(), 1000).unref();
        reject(error);
      } else {
        // In this tick, before ws reads the next frame (which may be in the same read).
        authenticated?.();
        // Made now, in this tick, so that no message after the handshake is missed.
        const socket = new SecureSocket(ws, session!);
        socket.handshakeRttMs = rttMs;
        resolve(socket);
      }
    };
    const timer = setTimeout(
      () => finish(new HandshakeFailure('handshake timed out', CloseCode.Timeout, 'timeout')),
      timeoutMs,
    );
    const onMessage = (data: Buffer, isBinary: boolean) => {
      if (held) {
        if (held.length >= 4)
          finish(new HandshakeFailure('malformed handshake', CloseCode.Protocol, 'malformed'));
        else held.push([data, isBinary]);
        return;
      }
      if (gate) {
        const verdict = gate();
        gate = undefined;
        if (verdict.retryAfterMs !== undefined) {
          const s = Math.ceil(verdict.retryAfterMs / 1000);
          finish(
            new HandshakeFailure(
              `too many handshakes from this address: retry in ${s} s`,
              CloseCode.RateLimited,
              'rate-limited',
            ),
          );
          return;
        }
        if (verdict.delayMs > 0) {
          held = [[data, isBinary]];
          holdTimer = setTimeout(() => {
            const messages = held ?? [];
            held = null;
            for (const [d, b] of messages) if (!done) handle(d, b);
          }, verdict.delayMs);
          return;
        }
      }
      handle(data, isBinary);
    };
    const handle = (data: Buffer, isBinary: boolean) => {
      if (!isBinary || data.length > MAX_HANDSHAKE_MESSAGE) {
        finish(new HandshakeFailure('malformed handshake message', CloseCode.Protocol, 'malformed'));
        return;
      }
      if (sentAt > 0) roundTrip = Math.min(roundTrip, performance.now() - sentAt);
      const out = step(data);
      if (out.send) {
        ws.send(out.send, { binary: true });
        sentAt = performance.now();
      }
      if (out.error)
        finish(
          new HandshakeFailure(
            out.error.message,
            closeCodeOf(out.error),
            out.error.code,
            out.error.rejectReason,
          ),
        );
      // The client timed its two round trips (hello, proof): the shorter is the link's, or
      // nearest to it (each answer waits for some work at the node, and maybe in this process).
      else if (out.session) finish(null, out.session, first && roundTrip < Infinity ? roundTrip : undefined);
    };
    const onClose = (code: number, reason: Buffer) => {
      const why = reason.toString() || 'connection closed';
      finish(new HandshakeFailure(`closed during the handshake: ${why}`, code, 'closed'));
    };
    ws.on('message', onMessage);
    ws.on('close', onClose);
    ws.on('error', () => {});
    if (first) {
      ws.send(first, { binary: true });
      sentAt = performance.now();
    }
  });
}

/** Resolves with a paused SecureSocket: attach listeners, then call `resume()`. */
export function clientHandshake(
  ws: WebSocket,
  secret: Uint8Array,
  timeoutMs = 5000,
  authenticated?: () => void,
): Promise<SecureSocket> {
  const hs = new ClientHandshake(secret);
  return runHandshake(ws, (m) => hs.receive(m), hs.start(), timeoutMs, authenticated);
}

/**
 * Resolves with a paused SecureSocket: attach listeners, then call `resume()`. `authenticated`
 * is called synchronously the moment the client has proved the secret, before ws reads another
 * frame: the node raises the connection's message limit there (see daemon/admission.ts).
 * `onHello` is asked when the first message arrives (whatever it is): it is answered after the
 * delay it says, or the connection is closed with CloseCode.RateLimited (protocol/rate-limit.ts).
 */
export function serverHandshake(
  ws: WebSocket,
  secret: Uint8Array,
  timeoutMs = 5000,
  authenticated?: () => void,
  onHello?: () => HelloVerdict,
): Promise<SecureSocket> {
  const hs = new NodeHandshake(secret);
  return runHandshake(ws, (m) => hs.receive(m), null, timeoutMs, authenticated, onHello);
}
