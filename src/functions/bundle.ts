/**
 * Main side of function shipping: turns a job's function, with its deps, modules and globals,
 * into a bundle a worker can compile once and cache by content hash. Undeclared identifiers
 * are found here, before anything is sent.
 *
 * The bundle's code is the body of `new Function(...bindings, code)`:
 *
 *   'use strict';
 *   class AD { ... }                          // deps, declared by name
 *   const isprime = (n => ...);
 *   function sum_primes(n) { ... }            // the entry, declared by its name when it has one
 *   return { fn: sum_primes, classes: { AD } };
 *
 * Bundles are cached (see getBundle), so repeated submits of one function cost a few lookups.
 */
import { createHash } from 'node:crypto';
import { builtinModules } from 'node:module';
import { PPError } from '../errors.ts';
import { encode } from '../protocol/codec.ts';
import {
  definitionProblem,
  type FunctionDefinition,
  GLOBALS_MAX_DEPTH,
  HEAD_LIMITS,
} from '../protocol/messages.ts';
import { analyzeSource, NATIVE_SOURCE_MESSAGE, type SourceInfo } from './analyze.ts';
import { RUNTIME_HELPERS } from './compile.ts';

/** A module for the job: 'node:crypto' (bound as `crypto`, see moduleBindingName) or { md5: 'some-pkg' }. */
export type ModuleSpec = string | Record<string, string>;

export interface FunctionSpec {
  /** The job's function, or [instance, 'method'] (the instance travels as `this`). */
  fn: Function | [object, string];
  /** Functions and classes the job uses, declared by their `name`. */
  deps?: readonly Function[];
  modules?: readonly ModuleSpec[];
  /** Plain values bound by name (sent with the codec). */
  globals?: Readonly<Record<string, unknown>>;
}

/** A function ready to ship: its definition (what travels, see FunctionDefinition) and what stays here. */
export interface FunctionBundle extends FunctionDefinition {
  /** The bundle's classes on the main side (deps, and the class of `this` in method form). */
  classes: Array<[name: string, ctor: Function]>;
  /** Method form: the object that travels as `this` (per job; not part of the hash). */
  thisArg?: object;
}

/** A job uses names it does not define; thrown by getBundle before anything is sent. */
export class UndeclaredIdentifierError extends PPError {
  override name = 'UndeclaredIdentifierError';
  /** The undeclared names, in order of first use. */
  readonly identifiers: string[];
  /** Display name of the job's function. */
  readonly functionName: string;
  constructor(functionName: string, identifiers: string[], message: string) {
    super(message);
    this.functionName = functionName;
    this.identifiers = identifiers;
  }
}

const IDENTIFIER_RE = /^[\p{ID_Start}$_][\p{ID_Continue}$\u200c\u200d]*$/u;
// Reserved words, strict-mode ones, and names strict code cannot bind.
const RESERVED = new Set(
  (
    'break case catch class const continue debugger default delete do else enum export extends false finally for ' +
    'function if import in instanceof new null return super switch this throw true try typeof var void while with ' +
    'yield let static implements interface package private protected public await eval arguments'
  ).split(' '),
);

function isBindableName(name: string): boolean {
  return IDENTIFIER_RE.test(name) && !RESERVED.has(name);
}

const HELPER_NAMES: readonly string[] = Object.keys(RUNTIME_HELPERS);
const HELPERS = new Set(HELPER_NAMES);

/**
 * Names a plain Node worker has as globals. Taken from this process, minus what only exists
 * here because of how it was started: `node -e` and the REPL expose builtin modules and
 * CommonJS's `require` as globals, workers do not.
 */
const STANDARD_GLOBALS: ReadonlySet<string> = (() => {
  const notInWorkers = new Set([
    ...builtinModules,
    'require',
    'module',
    'exports',
    '__filename',
    '__dirname',
  ]);
  for (const real of ['console', 'crypto', 'process']) notInWorkers.delete(real);
  const names = Object.getOwnPropertyNames(globalThis).filter((n) => !notInWorkers.has(n));
  return new Set([...names, 'arguments', 'undefined', 'globalThis']);
})();
const BUILTIN_MODULES = new Set(builtinModules.filter((m) => !m.startsWith('_')));

