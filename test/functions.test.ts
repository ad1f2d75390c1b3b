import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as nodeCrypto from 'node:crypto';
import path from 'node:path';
import { describe, test } from 'node:test';
import { freeIdentifiers, sourceKind } from '../src/functions/analyze.ts';
import {
  type FunctionBundle,
  type FunctionSpec,
  getBundle,
  moduleBindingName,
  UndeclaredIdentifierError,
} from '../src/functions/bundle.ts';
import { compileBundle, moduleExportValue, RUNTIME_HELPERS } from '../src/functions/compile.ts';
import { GLOBALS_MAX_DEPTH } from '../src/protocol/messages.ts';

// Functions below are compiled by tsx, so their sources carry esbuild's __name helpers, as
// real users' functions do.

function isprime(n: number): boolean {
  if (n < 2) return false;
  if (n === 2) return true;
  if (n % 2 === 0) return false;
  const max = Math.trunc(Math.sqrt(n));
  for (let i = 3; i < max + 1; i += 2) {
    if (n % i === 0) return false;
  }
  return true;
}

function sum_primes(n: number): number {
  let sum = 0;
  for (let i = 2; i <= n; i++) if (isprime(i)) sum += i;
  return sum;
}

class AD {
  x: number;
  dx: number;
  constructor(x: number, dx = 0.0) {
    this.x = x;
    this.dx = dx;
  }
  pow(val: number): AD {
    return new AD(this.x ** val, val * this.x ** (val - 1) * this.dx);
  }
  add(val: AD | number): AD {
    if (val instanceof AD) return new AD(this.x + val.x, this.dx + val.dx);
    return new AD(this.x + val, this.dx);
  }
  mul(val: AD | number): AD {
    if (val instanceof AD) return new AD(this.x * val.x, this.x * val.dx + val.x * this.dx);
    return new AD(this.x * val, val * this.dx);
  }
  div(val: number): AD {
    return this.mul(1 / val);
  }
  sub(val: number): AD {
    return new AD(this.x - val, this.dx);
  }
}

class PartialSum {
  n: number;
  constructor(n: number) {
    this.n = n;
  }
  t_log(x: AD): AD {
    return this.partial_sum(x.sub(1));
  }
  partial_sum(x: AD): AD {
    let sum = new AD(0);
    for (let i = 1; i < this.n; i++)
      sum = sum.add(
        x
          .pow(i)
          .mul(i % 2 ? 1 : -1)
          .div(i),
      );
    return sum;
  }
}

/** Makes a function from source text, as another compiler (tsc) or `new Function` would. */
function fromSource(src: string): Function {
  return new Function(`return (${src}\n)`)() as Function;
}

/** Compiles in-process what a worker would compile. */
async function compile(bundle: FunctionBundle, extra: Record<string, unknown> = {}) {
  const values: Record<string, unknown> = { ...bundle.globals, ...extra };
  for (const [binding, specifier] of bundle.modules) {
    values[binding] = moduleExportValue(await import(specifier));
  }
  return compileBundle(bundle, values);
}

function throwsUndeclared(spec: FunctionSpec): UndeclaredIdentifierError {
  try {
    getBundle(spec);
  } catch (error) {
    assert.ok(error instanceof UndeclaredIdentifierError, `expected UndeclaredIdentifierError, got ${error}`);
    return error;
  }
  assert.fail('expected getBundle to throw');
}

