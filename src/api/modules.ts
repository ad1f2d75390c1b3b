/**
 * The server's side of module shipping (modules/pack.ts): which packs a function needs,
 * resolved once, at its first submit, from the file that called submit; written to this
 * machine's module cache for the local workers; and, for native addons, which nodes can
 * load them.
 */
import type { FunctionBundle } from '../functions/bundle.ts';
import {
  callerDir,
  DEFAULT_MAX_MODULE_BYTES,
  ModuleError,
  type ModulePlan,
  planModules,
} from '../modules/pack.ts';
import { PackStore } from '../modules/store.ts';
import type { ComputeNode } from '../nodes/compute-node.ts';
import { describeRuntime, localRuntime, runtimeKey } from '../protocol/runtime-info.ts';

/** What a function's jobs need of the modules it names. */
export interface FunctionModules {
  /** Per module of the bundle: the pack's hash, or '' (Node's own module). */
  readonly packages: string[];
  /** Set when a pack holds a native addon: the runtimeKey a node must have to run its jobs. */
  readonly needsRuntime: string | undefined;
  readonly plan: ModulePlan;
}

export class ModuleShipping {
  readonly store: PackStore;
  readonly maxModuleBytes: number;
  private readonly byBundle = new WeakMap<FunctionBundle, FunctionModules | null>();
  private readonly localKey = runtimeKey(localRuntime());

  private readonly installed: ReadonlySet<string>;
  /** Packs this server's workers may load: never evicted by its own writes. */
  private readonly used = new Set<string>();

  constructor(opts: {
    cacheDir?: string | undefined;
    maxModuleBytes?: number | undefined;
    installedModules?: readonly string[] | undefined;
  }) {
    this.installed = new Set(opts.installedModules ?? []);
    const max = opts.maxModuleBytes ?? DEFAULT_MAX_MODULE_BYTES;
    if (!(Number.isSafeInteger(max) && max > 0))
      throw new RangeError(`maxModuleBytes must be a positive number of bytes, got ${max}`);
    this.maxModuleBytes = max;
    this.store = new PackStore(opts.cacheDir);
  }

  /**
   * The packs of a bundle's modules, or null when it names only Node's own. Built and stored
   * at the first call for the bundle (the first submit of the function), resolved from the
   * file that called submit; throws a ModuleError when a module cannot travel (then the next
   * submit tries again).
   */
  of(bundle: FunctionBundle): FunctionModules | null {
    const known = this.byBundle.get(bundle);
    if (known !== undefined) return known;
    if (bundle.modules.length === 0) {
      this.byBundle.set(bundle, null);
      return null;
    }
    const plan = planModules(bundle.modules, callerDir(), this.maxModuleBytes, this.installed);
    let result: FunctionModules | null = null;
    if (plan) {
      for (const pack of plan.packs) {
        try {
          this.used.add(pack.hash);
          this.store.put(pack, this.used);
        } catch (error) {
          throw new ModuleError(
            `module '${pack.specifier}' cannot be written to the module cache ${this.store.dir}, where workers load it: ` +
              `${(error as Error).message}. Pass another cacheDir to new Server().`,
            pack.specifier,
          );
        }
      }
      result = {
        packages: plan.hashes,
        needsRuntime: plan.native.length > 0 ? this.localKey : undefined,
        plan,
      };
    }
    this.byBundle.set(bundle, result);
    return result;
  }

  /**
   * Throws when no node could ever run a job with native addons: every node has said it runs
   * another platform, arch or Node ABI (and local workers are off). A node not connected yet
   * might, so then the job waits for it.
   */
  checkRunnable(mods: FunctionModules, nodes: readonly ComputeNode[], fnName: string): void {
    const need = mods.needsRuntime;
    if (need === undefined) return;
    const others: string[] = [];
    for (const n of nodes) {
      const key = n.runtimeKey;
      if (key === need && (n.id !== 'local' || n.ncpus > 0)) return;
      if (key === undefined) return; // not connected yet: it may match
      if (n.id === 'local') continue;
      const info = (n as { info?: { runtime?: Parameters<typeof describeRuntime>[0] } | null }).info;
      others.push(
        `node ${n.id} runs ${info?.runtime ? describeRuntime(info.runtime) : 'an older pp-node that does not say its platform'}`,
      );
    }
    const pack = mods.plan.native[0]!;
    throw new ModuleError(
      `${fnName} needs module '${pack.specifier}', whose package ${pack.native.join(', ')} holds a native addon ` +
        `(.node) built for ${describeRuntime(localRuntime())}; it only loads on a node of the same platform, arch ` +
        `and Node ABI, and none can run it${others.length ? ` (${others.join('; ')})` : ''}. Run it on local ` +
        `workers (ncpus > 0) or on a node that matches, or use a package without native code.`,
      pack.specifier,
    );
  }
}
