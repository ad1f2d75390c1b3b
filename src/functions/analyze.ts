/**
 * Static analysis of function and class source text (as given by Function.prototype.toString),
 * on the main side only: which kind of source it is, and which names it uses without declaring
 * them. Workers never load this file (acorn and periscopic stay out of their start-up).
 */
import type * as acorn from 'acorn';
import { parse } from 'acorn';
import { analyze } from 'periscopic';

/** 'method' = method shorthand (`m(x){...}`, `async m(){...}`), which is not an expression by itself. */
export type SourceKind = 'function' | 'arrow' | 'method' | 'class';

/** Everything bundle.ts needs to know about one source text. */
export interface SourceInfo {
  kind: SourceKind;
  /** Names used but not declared, in order of first use. */
  free: readonly string[];
  /** The declared name: a function's or class's own id, a method's key; undefined when anonymous or computed. */
  id: string | undefined;
  /** Methods only: 'get' / 'set' for accessors. */
  accessor: 'get' | 'set' | undefined;
  /** Methods only: the key is computed from an expression (e.g. `[Symbol.iterator]`). */
  computedKey: boolean;
  /** Methods only: the body uses `super`, which only means something inside its class. */
  usesSuper: boolean;
  /**
   * Classes only: free names evaluated while the class itself is being defined (the `extends`
   * clause, computed keys, static fields and static blocks), as opposed to when its methods run.
   */
  definitionTime: readonly string[];
}

export const NATIVE_SOURCE_MESSAGE =
  "bound and native functions cannot be shipped: pass the original function and its `this` via the [object, 'method'] form";

const NATIVE_RE = /\{\s*\[native code\]\s*\}\s*$/;

type AnyNode = acorn.AnyNode;

// Strict (module) parsing: shipped code is compiled in strict mode, like the ES modules it comes from.
const PARSE_OPTIONS: acorn.Options = { ecmaVersion: 'latest', sourceType: 'module' };

/** Parses a function's or class's source and returns the names it uses but does not declare. */
export function freeIdentifiers(source: string): string[] {
  return [...analyzeSource(source).free];
}

/** 'function' | 'arrow' | 'method' | 'class'. Throws for bound and native functions ('[native code]'). */
export function sourceKind(source: string): SourceKind {
  return analyzeSource(source).kind;
}

// Analyses are pure functions of the text; deps shared by many jobs are parsed once.
const infoCache = new Map<string, SourceInfo>();
const INFO_CACHE_MAX = 2000;

/** Full analysis of one source text (cached by the text). */
export function analyzeSource(source: string): SourceInfo {
  const hit = infoCache.get(source);
  if (hit) return hit;
  const info = computeInfo(source);
  if (infoCache.size >= INFO_CACHE_MAX) infoCache.delete(infoCache.keys().next().value as string);
  infoCache.set(source, info);
  return info;
}

function computeInfo(source: string): SourceInfo {
  if (NATIVE_RE.test(source)) throw new TypeError(NATIVE_SOURCE_MESSAGE);
  const info: SourceInfo = {
    kind: 'function',
    free: [],
    id: undefined,
    accessor: undefined,
    computedKey: false,
    usesSuper: false,
    definitionTime: [],
  };
  // The `\n` keeps a trailing line comment from swallowing the closing bracket.
  let program = tryParse(`(${source}\n)`);
  const expr = program && singleExpression(program);
  if (expr?.type === 'FunctionExpression' || expr?.type === 'ArrowFunctionExpression') {
    info.kind = expr.type === 'FunctionExpression' ? 'function' : 'arrow';
    info.id = expr.type === 'FunctionExpression' ? expr.id?.name : undefined;
  } else if (expr?.type === 'ClassExpression') {
    info.kind = 'class';
    info.id = expr.id?.name;
    info.definitionTime = definitionTimeNames(source, expr, 1);
  } else {
    // Method shorthand: only valid inside an object literal or class body.
    let error: unknown;
    try {
      program = parse(`({${source}\n})`, PARSE_OPTIONS);
    } catch (e) {
      error = e;
      program = undefined;
    }
    const obj = program && singleExpression(program);
    const prop =
      obj?.type === 'ObjectExpression' && obj.properties.length === 1 ? obj.properties[0] : undefined;
    if (prop?.type !== 'Property' || !(prop.method || prop.kind !== 'init')) {
      const reason = error instanceof Error ? `: ${error.message}` : '';
      throw new SyntaxError(
        `cannot parse function source${reason} (expected a function, arrow function, class or method; source starts with ${JSON.stringify(source.slice(0, 60))})`,
      );
    }
    info.kind = 'method';
    info.accessor = prop.kind === 'init' ? undefined : prop.kind;
    const key = prop.key;
    if (!prop.computed && key.type === 'Identifier') info.id = key.name;
    else if (key.type === 'Literal' && (typeof key.value === 'string' || typeof key.value === 'number')) {
      // esbuild prints string keys as `["name"](){}`: still a plain, known key.
      info.id = String(key.value);
    } else info.computedKey = true;
    info.usesSuper = usesSuper(prop.value);
  }
  info.free = freeNames(program!);
  return info;
}

