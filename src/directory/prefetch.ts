// Runs a lookup for the next few items of a stream while the consumer handles the current one,
// and hands them out in the stream's order: a 100,000-member list expands at the directory's
// round-trip rate divided by the window, with at most `window` items (and their lookups) in
// memory. The stream is pulled only as the consumer asks, so a slow consumer slows the lookups.

export interface Prefetched<T, R> {
  item: T;
  /** The lookup started for this item, or null when `start` returned null for it. */
  result: Promise<R> | null;
}

export async function* prefetch<T, R>(source: AsyncIterable<T>, start: (item: T) => Promise<R> | null, window: number): AsyncGenerator<Prefetched<T, R>> {
  const pending: Array<Prefetched<T, R>> = [];
  const iterator = source[Symbol.asyncIterator]();
  let done = false;
  try {
    for (;;) {
      while (!done && pending.length < Math.max(1, window)) {
        const next = await iterator.next();
        if (next.done) done = true;
        else {
          const result = start(next.value);
          // Awaited in order later; a rejection before then must not count as unhandled.
          result?.catch(() => {});
          pending.push({ item: next.value, result });
        }
      }
      const head = pending.shift();
      if (!head) return;
      yield head;
    }
  } finally {
    // The consumer stopped early (an unavailable directory, an error): close the source.
    if (!done) await iterator.return?.();
  }
}
