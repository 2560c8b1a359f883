// A binary heap ordered by `before(a, b)` (true when a comes out first).
export class Heap<T> {
  private readonly items: T[] = [];
  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(a[i]!, a[parent]!)) break;
      [a[i], a[parent]] = [a[parent]!, a[i]!];
      i = parent;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < a.length && this.before(a[l]!, a[best]!)) best = l;
        if (r < a.length && this.before(a[r]!, a[best]!)) best = r;
        if (best === i) break;
        [a[i], a[best]] = [a[best]!, a[i]!];
        i = best;
      }
    }
    return top;
  }

  /** Everything, in no particular order. */
  toArray(): T[] {
    return [...this.items];
  }
}

/**
 * Keeps the `limit` smallest items by `key` from a stream of any length, in O(limit) memory:
 * how a rescan picks the oldest files of a backlog bigger than the index.
 */
export class SmallestN<T> {
  /** Each item with its key, computed once (a heap compares each item log(limit) times). */
  private readonly heap: Heap<{ key: number; item: T }>;
  /** Items offered but not kept (because `limit` smaller ones were seen). */
  dropped = 0;
  constructor(private readonly limit: number, private readonly key: (t: T) => number) {
    this.heap = new Heap((a, b) => a.key > b.key); // largest on top, to be evicted first
  }

  offer(item: T): void {
    if (this.limit <= 0) {
      this.dropped++;
      return;
    }
    const key = this.key(item);
    if (this.heap.size < this.limit) {
      this.heap.push({ key, item });
      return;
    }
    if (key < this.heap.peek()!.key) {
      this.heap.pop();
      this.heap.push({ key, item });
    }
    this.dropped++;
  }

  /** The kept items, smallest first. */
  result(): T[] {
    return this.heap
      .toArray()
      .sort((a, b) => a.key - b.key)
      .map((k) => k.item);
  }
}
