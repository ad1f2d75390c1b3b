/** Calls `visit` on every node of an ESTree syntax tree. */
export function walk(node: { type: string }, visit: (node: { type: string }) => void): void {
  visit(node);
  for (const value of Object.values(node)) {
    const children = Array.isArray(value) ? value : [value];
    for (const child of children) {
      if (child && typeof child === 'object' && typeof (child as { type?: unknown }).type === 'string') {
        walk(child as { type: string }, visit);
      }
    }
  }
}