function tryParse(text: string): acorn.Program | undefined {
  try {
    return parse(text, PARSE_OPTIONS);
  } catch {
    return undefined;
  }
}

function singleExpression(program: acorn.Program): acorn.Expression | undefined {
  if (program.body.length !== 1) return undefined;
  const stmt = program.body[0]!;
  return stmt.type === 'ExpressionStatement' ? stmt.expression : undefined;
}

/**
 * Free names of a parsed program, via periscopic. Its gaps, found by testing, are patched:
 * a class expression's own name (`class B { m() { return B } }`) is not declared, a static
 * block is not a scope (its `const`s leak out), and `new.target` / `import.meta` report `new` /
 * `import` (reserved words, so they can simply be dropped).
 */
function freeNames(program: acorn.Program): string[] {
  patchScopes(program);
  const { globals } = analyze(program as unknown as Parameters<typeof analyze>[0]);
  const found: Array<[string, number]> = [];
  for (const [name, node] of globals) {
    if (name === 'new' || name === 'import') continue;
    found.push([name, (node as unknown as acorn.Node).start ?? 0]);
  }
  found.sort((a, b) => a[1] - b[1]);
  return found.map(([name]) => name);
}

/**
 * Rewrites, in place, the shapes periscopic scopes wrongly into equivalent ones it scopes right:
 * `class B {...}` (expression) → `(() => { class B {...} })()`, so B is declared around its
 * body; `static {...}` → `() => {...}`, a scope of its own.
 */
function patchScopes(node: AnyNode): void {
  for (const key of Object.keys(node)) {
    const child = (node as unknown as Record<string, unknown>)[key];
    if (Array.isArray(child)) {
      for (let i = 0; i < child.length; i++) {
        const item = child[i] as AnyNode | null;
        if (item && typeof item.type === 'string') {
          const replacement = patched(item);
          child[i] = replacement;
          patchScopes(replacement);
        }
      }
    } else if (child && typeof child === 'object' && typeof (child as AnyNode).type === 'string') {
      const replacement = patched(child as AnyNode);
      (node as unknown as Record<string, unknown>)[key] = replacement;
      patchScopes(replacement);
    }
  }
}

function patched(node: AnyNode): AnyNode {
  if (node.type === 'ClassExpression' && node.id) {
    // Patching continues into the replacement, so the declaration's body is patched too.
    const decl = { ...node, type: 'ClassDeclaration' };
    const block = { type: 'BlockStatement', body: [decl] };
    const arrow = { type: 'ArrowFunctionExpression', params: [], body: block, expression: false };
    return { type: 'CallExpression', callee: arrow, arguments: [], optional: false } as unknown as AnyNode;
  }
  if (node.type === 'StaticBlock') {
    const block = { type: 'BlockStatement', body: node.body };
    return {
      type: 'ArrowFunctionExpression',
      params: [],
      body: block,
      expression: false,
    } as unknown as AnyNode;
  }
  return node;
}

/**
 * Free names a class needs while it is being defined. Rebuilt as source text from just those
 * parts (same name, same `extends`, computed keys, static members) and analysed on its own.
 */
function definitionTimeNames(source: string, cls: acorn.ClassExpression, offset: number): string[] {
  const text = (n: acorn.Node) => source.slice(n.start - offset, n.end - offset);
  let out = `(class ${cls.id ? cls.id.name : ''}`;
  if (cls.superClass) out += ` extends (${text(cls.superClass)}\n)`;
  out += ' {\n';
  for (const member of cls.body.body) {
    if (member.type === 'StaticBlock' || (member.type === 'PropertyDefinition' && member.static)) {
      out += `${text(member)}\n;\n`;
    } else if (member.computed) {
      out += `[${text(member.key)}\n];\n`;
    }
  }
  out += '})';
  const program = tryParse(out);
  return program ? freeNames(program) : [];
}

/** Whether a method body uses `super` (not counting nested methods and classes, which have their own). */
function usesSuper(fn: AnyNode): boolean {
  let found = false;
  const visit = (node: AnyNode, root: boolean): void => {
    if (found) return;
    if (node.type === 'Super') {
      found = true;
      return;
    }
    if (!root && (node.type === 'FunctionExpression' || node.type === 'FunctionDeclaration')) return;
    if (node.type === 'ClassBody') return;
    for (const key of Object.keys(node)) {
      const child = (node as unknown as Record<string, unknown>)[key];
      if (Array.isArray(child)) {
        for (const item of child) if (item && typeof item.type === 'string') visit(item as AnyNode, false);
      } else if (child && typeof child === 'object' && typeof (child as AnyNode).type === 'string') {
        visit(child as AnyNode, false);
      }
    }
  };
  visit(fn, true);
  return found;
}
