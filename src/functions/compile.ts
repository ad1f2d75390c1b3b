/**
 * Worker side of function shipping: turns a bundle's code back into a callable function.
 * Kept free of parser imports (acorn, periscopic) so that workers start fast.
 */

export interface CompiledFunction {
  /** The job's function; the runtime calls `entry.apply(thisArg, args)`. */
  entry: Function;
  /** The bundle's classes, by name, for the codec's class registry. */
  classes: Array<[name: string, ctor: Function]>;
  name: string;
}

// Helpers that compilers inject into function sources (esbuild/tsx: __name, __publicField,
// __defProp, __async; tsc: __awaiter). They live at the top of the original module, not in the
// function's own text, so the worker provides them.

const __defProp = Object.defineProperty;

function __name<T extends object>(target: T, value: string): T {
  return __defProp(target, 'name', { value, configurable: true });
}

function __publicField(obj: object, key: PropertyKey, value: unknown): unknown {
  __defProp(obj, typeof key === 'symbol' ? key : `${String(key)}`, {
    value,
    enumerable: true,
    configurable: true,
    writable: true,
  });
  return value;
}

/** tslib's __awaiter (tsc's lowering of async functions for targets below ES2017). */
function __awaiter(
  thisArg: unknown,
  args: unknown,
  P: PromiseConstructor | undefined,
  generator: (...a: unknown[]) => Generator,
): Promise<unknown> {
  const Ctor = P || Promise;
  const adopt = (value: unknown): Promise<unknown> =>
    value instanceof Ctor ? value : new Ctor((resolve) => resolve(value));
  return new Ctor((resolve, reject) => {
    let gen: Generator;
    const fulfilled = (value: unknown): void => {
      try {
        step(gen.next(value));
      } catch (e) {
        reject(e);
      }
    };
    const rejected = (value: unknown): void => {
      try {
        step(gen.throw(value));
      } catch (e) {
        reject(e);
      }
    };
    const step = (result: IteratorResult<unknown>): void => {
      if (result.done) resolve(result.value);
      else adopt(result.value).then(fulfilled, rejected);
    };
    gen = generator.apply(thisArg, (args || []) as unknown[]);
    step(gen.next());
  });
}

/** esbuild's lowering of async functions to generators: tslib's __awaiter with native Promises. */
function __async(
  thisArg: unknown,
  args: unknown,
  generator: (...a: unknown[]) => Generator,
): Promise<unknown> {
  return __awaiter(thisArg, args, Promise, generator);
}

/** Runtime helpers by the name shipped code uses for them. */
export const RUNTIME_HELPERS: Record<string, unknown> = Object.freeze({
  __name,
  __publicField,
  __defProp,
  __awaiter,
  __async,
});

/**
 * Compiles a bundle: `new Function(...bindings, code)(...values)`, with runtime helpers bound by
 * name. `values` maps binding names (modules and globals) to their values.
 */
export function compileBundle(
  def: { code: string; bindings: string[]; name: string },
  values: Record<string, unknown>,
): CompiledFunction {
  const args = def.bindings.map((binding) => {
    if (Object.hasOwn(values, binding)) return values[binding];
    if (Object.hasOwn(RUNTIME_HELPERS, binding)) return RUNTIME_HELPERS[binding];
    throw new Error(`cannot compile function ${def.name}: no value for its binding \`${binding}\``);
  });
  let factory: Function;
  try {
    // sourceURL names the function in stack traces of errors thrown by the job.
    factory = new Function(...def.bindings, `${def.code}\n//# sourceURL=pp-node:${sourceUrlName(def.name)}`);
  } catch (error) {
    throw new SyntaxError(`cannot compile function ${def.name}: ${messageOf(error)}`, { cause: error });
  }
  let made: { fn?: unknown; classes?: Record<string, unknown> } | undefined;
  try {
    made = factory(...args);
  } catch (error) {
    // e.g. a class whose static block throws, or `extends` something that is not a class.
    const wrapped = new Error(`defining function ${def.name} failed: ${messageOf(error)}`, { cause: error });
    if (error instanceof Error) wrapped.name = error.name;
    throw wrapped;
  }
  if (typeof made?.fn !== 'function') {
    throw new TypeError(`function ${def.name} compiled to ${describe(made?.fn)}, not a function`);
  }
  const classes: Array<[string, Function]> = [];
  for (const [name, ctor] of Object.entries(made.classes ?? {})) {
    if (typeof ctor === 'function') classes.push([name, ctor]);
  }
  return { entry: made.fn, classes, name: def.name };
}

/**
 * What a module specifier binds to: the namespace, except when it has `default` and every other
 * export is also a property of `default` (CommonJS modules and node: builtins), then `default`,
 * so that `crypto.createHash` and `_.merge` work as with `import crypto from 'node:crypto'`.
 */
export function moduleExportValue(namespace: object): unknown {
  if (!('default' in namespace)) return namespace;
  const def = (namespace as { default: unknown }).default;
  if (def === null || (typeof def !== 'object' && typeof def !== 'function')) {
    return Object.keys(namespace).length === 1 ? def : namespace;
  }
  for (const key of Object.keys(namespace)) {
    // Newer Node versions also export CommonJS modules under 'module.exports'.
    if (key === 'default' || key === 'module.exports') continue;
    if (!(key in (def as object))) return namespace;
  }
  return def;
}

function sourceUrlName(name: string): string {
  return name.replace(/[^\w$.<>-]/g, '_') || 'anonymous';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function describe(value: unknown): string {
  return value === null ? 'null' : typeof value;
}