describe('freeIdentifiers', () => {
  const cases: Array<[string, string[]]> = [
    // destructuring, defaults referencing outer names, arguments
    [
      'function f(a, {b, c: [d = e]} = g) { return a + b + d + arguments[0] + h }',
      ['e', 'g', 'arguments', 'h'],
    ],
    ['({ a, ...rest }) => [a, rest, other]', ['other']],
    ['function f(a, b = a + k) { const { x = y } = b; return x }', ['k', 'y']],
    // closures and shadowing
    ['function outer() { const k = 1; return () => k + z }', ['z']],
    ['function f(Math) { return Math.max(1) }', []],
    ['x => { const Date = 1; { let later2 = 2 } return Date + later2 }', ['later2']],
    // hoisting
    ['function f() { return g() + v; function g() { return 1 } var v = 2 }', []],
    ['function f() { { var v = 1 } return v }', []],
    // labels, catch
    ['x => { outer: for (const y of z) { if (y) continue outer; break outer } }', ['z']],
    ['function f() { try { q() } catch (err) { return err } finally { r() } }', ['q', 'r']],
    ['function f() { try { q() } catch { return err } }', ['q', 'err']],
    // classes: fields, static blocks (a scope of their own), private members, own name
    [
      'class A { x = this.y + k; static { const s = 1; use(s) } static z = s; #p() { return w } static m() { return A } }',
      ['k', 'use', 's', 'w'],
    ],
    ['class extends Base { m() { return class Q { n() { return Q } } } }', ['Base']],
    // biome-ignore lint/suspicious/noTemplateCurlyInString: JavaScript source text under test
    ['class C { [key] = 1; [`${name}2`]() {} }', ['key', 'name']],
    // this, arguments, new.target
    ['function f() { return this.x + arguments.length + (new.target ? 1 : 0) }', ['arguments']],
    // template literals, tagged templates, optional chaining, member access, object keys
    // biome-ignore lint/suspicious/noTemplateCurlyInString: JavaScript source text under test
    ['a => `${a}${b}` + tag`x${c}`', ['b', 'tag', 'c']],
    ['a => a?.b?.[c]?.(d) + foo.bar.baz', ['c', 'd', 'foo']],
    ['() => ({ a: b, [c]: 1, d, e() { return f } })', ['b', 'c', 'd', 'f']],
    // assignment to an undeclared name
    ['() => { leaked = 1 }', ['leaked']],
    // getters and method shorthand
    ['get g() { return gg }', ['gg']],
    ['async m(x) { for await (const v of x) sink(v) }', ['sink']],
    // trailing comment in an arrow's source
    ['x => x + y // comment', ['y']],
  ];
  for (const [source, expected] of cases) {
    test(source, () => {
      assert.deepEqual(freeIdentifiers(source), expected);
    });
  }

  test('tsx-compiled sources mention __name', () => {
    function outer(a: number) {
      function inner() {
        return a;
      }
      return inner();
    }
    assert.deepEqual(freeIdentifiers(outer.toString()), ['__name']);
    assert.deepEqual(freeIdentifiers(sum_primes.toString()), ['isprime']);
    assert.deepEqual(freeIdentifiers(PartialSum.toString()), ['__name', 'AD']);
  });
});

describe('sourceKind', () => {
  test('kinds', () => {
    const obj = {
      m(x: number) {
        return x;
      },
      async am() {},
    };
    assert.equal(sourceKind(sum_primes.toString()), 'function');
    assert.equal(sourceKind(((x: number) => x).toString()), 'arrow');
    assert.equal(sourceKind((async (x: number) => x).toString()), 'arrow');
    assert.equal(sourceKind((async () => {}).toString()), 'arrow');
    assert.equal(sourceKind(obj.m.toString()), 'method');
    assert.equal(sourceKind(obj.am.toString()), 'method');
    assert.equal(sourceKind(PartialSum.prototype.t_log.toString()), 'method');
    assert.equal(sourceKind(AD.toString()), 'class');
    assert.equal(sourceKind('class { }'), 'class');
  });

  test('bound and native functions are refused with a clear message', () => {
    const message =
      "bound and native functions cannot be shipped: pass the original function and its `this` via the [object, 'method'] form";
    assert.throws(() => sourceKind(Math.max.toString()), { message });
    assert.throws(() => sourceKind(sum_primes.bind(null).toString()), { message });
    assert.throws(
      () => getBundle({ fn: sum_primes.bind(null) }),
      /bound and native functions cannot be shipped/,
    );
  });

  test('unparsable source', () => {
    assert.throws(() => sourceKind('1 + 2'), SyntaxError);
    assert.throws(() => sourceKind('x => x), (y'), SyntaxError);
  });
});

