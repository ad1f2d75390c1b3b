/**
 * pp-node: Parallel Python's job server for TypeScript and Node.js.
 *
 * @packageDocumentation
 */
export { Job, type JobState } from './api/job.ts';
export type { Progress, WaitOptions } from './api/progress.ts';
export {
  type JobFunction,
  type NodeSummary,
  Server,
  type ServerEvents,
  type ServerOptions,
  type SubmitOptions,
} from './api/server.ts';
export { Template } from './api/template.ts';
export type { DashboardOptions } from './dashboard/dashboard.ts';
export {
  JobCancelledError,
  JobSetupError,
  JobTimeoutError,
  PPError,
  ServerClosedError,
  WorkerCrashError,
} from './errors.ts';
export { type ModuleSpec, UndeclaredIdentifierError } from './functions/bundle.ts';
export type { Isolation } from './nodes/worker-handle.ts';
export { CodecError } from './protocol/codec.ts';
export { Ref, type RefArgs } from './protocol/ref.ts';
export { generateSecret, WeakSecretError } from './secret-strength.ts';
export { formatStats, type NodeStats, type ServerStats } from './stats.ts';
