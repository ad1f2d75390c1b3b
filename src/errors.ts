/**
 * Errors that pp-node itself raises. A job's own errors are re-created with their original
 * class, name, message and stack; these classes describe what happened *around* a job.
 */

/** Base class of every error pp-node raises on its own behalf. */
export class PPError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The worker running the job died (process.exit, a crash, out of memory, or killed). */
export class WorkerCrashError extends PPError {
  /** Exit code of the worker, or null when it was ended by a signal. */
  readonly exitCode: number | null;
  /** Signal that ended the worker, if any. */
  readonly signal: string | null;
  constructor(message: string, exitCode: number | null, signal: string | null) {
    super(message);
    this.exitCode = exitCode;
    this.signal = signal;
  }
}

/** The job ran longer than its `timeout`; its worker was stopped and replaced. */
export class JobTimeoutError extends PPError {}

/** The job was cancelled through its `signal` (or `job.cancel()`) before it finished. */
export class JobCancelledError extends PPError {
  override name = 'AbortError';
}

/** The server was closed before the job finished, or `submit` was called after `close()`. */
export class ServerClosedError extends PPError {}

/** The job could not be run at all (its function failed to compile, a module failed to load, ...). */
export class JobSetupError extends PPError {}
