/**
 * "Hold little for a peer that has not proved the secret", on both sides: until the handshake
 * completes, a WebSocket (the node's for each client, a client's to each node) accepts messages
 * of at most {@link PREAUTH_MAX_PAYLOAD} bytes (handshake messages are 73 at most, control
 * frames 125; a frame that announces more ends the connection before its payload is read),
 * then MAX_WS_PAYLOAD. Whoever connects to a node, or answers at a discovered address, may be
 * anyone on the LAN.
 */
import type { WebSocket } from 'ws';
import { MAX_HANDSHAKE_MESSAGE } from './handshake.ts';

/** Largest WebSocket message read before the peer has authenticated. */
export const PREAUTH_MAX_PAYLOAD = 128;
if (PREAUTH_MAX_PAYLOAD < MAX_HANDSHAKE_MESSAGE)
  throw new Error('PREAUTH_MAX_PAYLOAD below a handshake message');

/** What raiseMaxPayload reads of ws's internals (ws is pinned in package.json for this). */
interface ReceiverInternals {
  _receiver?: { _maxPayload?: unknown } | null;
}

/**
 * Raises the largest message ws accepts on one connection, once the peer has authenticated.
 * ws has no public way to change `maxPayload` after a connection opens (a server's option
 * applies to every connection); its Receiver keeps it in `_maxPayload`, read at each frame
 * header. So ws is pinned to an exact version, test/preauth.test.ts and
 * test/client-trust.test.ts prove that this takes effect (and that without it large
 * messages are refused), and this throws rather than do nothing if the field is not where it
 * was. Called synchronously from the message that completes the handshake, it applies to the
 * very next frame, even one that arrived in the same read.
 */
export function raiseMaxPayload(ws: WebSocket, maxPayload: number): void {
  const receiver = (ws as unknown as ReceiverInternals)._receiver;
  if (!receiver || typeof receiver._maxPayload !== 'number') {
    throw new Error(
      'ws internals changed: cannot raise maxPayload after authentication (see preauth-payload.ts)',
    );
  }
  receiver._maxPayload = maxPayload;
}
