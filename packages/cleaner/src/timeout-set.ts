interface Slot<K, D> {
  key: K;
  deadline: D;
  /** Insertion order, so that equal deadlines expire first-come first-served. */
  seq: number;
}

/**
 * Keys with deadlines, for things that must be dropped when their time is up, such as the pending clients whose
 * mapper has not decided yet. Keys are strings (`ip:port`), never objects, so a key added from one datagram is found
 * again from the next. Deadlines are numbers or bigints of any clock the caller chooses, used consistently.
 *
 * `expire` costs O(log n) per expired key; replaced and deleted deadlines are dropped lazily.
 */
export class TimeoutSet<K extends string = string, D extends number | bigint = number> {
  readonly #slots = new Map<K, Slot<K, D>>();
  #heap: Slot<K, D>[] = [];
  #seq = 0;

  get size(): number {
    return this.#slots.size;
  }

  /** Sets the deadline of `key`, replacing an earlier one. */
  add(key: K, deadline: D): void {
    if (typeof deadline !== 'bigint' && Number.isNaN(deadline)) {
      throw new RangeError(`TimeoutSet: the deadline of ${JSON.stringify(key)} is NaN`);
    }
    const slot = { key, deadline, seq: this.#seq++ };
    this.#slots.set(key, slot);
    this.#push(slot);
    if (this.#heap.length > 2 * this.#slots.size + 64) this.#rebuild();
  }

  has(key: K): boolean {
    return this.#slots.has(key);
  }

  deadlineOf(key: K): D | undefined {
    return this.#slots.get(key)?.deadline;
  }

  delete(key: K): boolean {
    return this.#slots.delete(key);
  }

  clear(): void {
    this.#slots.clear();
    this.#heap = [];
  }

  /** The earliest deadline, if any. */
  nextDeadline(): D | undefined {
    this.#dropStale();
    return this.#heap[0]?.deadline;
  }

  /** Removes and returns the keys whose deadline is at or before `now`, earliest first. */
  expire(now: D): K[] {
    const expired: K[] = [];
    for (;;) {
      this.#dropStale();
      const top = this.#heap[0];
      if (top === undefined || top.deadline > now) return expired;
      this.#pop();
      this.#slots.delete(top.key);
      expired.push(top.key);
    }
  }

  #dropStale(): void {
    for (let top = this.#heap[0]; top !== undefined && this.#slots.get(top.key) !== top; top = this.#heap[0]) {
      this.#pop();
    }
  }

  #rebuild(): void {
    this.#heap = [...this.#slots.values()].sort((a, b) => (before(a, b) ? -1 : 1));
  }

  #push(slot: Slot<K, D>): void {
    const heap = this.#heap;
    heap.push(slot);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < heap.length && before(heap[l]!, heap[min]!)) min = l;
      if (r < heap.length && before(heap[r]!, heap[min]!)) min = r;
      if (min === i) return;
      [heap[i], heap[min]] = [heap[min]!, heap[i]!];
      i = min;
    }
  }
}

function before<K, D extends number | bigint>(a: Slot<K, D>, b: Slot<K, D>): boolean {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
}
