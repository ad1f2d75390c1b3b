/**
 * Imported first by the worker entry, so a worker process ignores terminal signals from its
 * first moments (platform.ts says which, and why): Ctrl+C reaches the workers along with
 * their parent, and the parent alone decides whether running jobs finish. Node has no
 * SIG_IGN; a listener that does nothing replaces the default action (ending the process).
 * Worker threads get no signals: nothing to do there.
 */
import { isMainThread } from 'node:worker_threads';
import { workerIgnoredSignals } from '../platform.ts';

if (isMainThread) {
  const ignore = () => {};
  for (const signal of workerIgnoredSignals()) process.on(signal, ignore);
}
