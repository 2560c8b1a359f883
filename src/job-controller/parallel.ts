// Async work over a list with a bound on how much of it runs at once (envelope reads of a scan or
// a batch, the outcomes of a batch written back).

/** Runs `fn` over the items with at most `limit` at a time. */
export async function forEachLimited<T>(items: Iterable<T>, limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const list = [...items];
  let next = 0;
  const worker = async () => {
    while (next < list.length) {
      const item = list[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), list.length) }, worker));
}