describe('undeclared identifiers', () => {
  test('the message names the identifier, the function, and the fix', () => {
    const error = throwsUndeclared({ fn: sum_primes, args: [100] } as FunctionSpec);
    assert.equal(error.name, 'UndeclaredIdentifierError');
    assert.ok(error instanceof Error);
    assert.deepEqual(error.identifiers, ['isprime']);
    assert.equal(error.functionName, 'sum_primes');
    assert.equal(
      error.message,
      'sum_primes uses `isprime`, which the job does not define. Pass it with the job: ' +
        "submit(sum_primes, args, { deps: [isprime] }) for a function or class, { modules: ['…'] } for a module, " +
        'or { globals: { isprime: value } } for a plain value.',
    );
  });

  test('undeclared names inside deps are reported against the dep', () => {
    function isprime_limited(n: number): boolean {
      return n < LIMIT && isprime(n);
    }
    function count(n: number): number {
      let c = 0;
      for (let i = 0; i < n; i++) if (isprime_limited(i)) c++;
      return c + OFFSET;
    }
    const error = throwsUndeclared({ fn: count, deps: [isprime_limited] });
    assert.deepEqual(error.identifiers, ['OFFSET', 'LIMIT', 'isprime']);
    assert.equal(error.functionName, 'count');
    assert.match(error.message, /^count uses `OFFSET`, which the job does not define\.$/m);
    assert.match(
      error.message,
      /^isprime_limited \(in deps\) uses `LIMIT` and `isprime`, which the job does not define\.$/m,
    );
    assert.match(
      error.message,
      /Pass them with the job: submit\(count, args, \{ deps: \[isprime_limited, OFFSET, LIMIT/,
    );
    // Declared every way the job can declare a name, it passes.
    const bundle = getBundle({
      fn: count,
      deps: [isprime_limited, isprime],
      globals: { LIMIT: 50, OFFSET: 1000 },
    });
    assert.deepEqual(bundle.bindings.slice(0, 2), ['LIMIT', 'OFFSET']);
  });

  test('standard globals and runtime helpers are declared', () => {
    const f = (x: number[]) =>
      Math.max(...x) +
      JSON.stringify(structuredClone({ a: Buffer.from('x').length })).length +
      (typeof setTimeout === 'function' ? 1 : 0) +
      (globalThis === undefined ? 0 : 1) +
      Number.parseInt('1', 10);
    assert.doesNotThrow(() => getBundle({ fn: f }));
    assert.deepEqual(getBundle({ fn: fromSource('function (x) { return __name(() => x, "y") }') }).bindings, [
      '__name',
    ]);
  });

  test('names that only exist in `node -e` or CommonJS are not standard', () => {
    const error = throwsUndeclared({
      fn: fromSource('function readIt(p) { return fs.readFileSync(p) + require("x") }'),
    });
    assert.deepEqual(error.identifiers, ['fs', 'require']);
    assert.match(error.message, /\{ modules: \['node:fs'\] \}/);
    assert.match(error.message, /no `require`/);
  });

  test('method form: the class of `this` is checked', () => {
    const error = throwsUndeclared({ fn: [new PartialSum(20), 't_log'] });
    assert.deepEqual(error.identifiers, ['AD']);
    assert.equal(error.functionName, 'PartialSum.t_log');
    assert.match(
      error.message,
      /^PartialSum \(the class of `this`\) uses `AD`, which the job does not define\./,
    );
    assert.match(error.message, /submit\(\[obj, 't_log'\], args, \{ deps: \[AD\] \}\)/);
  });
});

describe('deps', () => {
  test('declared in the given order, functions by declaration', () => {
    const helper_a = (x: number) => x + 1;
    function helper_b(x: number) {
      return helper_a(x) * 2;
    }
    const entry = (x: number) => helper_b(x);
    const bundle = getBundle({ fn: entry, deps: [helper_b, helper_a] });
    const b = bundle.code.indexOf('function helper_b(');
    const a = bundle.code.indexOf('const helper_a = (');
    assert.ok(b > 0 && a > b, bundle.code);
    assert.match(bundle.code, /const entry = \(/);
    assert.match(bundle.code, /return \{ fn: entry, classes: \{\} \};$/);
  });

  test('a superclass is declared before its subclass even when given after it', async () => {
    class Shape {
      area(): number {
        return 0;
      }
      describe(): string {
        return `${this.constructor.name}:${this.area()}`;
      }
    }
    class Square extends Shape {
      constructor(readonly side: number) {
        super();
      }
      override area(): number {
        return this.side ** 2;
      }
    }
    const run = (side: number) => new Square(side).describe();
    const bundle = getBundle({ fn: run, deps: [Square, Shape] });
    assert.ok(bundle.code.indexOf('class Shape') < bundle.code.indexOf('class Square'));
    assert.deepEqual(
      bundle.classes.map(([n]) => n),
      ['Shape', 'Square'],
    );
    const compiled = await compile(bundle);
    assert.equal(compiled.entry.apply(undefined, [3]), 'Square:9');
    assert.deepEqual(
      compiled.classes.map(([n, c]) => [n, c.name]),
      [
        ['Shape', 'Shape'],
        ['Square', 'Square'],
      ],
    );
  });

  test('what a static block calls is declared before the class', async () => {
    const makeItems = () => [1, 2, 3];
    class Registry {
      static items = makeItems();
      size() {
        return Registry.items.length;
      }
    }
    const total = () => Registry.items.reduce((x, y) => x + y, 0);
    const bundle = getBundle({ fn: total, deps: [Registry, makeItems] });
    assert.ok(bundle.code.indexOf('const makeItems') < bundle.code.indexOf('class Registry'), bundle.code);
    assert.equal((await compile(bundle)).entry.apply(undefined, []), 6);
  });

  test('the same dep twice is declared once; two deps with one name are refused', () => {
    const make = () =>
      function helper() {
        return 1;
      };
    const h1 = make();
    const h2 = make();
    const fn = () => helper(0);
    const bundle = getBundle({ fn, deps: [h1, h1] });
    // (esbuild renamed the inner function to helper2 in its source; its name is still helper.)
    assert.equal(bundle.code.split('return 1').length, 2, bundle.code);
    assert.throws(() => getBundle({ fn, deps: [h1, h2] }), /two different deps are named helper/);
  });

  test('unnamed deps and non-function deps are refused', () => {
    const unnamed = (
      () => () =>
        1
    )();
    assert.equal(unnamed.name, '');
    assert.throws(() => getBundle({ fn: () => 1, deps: [unnamed] }), /deps\[0\] has no name: .*give it one/);
    assert.throws(
      () => getBundle({ fn: () => 1, deps: [10 as unknown as Function] }),
      /deps\[0\] is number 10, not a function or class; pass plain values as \{ globals: \{ name: value \} \}/,
    );
  });

  test('names clashing with modules or globals are refused', () => {
    const crypto = () => 1;
    assert.throws(
      () => getBundle({ fn: () => 1, deps: [crypto], modules: ['node:crypto'] }),
      /also a module binding/,
    );
    assert.throws(
      () => getBundle({ fn: () => 1, globals: { crypto: 1 }, modules: ['node:crypto'] }),
      /module binding/,
    );
    assert.throws(() => getBundle({ fn: () => 1, globals: { f: () => 1 } }), /is a function; pass functions/);
    assert.throws(() => getBundle({ fn: () => 1, globals: { __name: 1 } }), /reserved/);
  });

  test('globals are checked once, as workers read them: plain values only, within the head limits', () => {
    class Pt {
      x = 1;
    }
    // Workers read globals with the definition, before its classes exist: no instances, deps or not.
    assert.throws(
      () => getBundle({ fn: () => 1, deps: [Pt], globals: { p: new Pt() } }),
      /^TypeError: the globals of .* must be plain values .*globals\.p: an instance of class Pt cannot travel\. Pass class instances as arguments instead\.$/,
    );
    let deep: unknown = 0;
    for (let i = 0; i < GLOBALS_MAX_DEPTH; i++) deep = [deep];
    assert.doesNotThrow(() => getBundle({ fn: () => 1, globals: { deep } }));
    assert.throws(
      () => getBundle({ fn: () => 1, globals: { deep: [deep] } }),
      new RegExp(
        `^RangeError: the globals of .* nest too deep to be sent: globals\\.deep(\\[0\\]){${GLOBALS_MAX_DEPTH}} ` +
          `is more than ${GLOBALS_MAX_DEPTH} levels down`,
      ),
    );
  });

  test('an anonymous class stored in a const keeps its name', async () => {
    const Counter = class {
      n = 0;
      inc() {
        return ++this.n;
      }
    };
    const use = () => {
      const c = new Counter();
      c.inc();
      return [c.inc(), Counter.name];
    };
    const bundle = getBundle({ fn: use, deps: [Counter] });
    assert.match(bundle.code, /const Counter = \(class/);
    const compiled = await compile(bundle);
    assert.deepEqual(compiled.entry.apply(undefined, []), [2, 'Counter']);
  });
});

describe('method form', () => {
  test('[new PartialSum(20), "t_log"] with dep class AD', async () => {
    const proc = new PartialSum(20);
    const bundle = getBundle({ fn: [proc, 't_log'], deps: [AD] });
    assert.equal(bundle.name, 'PartialSum.t_log');
    assert.equal(bundle.thisArg, proc);
    assert.deepEqual(
      bundle.classes.map(([n, c]) => [n, c]),
      [
        ['AD', AD],
        ['PartialSum', PartialSum],
      ],
    );
    assert.match(
      bundle.code,
      /return \{ fn: PartialSum\.prototype\.t_log, classes: \{ AD, PartialSum \} \};$/,
    );

    const compiled = await compile(bundle);
    const classes = new Map(compiled.classes);
    const WAD = classes.get('AD') as typeof AD;
    const WPartialSum = classes.get('PartialSum') as typeof PartialSum;
    assert.ok(WAD && WAD !== AD && WAD.name === 'AD');
    // `this` and the argument arrive as instances of the worker's classes.
    const self = Object.assign(Object.create(WPartialSum.prototype), { n: 20 });
    const got = compiled.entry.apply(self, [new WAD(1.5, 1)]) as AD;
    const want = proc.t_log(new AD(1.5, 1));
    assert.ok(got instanceof WAD);
    assert.equal(got.x, want.x);
    assert.equal(got.dx, want.dx);
  });

  test('cached per class and method; thisArg is per call', () => {
    const a = getBundle({ fn: [new PartialSum(5), 't_log'], deps: [AD] });
    const other = new PartialSum(6);
    const b = getBundle({ fn: [other, 't_log'], deps: [AD] });
    assert.notEqual(a, b);
    assert.equal(b.thisArg, other);
    assert.equal(a.hash, b.hash);
    assert.equal(a.code, b.code);
    assert.equal(a.classes, b.classes);
    const c = getBundle({ fn: [other, 'partial_sum'], deps: [AD] });
    assert.notEqual(c.hash, a.hash);
    assert.equal(c.name, 'PartialSum.partial_sum');
  });

  test('user superclasses travel with the class', async () => {
    class Base {
      double(x: number) {
        return x * 2;
      }
    }
    class Derived extends Base {
      run(x: number) {
        return this.double(x) + 1;
      }
    }
    class ErrorLike extends Error {
      run() {
        return this.message;
      }
    }
    const bundle = getBundle({ fn: [new Derived(), 'run'] });
    assert.deepEqual(
      bundle.classes.map(([n]) => n),
      ['Base', 'Derived'],
    );
    const compiled = await compile(bundle);
    const W = new Map(compiled.classes).get('Derived') as typeof Derived;
    assert.equal(compiled.entry.apply(new W(), [20]), 41);
    // Built-in superclasses stay where they are.
    const e = getBundle({ fn: [new ErrorLike('boom'), 'run'] });
    assert.deepEqual(
      e.classes.map(([n]) => n),
      ['ErrorLike'],
    );
  });

  test('clear errors for objects and members that cannot be used', () => {
    const plain = {
      m() {
        return 1;
      },
    };
    assert.throws(
      () => getBundle({ fn: [plain, 'm'] }),
      /plain object\. Its methods cannot travel.*instance of a class/,
    );
    assert.throws(
      () => getBundle({ fn: [new PartialSum(1), 'n'] }),
      /PartialSum\.n is number 1, not a method/,
    );
    assert.throws(() => getBundle({ fn: [new PartialSum(1), 'nope'] }), /PartialSum has no method 'nope'/);
    class WithField {
      f = () => 1;
      get g() {
        return () => 1;
      }
    }
    assert.throws(() => getBundle({ fn: [new WithField(), 'f'] }), /property of the object itself/);
    assert.throws(() => getBundle({ fn: [new WithField(), 'g'] }), /getter/);
    assert.throws(() => getBundle({ fn: [new Map(), 'get'] }), /built-in class/);
  });
});

describe('method shorthand as a plain function', () => {
  const tools = {
    triple(x: number) {
      return x * 3;
    },
    async later(x: number) {
      return x + 1;
    },
    'odd-name'(x: number) {
      return -x;
    },
    [Symbol.iterator]() {
      return [][Symbol.iterator]();
    },
    get g() {
      return 1;
    },
    sup() {
      return super.toString();
    },
  };

  test('sync, async and string-keyed methods compile and run', async () => {
    assert.equal((await compile(getBundle({ fn: tools.triple }))).entry.apply(undefined, [4]), 12);
    assert.equal(await (await compile(getBundle({ fn: tools.later }))).entry.apply(undefined, [4]), 5);
    assert.equal((await compile(getBundle({ fn: tools['odd-name'] }))).entry.apply(undefined, [4]), -4);
    assert.equal(
      (await compile(getBundle({ fn: PartialSum.prototype.partial_sum, deps: [AD] }))).name,
      'partial_sum',
    );
  });

  test('getters, computed names and super are refused', () => {
    const getter = Object.getOwnPropertyDescriptor(tools, 'g')!.get!;
    assert.throws(() => getBundle({ fn: getter }), /is a getter, not a function/);
    assert.throws(() => getBundle({ fn: tools[Symbol.iterator] }), /computed name/);
    assert.throws(() => getBundle({ fn: tools.sup }), /uses `super`.*\[instance, 'methodName'\]/);
  });
});

describe('modules', () => {
  test('binding names', () => {
    assert.equal(moduleBindingName('node:crypto'), 'crypto');
    assert.equal(moduleBindingName('fs/promises'), 'fsPromises');
    assert.equal(moduleBindingName('node:fs/promises'), 'fsPromises');
    assert.equal(moduleBindingName('@scope/fast-deep-equal'), 'fastDeepEqual');
    assert.equal(moduleBindingName('lodash.merge'), 'lodashMerge');
    assert.equal(moduleBindingName('lodash/fp'), 'lodashFp');
    assert.equal(moduleBindingName('highlight.js'), 'highlightJs');
    assert.equal(moduleBindingName('./lib/my-helpers.js'), 'myHelpers');
    assert.equal(moduleBindingName('7zip'), '_7zip');
    assert.throws(() => moduleBindingName('package'), /name it yourself/);
  });

  test('moduleExportValue', async () => {
    const crypto = await import('node:crypto');
    assert.equal(moduleExportValue(crypto), crypto.default);
    const esmUrl: string = 'data:text/javascript,export const a = 1; export default function f() {}';
    const esm = await import(esmUrl);
    assert.equal(moduleExportValue(esm), esm);
    const onlyDefaultUrl: string = 'data:text/javascript,export default 42';
    const onlyDefault = await import(onlyDefaultUrl);
    assert.equal(moduleExportValue(onlyDefault), 42);
    assert.deepEqual(moduleExportValue({ default: { a: 1, b: 2 }, a: 1 }), { a: 1, b: 2 });
    assert.deepEqual(moduleExportValue({ x: 1 }), { x: 1 });
  });

  test('round trip with modules bound by name', async () => {
    // In the worker `crypto` is node:crypto (bound by modules), not the web crypto global.
    const digest = (s: string) =>
      (crypto as unknown as typeof nodeCrypto).createHash('md5').update(s).digest('hex') + pathMod.sep;
    const bundle = getBundle({ fn: digest, modules: ['node:crypto', { pathMod: 'node:path' }] });
    assert.deepEqual(bundle.modules, [
      ['crypto', 'node:crypto'],
      ['pathMod', 'node:path'],
    ]);
    assert.deepEqual(bundle.bindings, ['crypto', 'pathMod']);
    const compiled = await compile(bundle);
    assert.equal(
      compiled.entry.apply(undefined, ['1829182']),
      `${nodeCrypto.createHash('md5').update('1829182').digest('hex')}${path.sep}`,
    );
  });
});

// Only module-level names can be referenced by shipped code; `pathMod` is bound by the test above.
declare const pathMod: typeof import('node:path');
declare const LIMIT: number;
declare const OFFSET: number;

describe('round trip', () => {
  test('sum_primes with its dep', async () => {
    const bundle = getBundle({ fn: sum_primes, deps: [isprime] });
    assert.equal(bundle.name, 'sum_primes');
    assert.deepEqual(bundle.bindings, []);
    const compiled = await compile(bundle);
    assert.equal(compiled.name, 'sum_primes');
    assert.equal(compiled.entry.apply(undefined, [100]), sum_primes(100));
  });

  test('globals are bound by name', async () => {
    const below = (n: number) => n < LIMIT;
    const bundle = getBundle({ fn: below, globals: { LIMIT: 10 } });
    assert.deepEqual(bundle.bindings, ['LIMIT']);
    assert.deepEqual(bundle.globals, { LIMIT: 10 });
    const compiled = await compile(bundle);
    assert.equal(compiled.entry.apply(undefined, [9]), true);
    assert.equal(compiled.entry.apply(undefined, [10]), false);
  });

  test('anonymous and self-recursive arrows', async () => {
    const anon = getBundle({ fn: fromSource('x => x + 1') });
    assert.equal(anon.name, '<anonymous>');
    assert.equal((await compile(anon)).entry.apply(undefined, [1]), 2);
    const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1));
    assert.equal((await compile(getBundle({ fn: fact }))).entry.apply(undefined, [5]), 120);
  });

  test('code runs in strict mode with `this` undefined', async () => {
    const who = getBundle({ fn: fromSource('function who() { return this }') });
    assert.equal((await compile(who)).entry.apply(undefined, []), undefined);
  });

  test('tsc-style __awaiter and esbuild-style __async / __publicField output runs', async () => {
    const tscOutput = fromSource(`function fetchDouble(x) {
    return __awaiter(this, void 0, void 0, function* () {
        const v = yield Promise.resolve(x);
        return v * 2;
    });
}`);
    const bundle = getBundle({ fn: tscOutput });
    assert.deepEqual(bundle.bindings, ['__awaiter']);
    assert.equal(await (await compile(bundle)).entry.apply(undefined, [21]), 42);

    const Box = fromSource('class Box { constructor(v) { __publicField(this, "v", v); } }');
    const lowered = fromSource(
      '(x) => __async(null, null, function* () { return (yield Promise.resolve(new Box(x))).v + 1; })',
    );
    const b2 = getBundle({ fn: lowered, deps: [Box] });
    assert.deepEqual(b2.bindings, ['__publicField', '__async']);
    assert.equal(await (await compile(b2)).entry.apply(undefined, [1]), 2);
    const rejects = fromSource('() => __async(null, null, function* () { throw new Error("no") })');
    await assert.rejects((await compile(getBundle({ fn: rejects }))).entry.apply(undefined, []), /no/);
  });

  test('RUNTIME_HELPERS.__name sets a configurable name', () => {
    const name = RUNTIME_HELPERS.__name as (f: Function, n: string) => Function;
    const f = name(() => 1, 'renamed');
    assert.equal(f.name, 'renamed');
    assert.equal(Object.getOwnPropertyDescriptor(f, 'name')?.configurable, true);
  });
});

describe('compileBundle errors', () => {
  test('a SyntaxError names the function', () => {
    assert.throws(
      () =>
        compileBundle(
          { code: 'return { fn: (x => x +), classes: {} };', bindings: [], name: 'broken_fn' },
          {},
        ),
      (error: Error) => error instanceof SyntaxError && /broken_fn/.test(error.message),
    );
  });

  test('errors while defining name the function', () => {
    const code = "'use strict';\nclass A extends B {}\nreturn { fn: () => 1, classes: { A } };";
    assert.throws(
      () => compileBundle({ code, bindings: ['B'], name: 'defining' }, { B: 42 }),
      /defining function defining failed/,
    );
  });

  test('a missing binding value is reported', () => {
    assert.throws(
      () => compileBundle({ code: 'return { fn: () => m }', bindings: ['m'], name: 'needs_m' }, {}),
      /needs_m.*`m`/,
    );
  });
});

describe('hash', () => {
  test('stable across processes', () => {
    const src = 'function twice(x) { return x * K[0] * 2 }';
    const spec = (fn: Function): FunctionSpec => ({
      fn,
      globals: { K: [1, 'a', { deep: new Map([[1, 2]]) }] },
    });
    const here = getBundle(spec(fromSource(src))).hash;
    assert.match(here, /^[0-9a-f]{64}$/);
    const script = `
      import { getBundle } from './src/functions/bundle.ts';
      const fn = new Function('return (' + process.argv[1] + ')')();
      console.log(getBundle({ fn, globals: { K: [1, 'a', { deep: new Map([[1, 2]]) }] } }).hash);`;
    const there = execFileSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, src],
      {
        cwd: new URL('..', import.meta.url),
        encoding: 'utf8',
      },
    ).trim();
    assert.equal(there, here);
  });

  test('differs when deps, globals or modules differ', () => {
    const uses = (n: number) => helper(n);
    const mk = (k: number) => fromSource(`function helper(n) { return n + ${k} }`);
    const h1 = getBundle({ fn: uses, deps: [mk(1)] }).hash;
    const h2 = getBundle({ fn: uses, deps: [mk(2)] }).hash;
    const h1again = getBundle({ fn: uses, deps: [mk(1)] }).hash;
    assert.notEqual(h1, h2);
    assert.equal(h1, h1again);
    const g = (n: number) => n + LIMIT;
    assert.notEqual(
      getBundle({ fn: g, globals: { LIMIT: 1 } }).hash,
      getBundle({ fn: g, globals: { LIMIT: 2 } }).hash,
    );
    assert.notEqual(
      getBundle({ fn: g, globals: { LIMIT: 1 } }).hash,
      getBundle({ fn: g, globals: { LIMIT: 1 }, modules: ['node:os'] }).hash,
    );
  });
});
declare function helper(n: number): number;

describe('caching', () => {
  test('the same function and spec give the cached bundle', (t) => {
    const a = getBundle({ fn: sum_primes, deps: [isprime] });
    const b = getBundle({ fn: sum_primes, deps: [isprime] });
    assert.equal(a, b);
    let last = a;
    const start = performance.now();
    for (let i = 0; i < 100_000; i++) last = getBundle({ fn: sum_primes, deps: [isprime] });
    assert.equal(last, a);
    t.diagnostic(`100,000 cached getBundle calls: ${(performance.now() - start).toFixed(1)} ms`);
  });

  test('a fresh arrow with the same source is not rebuilt', () => {
    const bundles = new Set<FunctionBundle>();
    for (let i = 0; i < 3; i++) bundles.add(getBundle({ fn: fromSource('x => x + 1'), globals: {} }));
    assert.equal(bundles.size, 1);
  });

  test('changed deps, modules or globals are noticed', () => {
    const deps: Function[] = [isprime];
    const a = getBundle({ fn: sum_primes, deps });
    const other = fromSource('function isprime(n) { return n === 2 }');
    deps[0] = other;
    const b = getBundle({ fn: sum_primes, deps });
    assert.notEqual(a.hash, b.hash);
    const g = (n: number) => n + LIMIT;
    const globals = { LIMIT: 1 };
    const c = getBundle({ fn: g, globals });
    assert.equal(getBundle({ fn: g, globals: { LIMIT: 1 } }), c);
    assert.notEqual(getBundle({ fn: g, globals: { LIMIT: 2 } }), c);
    assert.notEqual(getBundle({ fn: g, globals: { LIMIT: 1 }, modules: ['node:os'] }), c);
  });
});
