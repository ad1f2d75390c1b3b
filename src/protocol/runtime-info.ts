/** What decides whether a native addon built here loads elsewhere: platform, arch and Node ABI. */

/** A machine's runtime as a node reports it after authentication (in its welcome). */
export interface RuntimeInfo {
  /** `process.platform`: 'linux', 'darwin', 'win32'. */
  platform: string;
  /** `process.arch`: 'x64', 'arm64'. */
  arch: string;
  /** `process.version`: 'v20.20.2'. */
  node: string;
  /** `process.versions.modules`: the ABI native addons are built for ('115' for Node 20). */
  abi: string;
}

/** This process's runtime. */
export function localRuntime(): RuntimeInfo {
  return {
    platform: process.platform,
    arch: process.arch,
    node: process.version,
    abi: process.versions.modules ?? '',
  };
}

/** What a native addon needs to be the same: 'linux-x64-abi115'. */
export function runtimeKey(r: RuntimeInfo): string {
  return `${r.platform}-${r.arch}-abi${r.abi}`;
}

/** Readable: 'linux x64, Node v20.20.2 (ABI 115)'. */
export function describeRuntime(r: RuntimeInfo): string {
  return `${r.platform} ${r.arch}, Node ${r.node} (ABI ${r.abi})`;
}

/** A runtime as received: four short strings, or undefined. */
export function isRuntimeInfo(v: unknown): v is RuntimeInfo {
  if (v === null || typeof v !== 'object') return false;
  const r = v as Record<string, unknown>;
  return ['platform', 'arch', 'node', 'abi'].every(
    (k) => typeof r[k] === 'string' && (r[k] as string).length <= 64,
  );
}
