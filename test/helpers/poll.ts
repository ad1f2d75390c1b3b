/**
 * Waits until `fn` returns a truthy value (or a promise of one), checking every `intervalMs`,
 * and returns it; past `timeoutMs` it throws, naming `what`. For tests: wait for the state an
 * assertion needs instead of sleeping for a time that a loaded machine may not honour.
 */
export async function pollUntil<T>(
  fn: () => T | Promise<T>,
  {
    timeoutMs = 10_000,
    intervalMs = 5,
    what = 'a condition',
  }: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