/**
 * The name a module specifier is bound to in the job: 'node:crypto' → 'crypto', 'fs/promises' →
 * 'fsPromises', '@scope/fast-deep-equal' → 'fastDeepEqual', 'lodash.merge' → 'lodashMerge',
 * './lib/helpers.js' → 'helpers'.
 */
export function moduleBindingName(specifier: string): string {
  let s = specifier.trim().replace(/^node:/, '');
  if (/^(\.{1,2}\/|\/|file:|[A-Za-z]:[\\/])/.test(s)) {
    // A path: its file name, without the extension.
    s = s
      .split(/[\\/]/)
      .pop()!
      .replace(/\.[cm]?[jt]sx?$/, '');
  } else {
    s = s.replace(/^@[^/]+\//, '');
    if (s.includes('/')) s = s.replace(/\.[cm]?[jt]sx?$/, '');
  }
  const parts = s.split(/[^\p{ID_Continue}$]+/u).filter(Boolean);
  let name = parts.map((p, i) => (i === 0 ? p : p[0]!.toUpperCase() + p.slice(1))).join('');
  if (/^\p{N}/u.test(name)) name = `_${name}`;
  if (!isBindableName(name)) {
    throw new TypeError(
      `cannot derive a binding name from module '${specifier}': name it yourself, e.g. { modules: [{ myName: '${specifier}' }] }`,
    );
  }
  return name;
}

// ---------------------------------------------------------------------------------------------
// Caches. A bundle depends only on the function's source text and name, the deps (by identity),
// the modules and the globals (by value identity), so:
//  - byFunction: the last bundle per function object, the usual hot path;
//  - bySource: per name + source text, so that a fresh `x => x + 1` per submit is not re-parsed;
//  - byMethod: per class and method name for [object, 'method'].
// The spec is copied when cached, so mutating a deps array in place is noticed; mutating an
// object *inside* globals is not (globals are taken as immutable once submitted).

interface Cached {
  deps: readonly Function[];
  modules: readonly ModuleSpec[];
  globals: Readonly<Record<string, unknown>>;
  bundle: FunctionBundle;
  /** Method form: the method function the bundle was made for. */
  method?: unknown;
}

const EMPTY: readonly never[] = Object.freeze([]);
const NO_GLOBALS: Readonly<Record<string, unknown>> = Object.freeze({});
const byFunction = new WeakMap<Function, Cached>();
const bySource = new Map<string, Cached[]>();
const BY_SOURCE_MAX = 1000;
const byMethod = new WeakMap<Function, Map<string, Cached>>();

/**
 * The bundle for a job's function (cached; do not mutate it). In method form the cached bundle
 * is returned as a shallow copy carrying `thisArg`, so the copy is per call but the code, hash
 * and arrays are shared.
 */
export function getBundle(spec: FunctionSpec): FunctionBundle {
  const { fn } = spec;
  if (Array.isArray(fn)) return getMethodBundle(fn, spec);
  if (typeof fn !== 'function') {
    throw new TypeError(`a job's function must be a function or [object, 'method'], got ${describe(fn)}`);
  }
  const last = byFunction.get(fn);
  if (last && sameSpec(last, spec)) return last.bundle;

  const source = Function.prototype.toString.call(fn);
  const key = `${fn.name}\0${source}`;
  let list = bySource.get(key);
  let hit = list?.find((c) => sameSpec(c, spec));
  if (!hit) {
    hit = cacheEntry(spec, buildPlain(fn, source, spec));
    if (!list) {
      if (bySource.size >= BY_SOURCE_MAX) bySource.delete(bySource.keys().next().value as string);
      bySource.set(key, (list = []));
    }
    if (list.length >= 8) list.shift();
    list.push(hit);
  }
  byFunction.set(fn, hit);
  return hit.bundle;
}

function getMethodBundle(pair: unknown[], spec: FunctionSpec): FunctionBundle {
  const [obj, method] = pair;
  if (pair.length !== 2 || obj === null || typeof obj !== 'object' || typeof method !== 'string') {
    throw new TypeError(`the method form is [object, 'methodName'], got [${pair.map(describe).join(', ')}]`);
  }
  const proto = Object.getPrototypeOf(obj) as object | null;
  const cls =
    proto && Object.hasOwn(proto, 'constructor')
      ? (proto as { constructor: unknown }).constructor
      : undefined;
  if (typeof cls === 'function' && cls.prototype === proto) {
    const hit = byMethod.get(cls)?.get(method);
    // Same method as when cached (a cached method is never a getter, so reading it is safe).
    if (hit && hit.method === (obj as Record<string, unknown>)[method] && sameSpec(hit, spec)) {
      return { ...hit.bundle, thisArg: obj };
    }
  }
  const { bundle, methodFn } = buildMethod(obj, method, spec);
  // buildMethod checked that cls is the object's class.
  let perClass = byMethod.get(cls as Function);
  if (!perClass) byMethod.set(cls as Function, (perClass = new Map()));
  const entry = cacheEntry(spec, bundle);
  entry.method = methodFn;
  perClass.set(method, entry);
  return { ...bundle, thisArg: obj };
}

function cacheEntry(spec: FunctionSpec, bundle: FunctionBundle): Cached {
  return {
    deps: spec.deps ? [...spec.deps] : EMPTY,
    modules: spec.modules ? spec.modules.map((m) => (typeof m === 'string' ? m : { ...m })) : EMPTY,
    globals: spec.globals ? { ...spec.globals } : NO_GLOBALS,
    bundle,
  };
}

function sameSpec(c: Cached, spec: FunctionSpec): boolean {
  const deps = spec.deps ?? EMPTY;
  if (deps.length !== c.deps.length) return false;
  for (let i = 0; i < deps.length; i++) if (deps[i] !== c.deps[i]) return false;
  const modules = spec.modules ?? EMPTY;
  if (modules.length !== c.modules.length) return false;
  for (let i = 0; i < modules.length; i++) {
    const a = modules[i]!;
    const b = c.modules[i]!;
    if (a !== b && (typeof a === 'string' || typeof b === 'string' || !sameRecord(a, b))) return false;
  }
  return sameRecord(spec.globals ?? NO_GLOBALS, c.globals);
}

/** Same keys in the same order (order decides bindings), values equal by Object.is. */
function sameRecord(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  if (a === b) return true;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (let i = 0; i < ka.length; i++) {
    const k = ka[i]!;
    if (k !== kb[i] || !Object.is(a[k], b[k])) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Building

/** One function or class declared by the bundle's code. */
interface Unit {
  fn: Function;
  name: string;
  source: string;
  info: SourceInfo;
  /** How error messages refer to it. */
  label: string;
}

function buildPlain(fn: Function, source: string, spec: FunctionSpec): FunctionBundle {
  const display = fn.name || '<anonymous>';
  const info = analyzeFor(source, `the job's function ${display}`);
  if (info.kind === 'class') {
    throw new TypeError(
      `the job's function ${display} is a class: submit a function, or [instance, 'methodName'] to call a method`,
    );
  }
  if (info.kind === 'method') checkMethodSource(info, `the job's function ${display}`, true);
  const modules = normalizeModules(spec.modules ?? EMPTY);
  const globals = normalizeGlobals(spec.globals ?? NO_GLOBALS, modules);
  const deps = collectDeps(spec.deps ?? EMPTY, [], modules, globals);

  let entryExpr: string;
  let entryUnit: Unit | undefined;
  const asDep = deps.find((u) => u.fn === fn);
  if (asDep) {
    entryExpr = asDep.name;
  } else if (fn.name && isBindableName(fn.name)) {
    // Declared under its name, so that an arrow stored in a const can call itself.
    const clash = deps.find((u) => u.name === fn.name);
    if (clash) throw new TypeError(`the job's function and one of its deps are both named ${fn.name}`);
    checkNameFree(fn.name, `the job's function ${fn.name}`, modules, globals);
    entryUnit = { fn, name: fn.name, source, info, label: fn.name };
    entryExpr = fn.name;
  } else {
    entryExpr = info.kind === 'method' ? methodExpression(source, info) : `(${source}\n)`;
  }

  const units = entryUnit ? [...deps, entryUnit] : deps;
  // Undeclared names: the entry's first, then each dep's.
  const checked: Array<{ label: string; free: readonly string[] }> = [
    { label: display, free: info.free },
    ...deps.filter((u) => u.fn !== fn).map((u) => ({ label: `${u.name} (in deps)`, free: u.info.free })),
  ];
  return assemble({
    display,
    submitHint: fn.name && isBindableName(fn.name) ? fn.name : 'fn',
    depNamesGiven: deps.map((u) => u.name),
    units,
    entryExpr,
    checked,
    modules,
    globals,
  });
}

function buildMethod(
  obj: object,
  method: string,
  spec: FunctionSpec,
): { bundle: FunctionBundle; methodFn: Function } {
  const proto = Object.getPrototypeOf(obj) as object | null;
  if (proto === null || proto === Object.prototype) {
    throw new TypeError(
      `[object, '${method}']: the object is a plain object. Its methods cannot travel with it (only data is sent), ` +
        'so the method form needs an instance of a class: declare a class with the method and pass an instance of it',
    );
  }
  const cls = Object.hasOwn(proto, 'constructor')
    ? (proto as { constructor: unknown }).constructor
    : undefined;
  if (typeof cls !== 'function' || cls.prototype !== proto) {
    throw new TypeError(
      `[object, '${method}']: the object is not an instance of a class (its prototype has no matching constructor)`,
    );
  }
  const clsName = cls.name;
  const display = `${clsName || '<anonymous class>'}.${method}`;
  let clsInfo: SourceInfo;
  try {
    clsInfo = analyzeSource(Function.prototype.toString.call(cls));
  } catch (error) {
    if (error instanceof TypeError && error.message === NATIVE_SOURCE_MESSAGE) {
      throw new TypeError(
        `[object, '${method}']: ${clsName || 'the class'} is a built-in class, which cannot be shipped`,
      );
    }
    throw error;
  }
  if (clsInfo.kind !== 'class') {
    throw new TypeError(
      `[object, '${method}']: the object's class ${clsName} is not declared with \`class\`; the method form ships the class, so declare it as a class`,
    );
  }
  if (!isBindableName(clsName)) {
    throw new TypeError(
      `[object, '${method}']: the object's class has no usable name; give the class a name`,
    );
  }
  // Find the method without calling getters.
  const owner = findOwner(obj, method);
  if (!owner) throw new TypeError(`[object, '${method}']: ${clsName} has no method '${method}'`);
  const desc = Object.getOwnPropertyDescriptor(owner, method)!;
  if (desc.get || desc.set)
    throw new TypeError(`[object, '${method}']: ${clsName}.${method} is a getter/setter, not a method`);
  if (typeof desc.value !== 'function') {
    throw new TypeError(
      `[object, '${method}']: ${clsName}.${method} is ${describe(desc.value)}, not a method`,
    );
  }
  if (owner === obj) {
    throw new TypeError(
      `[object, '${method}']: '${method}' is a property of the object itself (an arrow function field?), not a method of ${clsName}; define it as a method in the class body`,
    );
  }

  const modules = normalizeModules(spec.modules ?? EMPTY);
  const globals = normalizeGlobals(spec.globals ?? NO_GLOBALS, modules);
  const bound = new Set([...modules.map(([b]) => b), ...Object.keys(globals)]);
  // The class travels with its user-written superclasses; the chain stops at built-in classes
  // and at names the job binds as modules or globals.
  const chain: Function[] = [cls];
  for (let sup = Object.getPrototypeOf(cls); typeof sup === 'function' && sup !== Function.prototype; ) {
    if (
      !isBindableName(sup.name) ||
      bound.has(sup.name) ||
      (globalThis as Record<string, unknown>)[sup.name] === sup
    ) {
      break;
    }
    let kind: string;
    try {
      kind = analyzeSource(Function.prototype.toString.call(sup)).kind;
    } catch {
      break;
    }
    if (kind !== 'class') break;
    chain.unshift(sup);
    sup = Object.getPrototypeOf(sup);
  }
  const userDeps = spec.deps ?? EMPTY;
  const labels = new Map<Function, string>(
    chain.map((c) => [
      c,
      c === cls ? `${clsName} (the class of \`this\`)` : `${c.name} (superclass of ${clsName})`,
    ]),
  );
  const units = collectDeps(userDeps, chain, modules, globals, labels);
  const methodAccess = isBindableName(method) ? `.${method}` : `[${JSON.stringify(method)}]`;
  const userUnits = units.filter((u) => !labels.has(u.fn));
  const chainUnits = chain.map((c) => units.find((u) => u.fn === c)!);
  // Messages list the class of `this` first, then its superclasses, then the user's deps.
  chainUnits.unshift(chainUnits.pop()!);
  const bundle = assemble({
    display,
    submitHint: `[obj, '${method}']`,
    depNamesGiven: userUnits.map((u) => u.name),
    units,
    entryExpr: `${clsName}.prototype${methodAccess}`,
    checked: [...chainUnits, ...userUnits].map((u) => ({ label: u.label, free: u.info.free })),
    modules,
    globals,
  });
  return { bundle, methodFn: desc.value };
}

function findOwner(obj: object, key: string): object | undefined {
  for (let o: object | null = obj; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    if (Object.hasOwn(o, key)) return o;
  }
  return undefined;
}

function analyzeFor(source: string, what: string): SourceInfo {
  try {
    return analyzeSource(source);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const wrapped =
      error instanceof SyntaxError
        ? new SyntaxError(`${what}: ${message}`)
        : new TypeError(`${what}: ${message}`);
    throw wrapped;
  }
}

/** Method shorthand can only be shipped when it does not need its object or class. */
function checkMethodSource(info: SourceInfo, what: string, entry: boolean): void {
  if (info.accessor) throw new TypeError(`${what} is a ${info.accessor}ter, not a function; pass a function`);
  if (info.computedKey) {
    throw new TypeError(
      `${what} is a method with a computed name ([...]() {...}), which cannot be shipped on its own`,
    );
  }
  if (info.usesSuper) {
    const fix = entry ? ": submit it as [instance, 'methodName'] so that its class travels with it" : '';
    throw new TypeError(`${what} is a method that uses \`super\`, which only works inside its class${fix}`);
  }
}

function methodExpression(source: string, info: SourceInfo): string {
  return `({${source}\n})[${JSON.stringify(info.id)}]`;
}

function normalizeModules(specs: readonly ModuleSpec[]): Array<[string, string]> {
  if (!Array.isArray(specs)) throw new TypeError(`modules must be an array, got ${describe(specs)}`);
  const out: Array<[string, string]> = [];
  const add = (binding: string, specifier: unknown) => {
    if (typeof specifier !== 'string' || specifier === '') {
      throw new TypeError(
        `module ${binding}: the specifier must be a non-empty string, got ${describe(specifier)}`,
      );
    }
    if (!isBindableName(binding))
      throw new TypeError(`module binding name \`${binding}\` is not a valid identifier`);
    if (HELPERS.has(binding))
      throw new TypeError(`module binding name \`${binding}\` is reserved for pp-node's runtime`);
    if (out.some(([b]) => b === binding)) {
      throw new TypeError(
        `two modules are bound to \`${binding}\`; name one yourself, e.g. { modules: [{ other: 'specifier' }] }`,
      );
    }
    out.push([binding, specifier]);
  };
  for (const spec of specs) {
    if (typeof spec === 'string') add(moduleBindingName(spec), spec);
    else if (spec !== null && typeof spec === 'object' && !Array.isArray(spec)) {
      for (const [binding, specifier] of Object.entries(spec)) add(binding, specifier);
    } else {
      throw new TypeError(
        `modules entries are 'specifier' or { binding: 'specifier' }, got ${describe(spec)}`,
      );
    }
  }
  return out;
}

function normalizeGlobals(
  globals: Readonly<Record<string, unknown>>,
  modules: Array<[string, string]>,
): Record<string, unknown> {
  if (globals === null || typeof globals !== 'object' || Array.isArray(globals)) {
    throw new TypeError(`globals must be an object of name: value, got ${describe(globals)}`);
  }
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(globals)) {
    // '__proto__' would set the prototype of the record instead of adding a value.
    if (!isBindableName(name) || name === '__proto__') {
      throw new TypeError(`globals: \`${name}\` is not a usable name`);
    }
    if (HELPERS.has(name)) throw new TypeError(`globals: \`${name}\` is reserved for pp-node's runtime`);
    if (modules.some(([b]) => b === name))
      throw new TypeError(`globals: \`${name}\` is also a module binding`);
    if (typeof value === 'function') {
      throw new TypeError(
        `globals: \`${name}\` is a function; pass functions and classes in deps: { deps: [${name}] }`,
      );
    }
    out[name] = value;
  }
  return out;
}

/** Validates deps (then `extra`, deduplicated by identity) and analyses their sources. */
function collectDeps(
  deps: readonly Function[],
  extra: readonly Function[],
  modules: Array<[string, string]>,
  globals: Record<string, unknown>,
  labels?: Map<Function, string>,
): Unit[] {
  if (!Array.isArray(deps))
    throw new TypeError(`deps must be an array of functions and classes, got ${describe(deps)}`);
  const units: Unit[] = [];
  const all = [...deps, ...extra];
  for (let i = 0; i < all.length; i++) {
    const dep = all[i];
    const where = i < deps.length ? `deps[${i}]` : 'the class';
    if (typeof dep !== 'function') {
      throw new TypeError(
        `${where} is ${describe(dep)}, not a function or class; pass plain values as { globals: { name: value } }`,
      );
    }
    if (units.some((u) => u.fn === dep)) continue;
    const name = dep.name;
    if (!name || !isBindableName(name)) {
      throw new TypeError(
        `${where} ${name ? `is named '${name}', which is not a usable name` : 'has no name'}: the job refers to deps by name, so give it one (function name() {...}, class Name {...}, or assign it to a const before passing it)`,
      );
    }
    if (units.some((u) => u.name === name)) {
      throw new TypeError(
        `two different deps are named ${name}; each dep is declared under its name, so rename one`,
      );
    }
    checkNameFree(name, `dep ${name}`, modules, globals);
    const source = Function.prototype.toString.call(dep);
    const info = analyzeFor(source, `dep ${name}`);
    if (info.kind === 'method') checkMethodSource(info, `dep ${name}`, false);
    units.push({ fn: dep, name, source, info, label: labels?.get(dep) ?? `${name} (in deps)` });
  }
  return units;
}

function checkNameFree(
  name: string,
  what: string,
  modules: Array<[string, string]>,
  globals: Record<string, unknown>,
): void {
  if (HELPERS.has(name)) throw new TypeError(`${what}: the name ${name} is reserved for pp-node's runtime`);
  if (modules.some(([b]) => b === name)) throw new TypeError(`${what}: ${name} is also a module binding`);
  if (Object.hasOwn(globals, name)) throw new TypeError(`${what}: ${name} is also a name in globals`);
}

interface Assembly {
  display: string;
  /** How the user's submit call names the function, for messages. */
  submitHint: string;
  /** Names of the deps the user passed, for the suggested fix. */
  depNamesGiven: string[];
  /** Everything the code declares, in the given order. */
  units: Unit[];
  entryExpr: string;
  /** Whose free names to check, in the order messages list them. */
  checked: Array<{ label: string; free: readonly string[] }>;
  modules: Array<[string, string]>;
  globals: Record<string, unknown>;
}

function assemble(a: Assembly): FunctionBundle {
  const globalNames = Object.keys(a.globals);
  const declared = new Set<string>([
    ...a.units.map((u) => u.name),
    ...a.modules.map(([b]) => b),
    ...globalNames,
  ]);
  const missing: Array<{ label: string; names: string[] }> = [];
  const used = new Set<string>();
  for (const { label, free } of a.checked) {
    const names: string[] = [];
    for (const n of free) {
      used.add(n);
      if (!declared.has(n) && !STANDARD_GLOBALS.has(n) && !HELPERS.has(n)) names.push(n);
    }
    if (names.length) missing.push({ label, names });
  }
  if (missing.length) throw undeclaredError(a, missing);
  for (const u of a.units) for (const n of u.info.free) used.add(n);

  const ordered = orderUnits(a.units);
  const classUnits = ordered.filter((u) => u.info.kind === 'class');
  const lines = ["'use strict';"];
  for (const u of ordered) lines.push(declaration(u));
  const classList = classUnits.length ? `{ ${classUnits.map((u) => u.name).join(', ')} }` : '{}';
  lines.push(`return { fn: ${a.entryExpr}, classes: ${classList} };`);
  const code = lines.join('\n');

  const helpers = HELPER_NAMES.filter((h) => used.has(h) && !declared.has(h));
  const modules = a.modules;
  const bindings = [...modules.map(([b]) => b), ...globalNames, ...helpers];
  const classes = classUnits.map((u): [string, Function] => [u.name, u.fn]);
  const encodedGlobals = encodeGlobals(a.globals, a.display);
  const hash = hashBundle(a.display, code, modules, globalNames, bindings, encodedGlobals);
  const bundle: FunctionBundle = Object.freeze({
    hash,
    name: a.display,
    code,
    bindings: Object.freeze(bindings) as string[],
    modules: Object.freeze(modules) as Array<[string, string]>,
    globals: Object.freeze(a.globals),
    classes: Object.freeze(classes) as Array<[string, Function]>,
  });
  if (encodedGlobals) checkDefinitionFits(bundle);
  return bundle;
}

/**
 * Globals travel in the head of the message that defines the function, which workers and
 * nodes decode with {@link HEAD_LIMITS}: globals past them would be refused there, after
 * submit, so they are refused here. (Without globals a head is always within the limits.)
 */
function checkDefinitionFits(b: FunctionBundle): void {
  const { hash, name, code, bindings, modules, globals } = b;
  const problem = definitionProblem({ hash, name, code, bindings, modules, globals });
  if (!problem) return;
  const { limit, path, error } = problem;
  throw new RangeError(
    limit === 'depth'
      ? `the globals of ${name} nest too deep to be sent: ${path} is more than ${GLOBALS_MAX_DEPTH} levels down, ` +
          `the most globals may nest (they travel in a message head that workers decode at most ` +
          `${HEAD_LIMITS.maxDepth} levels deep). Pass deeply nested data as an argument instead.`
      : `the globals of ${name} hold too many values to be sent: they travel in a message head that workers ` +
          `decode with at most ${HEAD_LIMITS.maxItems} values, counting every element and key (a typed array ` +
          `counts as one). Pass large data as an argument instead, or store it once with server.put() and pass the Ref.`,
    { cause: error },
  );
}

/** `class A {...}` / `function f() {...}` as they are when the source declares the right name, else a const. */
function declaration(u: Unit): string {
  const { info, source, name } = u;
  if ((info.kind === 'function' || info.kind === 'class') && info.id === name) return source;
  if (info.kind === 'method') return `const ${name} = ${methodExpression(source, info)};`;
  return `const ${name} = (${source}\n);`;
}

/**
 * The given order, except that whatever a class needs while it is being defined (its
 * superclass, what its static blocks and fields call) is moved before it: unlike functions,
 * classes are evaluated where they are declared.
 */
function orderUnits(units: Unit[]): Unit[] {
  const byName = new Map(units.map((u) => [u.name, u]));
  const state = new Map<Unit, 'visiting' | 'done'>();
  const out: Unit[] = [];
  const needs = (u: Unit): Set<string> => {
    const result = new Set<string>();
    if (u.info.kind !== 'class') return result;
    const stack = [...u.info.definitionTime];
    while (stack.length) {
      const n = stack.pop()!;
      if (result.has(n)) continue;
      result.add(n);
      // A function called at definition time may use anything it refers to.
      const d = byName.get(n);
      if (d && d.info.kind !== 'class') stack.push(...d.info.free);
    }
    return result;
  };
  const visit = (u: Unit): void => {
    if (state.has(u)) return;
    state.set(u, 'visiting');
    for (const n of needs(u)) {
      const d = byName.get(n);
      if (d && d !== u) visit(d);
    }
    state.set(u, 'done');
    out.push(u);
  };
  for (const u of units) visit(u);
  return out;
}

function undeclaredError(
  a: Assembly,
  missing: Array<{ label: string; names: string[] }>,
): UndeclaredIdentifierError {
  const all = [...new Set(missing.flatMap((m) => m.names))];
  const sentences = missing.map(
    (m) => `${m.label} uses ${listNames(m.names)}, which the job does not define.`,
  );
  const one = all.length === 1;
  const deps = [...a.depNamesGiven, ...all].join(', ');
  const builtin = all.find((n) => BUILTIN_MODULES.has(n));
  const moduleHint = builtin ? `'node:${builtin}'` : "'…'";
  let fix =
    `Pass ${one ? 'it' : 'them'} with the job: submit(${a.submitHint}, args, { deps: [${deps}] }) for ` +
    `${one ? 'a function or class' : 'functions and classes'}, { modules: [${moduleHint}] } for ${one ? 'a module' : 'modules'}, ` +
    `or { globals: { ${all[0]}: value } } for ${one ? 'a plain value' : 'plain values'}.`;
  if (all.includes('require')) {
    fix += " Shipped functions have no `require`: list the module in { modules: ['…'] } and use its binding.";
  }
  const message = [...sentences, fix].join(missing.length === 1 ? ' ' : '\n');
  return new UndeclaredIdentifierError(a.display, all, message);
}

function listNames(names: string[]): string {
  const quoted = names.map((n) => `\`${n}\``);
  return quoted.length === 1 ? quoted[0]! : `${quoted.slice(0, -1).join(', ')} and ${quoted.at(-1)}`;
}

/**
 * The globals' bytes for the hash (the codec names the offending value: `globals.x: ...`).
 * Encoded without the bundle's classes: a worker decodes globals with the definition, before
 * the classes exist, so they must be plain values.
 */
function encodeGlobals(globals: Record<string, unknown>, display: string): Uint8Array | undefined {
  if (Object.keys(globals).length === 0) return undefined;
  try {
    return encode(globals, undefined, 'globals');
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    // The codec's advice for instances (pass the class in deps) does not hold for globals.
    const reason = message.replace(/: pass the class in deps.*$/, '');
    const advice = reason === message ? '' : ' Pass class instances as arguments instead.';
    throw new TypeError(
      `the globals of ${display} must be plain values (numbers, strings, arrays, objects, Maps...): ` +
        `${reason}.${advice}`,
      { cause: error },
    );
  }
}

/** Content hash: every part length-prefixed, so that no two different definitions can collide by concatenation. */
function hashBundle(
  name: string,
  code: string,
  modules: Array<[string, string]>,
  globalNames: string[],
  bindings: string[],
  encodedGlobals: Uint8Array | undefined,
): string {
  const h = createHash('sha256');
  const part = (data: string | Uint8Array) => {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    h.update(`${bytes.byteLength}:`);
    h.update(bytes);
  };
  part('pp-node/function-bundle/1');
  part(name);
  part(code);
  part(JSON.stringify(modules));
  part(JSON.stringify(globalNames));
  part(JSON.stringify(bindings));
  part(encodedGlobals ?? '');
  return h.digest('hex');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'function') return `function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object')
    return `an object (${Object.getPrototypeOf(value)?.constructor?.name ?? 'null prototype'})`;
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value} ${String(value)}`;
}
