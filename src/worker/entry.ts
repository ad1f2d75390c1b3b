/**
 * Entry point of a worker: a child process (the server's default) or a worker thread.
 * A child process talks over file descriptor 3, a socket pair the server created, and keeps
 * stdout/stderr free for the jobs' own output.
 */
// First: a Ctrl+C while this worker loads must not end it (see the module).
import './ignore-signals.ts';
import { readSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { isMainThread, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { syncChannelIo } from '../platform.ts';
import { encodeMessage } from '../protocol/messages.ts';
import { type ArenaHandle, arenaReader } from '../transport/arena.ts';
import { FRAME_HEADER_BYTES, FrameReader, joinFrame, writeFrame } from '../transport/frames.ts';
import { WorkerRuntime } from './runtime.ts';
import { warmUpWorker } from './warm-up.ts';

/** The socket pair to the server (see nodes/worker-handle.ts). */
const CHANNEL_FD = 3;

/**
 * A message from the server that cannot be read at all (runtime.receive threw): which jobs it
 * carried is unknown, so the worker tells the server why ('bye') and exits, to be replaced; the
 * pool then fails the job it ran and runs the others elsewhere (nodes/local-pool.ts).
 */
function unreadable(send: (parts: Uint8Array[]) => void, error: unknown): void {
  const reason = `the worker could not read a message from the server: ${error instanceof Error ? error.message : String(error)}`;
  console.error(`pp-node worker ${process.pid}: ${reason}`);
  send(encodeMessage({ type: 'bye', reason }));
}

function reportStray(runtime: WorkerRuntime, kind: string) {
  return (error: unknown) => {
    if (runtime.strayError(error)) return;
    // Nothing is running: not a job's fault we can report; keep the worker alive.
    console.error(`pp-node worker ${process.pid}: ${kind} outside any job:`, error);
  };
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  const arena = (workerData as { arena?: ArenaHandle } | null)?.arena;
  const send = (parts: Uint8Array[]) => {
    const frame = joinFrame(parts, false);
    port.postMessage(frame.buffer, [frame.buffer as ArrayBuffer]);
  };
  const runtime = new WorkerRuntime(
    {
      send,
      sendFrame(buf, start, end) {
        // Threads take messages whole: no frame header.
        const payload = new Uint8Array(end - start - FRAME_HEADER_BYTES);
        payload.set(buf.subarray(start + FRAME_HEADER_BYTES, end));
        port.postMessage(payload.buffer, [payload.buffer]);
      },
      poll() {
        for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port))
          onMessage(m.message as ArrayBuffer);
      },
    },
    arena ? arenaReader(arena) : undefined,
  );
  let broken = false;
  let heard = false;
  const onMessage = (data: ArrayBuffer) => {
    heard = true;
    if (broken) return;
    try {
      runtime.receive(Buffer.from(data));
    } catch (error) {
      broken = true;
      unreadable(send, error);
      process.exit(1);
    }
  };
  port.on('message', onMessage);
  process.on('uncaughtException', reportStray(runtime, 'uncaught exception'));
  process.on('unhandledRejection', reportStray(runtime, 'unhandled rejection'));
  port.postMessage(joinFrame(encodeMessage({ type: 'ready', pid: process.pid }), false).buffer);
  warmUpWorker(() => !heard);
} else {
  const socket = new Socket({ fd: CHANNEL_FD, readable: true, writable: true });
  // Frames the kernel did not take at once (the server is behind) wait in this process,
  // where a crash would lose them: the runtime starts no job until they are out (flushed).
  let flushWaiters: Array<() => void> = [];
  const written = () => {
    if (socket.writableLength > 0 || flushWaiters.length === 0) return;
    const waiters = flushWaiters;
    flushWaiters = [];
    for (const w of waiters) w();
  };
  const flushed = (): Promise<void> | undefined =>
    socket.writableLength === 0 ? undefined : new Promise((resolve) => flushWaiters.push(resolve));
  const send = (parts: Uint8Array[]) => writeFrame(socket, parts, written);
  // One write(2) per result, without the stream machinery (a third of a tiny job's cost),
  // whenever the socket has nothing queued; otherwise behind what is queued, in order. Not on
  // Windows, where the channel is a pipe libuv reads with overlapped I/O and a synchronous
  // write could block behind that read (platform.ts).
  const direct = syncChannelIo();
  const sendFrame = (buf: Uint8Array, start: number, end: number) => {
    if (direct && socket.writableLength === 0) {
      try {
        start += writeSync(CHANNEL_FD, buf, start, end - start);
        if (start === end) return;
      } catch {
        // EAGAIN (the server is behind), or the channel is gone: the socket's own write
        // queues the frame, or reports the error (handled below).
      }
    }
    socket.write(Buffer.from(buf.subarray(start, end)), written);
  };
  // Set by the pool when it passed its shared arena (see transport/arena.ts); jobs' own child
  // processes must not inherit the claim.
  const arenaFd = Number(process.env.PP_NODE_ARENA_FD);
  delete process.env.PP_NODE_ARENA_FD;
  const arena = Number.isInteger(arenaFd) ? arenaReader({ kind: 'file', fd: arenaFd }) : undefined;
  // Between jobs, what the server sent while the last one ran (the next job, a cancel) is read
  // at once rather than after a turn of the event loop (0.1-0.3 ms after a job that slept).
  // Only while the socket holds nothing it read before, so that bytes reach the reader in
  // order; a fresh buffer each read, as the reader hands out views into it.
  let broken = false;
  let heard = false;
  const scratch = Buffer.allocUnsafe(64 * 1024);
  const poll = () => {
    while (!broken && socket.readableLength === 0 && !socket.destroyed) {
      let n: number;
      try {
        n = readSync(CHANNEL_FD, scratch, 0, scratch.length, null);
      } catch {
        return; // EAGAIN: nothing more has arrived (any other error, the socket reports too)
      }
      if (n === 0) return; // end of the channel: the socket sees it too, and 'end' exits
      try {
        reader.push(Buffer.from(scratch.subarray(0, n)));
      } catch (error) {
        broken = true; // a frame over the limit: the stream cannot be followed any more
        unreadable(send, error);
        void (flushed() ?? Promise.resolve()).then(() => process.exit(1));
      }
      if (n < scratch.length) return;
    }
  };
  const runtime = new WorkerRuntime({ send, sendFrame, flushed, poll: direct ? poll : undefined }, arena);
  const reader = new FrameReader((bytes, start, end) => {
    heard = true;
    if (broken) return;
    try {
      runtime.receive(bytes.subarray(start, end));
    } catch (error) {
      // Not thrown on: the reader would lose the rest of the chunk, and the worker go on without it.
      broken = true;
      unreadable(send, error);
      void (flushed() ?? Promise.resolve()).then(() => process.exit(1));
    }
  });
  // A chunk is read whole before its jobs start (WorkerRuntime.receiveAll): poll() must not
  // read on while the reader is inside this one.
  let chunk: Buffer | undefined;
  const readChunk = () => reader.push(chunk!);
  socket.on('data', (data: Buffer) => {
    chunk = data;
    runtime.receiveAll(readChunk);
    chunk = undefined;
  });
  // The server is gone (or closed the channel): nothing more can be delivered.
  socket.on('end', () => process.exit(0));
  socket.on('error', () => process.exit(0));
  process.on('uncaughtException', reportStray(runtime, 'uncaught exception'));
  process.on('unhandledRejection', reportStray(runtime, 'unhandled rejection'));
  send(encodeMessage({ type: 'ready', pid: process.pid }));
  warmUpWorker(() => !heard);
}
