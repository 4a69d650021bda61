import type { UdpEndpoint } from '@flowlb/mapper-api';

/**
 * The keys the XDP program answers a VIP's DTLS ClientHellos with (its own HelloVerifyRequest, see @flowlb/xdp-core
 * `XdpForwarder.setHelloVerify`): two 16-byte SipHash-2-4 keys, which one makes new cookies, and when to ask again.
 */
export interface KernelHelloVerify {
  keys: readonly [Uint8Array, Uint8Array];
  current: 0 | 1;
  /** The keys change in this many milliseconds (a rotation): the source is asked again then. */
  refreshInMs: number;
}

/**
 * Asked when the balancer starts, when `refreshInMs` has passed and on {@link LoadBalancer.refreshHelloVerify};
 * `undefined` leaves ClientHellos to the mapper again. @flowlb/mapper-dtls-sni's `DtlsSniMapper.kernelHelloVerify`
 * is one: it answers only while every route of its mappings asks for a cookie, since the program cannot read the
 * name a hello asks for.
 */
export type KernelHelloVerifySource = () => KernelHelloVerify | undefined;

/** What the keeper needs of a forwarder. */
export interface HelloVerifyTarget {
  setHelloVerify(vip: UdpEndpoint, keys: { keys: readonly [Uint8Array, Uint8Array]; current: 0 | 1 } | undefined): void;
}

/** A refresh never waits longer than this, so a clock step or a source that says "never" cannot strand old keys. */
const MAX_REFRESH_MS = 60_000;
/** Nor shorter: a source that keeps saying 0 must not spin. */
const MIN_REFRESH_MS = 50;

/** Keeps the program's cookie keys for the VIP equal to what the source says, through rotations and reloads. */
export class KernelHelloVerifyKeeper {
  readonly #target: HelloVerifyTarget;
  readonly #vip: UdpEndpoint;
  readonly #source: KernelHelloVerifySource;
  readonly #onError: (error: Error) => void;
  #timer: NodeJS.Timeout | undefined;
  #active = false;
  #stopped = false;

  constructor(target: HelloVerifyTarget, vip: UdpEndpoint, source: KernelHelloVerifySource, onError: (error: Error) => void) {
    this.#target = target;
    this.#vip = vip;
    this.#source = source;
    this.#onError = onError;
  }

  /** Whether the program answers ClientHellos for the VIP now. */
  get active(): boolean {
    return this.#active;
  }

  /** Asks the source and writes its answer; throws what the source or the map write threw. */
  refresh(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const want = this.#source();
    if (want === undefined) {
      if (this.#active) this.#target.setHelloVerify(this.#vip, undefined);
      this.#active = false;
      return;
    }
    this.#target.setHelloVerify(this.#vip, { keys: want.keys, current: want.current });
    this.#active = true;
    const wait = Math.min(MAX_REFRESH_MS, Math.max(MIN_REFRESH_MS, Math.ceil(want.refreshInMs)));
    this.#timer = setTimeout(() => this.#refreshQuietly(), wait);
    this.#timer.unref();
  }

  /** Stops refreshing and takes the keys out of the program: ClientHellos go to the control plane again. */
  stop(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stopped = true;
    if (this.#active) {
      this.#active = false;
      try {
        this.#target.setHelloVerify(this.#vip, undefined);
      } catch (error) {
        this.#onError(error as Error);
      }
    }
  }

  #refreshQuietly(): void {
    try {
      this.refresh();
    } catch (error) {
      this.#onError(error as Error);
      // The keys in the program are from the previous period and still accepted for one more: try again soon.
      this.#timer = setTimeout(() => this.#refreshQuietly(), 1000);
      this.#timer.unref();
    }
  }
}
