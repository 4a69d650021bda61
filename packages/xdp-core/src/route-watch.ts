import { native, type NativeRouteWatch } from './native.js';
import { withNetns } from './system.js';

/**
 * What changed: `link` (an interface appeared, went, or changed state), `neigh` (a neighbour entry: ARP),
 * `addr` (an IPv4 address), `route` (an IPv4 route), or `overrun`: the kernel dropped notifications because they
 * came faster than they were read, so any of the others may have changed unseen.
 */
export type RouteChangeKind = 'link' | 'neigh' | 'addr' | 'route' | 'overrun';

export interface RouteWatchOptions {
  /** The network namespace to watch (a name under /run/netns or a path); default the caller's. */
  netns?: string;
}

/** A running watch of {@link watchRoutes}. */
export interface RouteWatch {
  /** Stops the watch: no callback runs after it returns. Closing twice is harmless. */
  close(): void;
  /** Keeps the process running while the watch is open. */
  ref(): this;
  /** The default: the watch alone does not keep the process running. */
  unref(): this;
  readonly closed: boolean;
  [Symbol.dispose](): void;
}

class NetlinkRouteWatch implements RouteWatch {
  readonly #raw: NativeRouteWatch;
  #closed = false;

  constructor(raw: NativeRouteWatch) {
    this.#raw = raw;
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    this.#closed = true;
    this.#raw.close();
  }

  ref(): this {
    this.#raw.ref();
    return this;
  }

  unref(): this {
    this.#raw.unref();
    return this;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Calls `onChange` when links, neighbours, IPv4 addresses or IPv4 routes change in a network namespace, with the
 * kinds of change seen since the last call (each once; in the order link, neigh, addr, route, overrun). It says what
 * kind of thing changed, not what: re-read what depends on it, such as the next hops an XDP program was given. A
 * burst of changes read in one wakeup makes one call. Runs until `close()`, even when the watch is no longer
 * referenced; it does not keep the process running unless `ref()` is called. Errors opening the rtnetlink socket
 * are system errors (`code`, `errno`, `syscall`).
 */
export function watchRoutes(onChange: (kinds: RouteChangeKind[]) => void, options: RouteWatchOptions = {}): RouteWatch {
  if (typeof onChange !== 'function') throw new TypeError('onChange must be a function');
  const Watch = native().RouteWatch;
  const callback = (kinds: string[]): void => onChange(kinds as RouteChangeKind[]);
  // A netlink socket stays in the namespace it was opened in: only the opening needs to happen inside.
  const raw = options.netns === undefined ? new Watch(callback) : withNetns(options.netns, () => new Watch(callback));
  return new NetlinkRouteWatch(raw);
}
