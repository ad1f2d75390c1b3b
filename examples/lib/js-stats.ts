// A module of "your project" that the jobs of examples/packages.ts use: TypeScript, importing
// a package (acorn) and another local file. pp-node bundles it with both and sends it to the
// nodes that lack it.
import { parse } from 'acorn';
import { walk } from './walk.ts';

/** How many functions (declarations, expressions, arrows, methods) a JavaScript source defines. */
export function countFunctions(source: string): number {
  const ast = parse(source, { ecmaVersion: 'latest', sourceType: 'module' });
  let n = 0;
  walk(ast, (node) => {
    if (/^(FunctionDeclaration|FunctionExpression|ArrowFunctionExpression)$/.test(node.type)) n++;
  });
  return n;
}
