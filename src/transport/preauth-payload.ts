/**
 * The client's side of "hold little for a peer that has not proved the secret": until the
 * handshake completes, a client's WebSocket accepts messages of at most
 * {@link CLIENT_PREAUTH_MAX_PAYLOAD} bytes (handshake messages are 71 at most; a frame that
 * announces more ends the connection before its payload is read), then MAX_WS_PAYLOAD.
 * Whoever answers at a discovered address may be anyone on the LAN.
 */
import type { WebSocket } from 'ws';
import { MAX_HANDSHAKE_MESSAGE } from '../protocol/handshake.ts';

/** Largest WebSocket message a client reads before the node has authenticated. */
export const CLIENT_PREAUTH_MAX_PAYLOAD = 128;
if (CLIENT_PREAUTH_MAX_PAYLOAD < MAX_HANDSHAKE_MESSAGE)
  throw new Error('CLIENT_PREAUTH_MAX_PAYLOAD below a handshake message');

/** What raisePayloadLimit reads of ws's internals (ws is pinned in package.json for this). */
interface ReceiverInternals {
  _receiver?: { _maxPayload?: unknown } | null;
}

/**
 * Raises the largest message ws accepts on this connection, once the peer has authenticated.
 * ws has no public way to change `maxPayload` after a connection opens; its Receiver keeps it
 * in `_maxPayload`, read at each frame header (the same field daemon/admission.ts raises on
 * the node's side; ws is pinned to an exact version, and test/client-preauth.test.ts proves
 * that this takes effect). Throws rather than do nothing if the field is not where it was.
 * Called synchronously from the message that completes the handshake, it applies to the very
 * next frame, even one that arrived in the same read.
 */
export function raisePayloadLimit(ws: WebSocket, maxPayload: number): void {
  const receiver = (ws as unknown as ReceiverInternals)._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number') {
    throw new Error(
      'ws internals changed: cannot raise maxPayload after authentication (see preauth-payload.ts)',
    );
  }
  receiver._maxPayload = maxPayload;
}
