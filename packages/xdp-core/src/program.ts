import { Link } from './link.js';
import { native, type NativeProgram } from './native.js';
import { ifIndex } from './system.js';
import type { LiveRunOptions, LiveRunResult, TestRunOptions, TestRunResult, XdpMode } from './types.js';

export interface AttachXdpOptions {
  /** Default 'auto': native where the driver has it, generic otherwise (the kernel's choice). */
  mode?: XdpMode;
}

export class Program {
  readonly #raw: NativeProgram;

  /** @internal */
  constructor(raw: NativeProgram) {
    this.#raw = raw;
  }

  static openPinned(path: string): Program {
    return new Program(native().openPinnedProgram(path));
  }

  get name(): string {
    return this.#raw.name;
  }
  get id(): number {
    return this.#raw.id;
  }
  get fd(): number {
    return this.#raw.fd;
  }

  /** Attaches to an interface (name or index, in the caller's network namespace) and returns the link. */
  attachXdp(iface: string | number, options: AttachXdpOptions = {}): Link {
    return new Link(this.#raw.attachXdp(ifIndex(iface), options.mode ?? 'auto'));
  }

  /**
   * Runs the program on one frame with BPF_PROG_TEST_RUN. With `ingressIfindex`, helpers such as bpf_fib_lookup
   * see that interface, in the caller's network namespace.
   */
  testRun(options: TestRunOptions): TestRunResult {
    const repeat = options.repeat ?? 1;
    const out = options.dataSizeOut ?? options.data.length + 256;
    return this.#raw.testRun(options.data, options.ingressIfindex ?? 0, repeat, out);
  }

  /**
   * Runs the program on `repeat` copies of a frame in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES): the verdicts
   * are carried out, so XDP_TX and XDP_REDIRECT really transmit. A traffic generator in a few lines of BPF; the
   * call blocks until every frame has been run.
   */
  runLive(options: LiveRunOptions): LiveRunResult {
    if (!Number.isInteger(options.ingressIfindex) || options.ingressIfindex <= 0) {
      throw new RangeError(`runLive needs the ifindex of the device the frames arrive on, got ${options.ingressIfindex}`);
    }
    const batch = options.batchSize ?? 0;
    if (!Number.isInteger(batch) || batch < 0 || batch > 256) {
      throw new RangeError(`batchSize must be an integer from 1 to 256, got ${options.batchSize}`);
    }
    return this.#raw.runLive(options.data, options.ingressIfindex, options.repeat ?? 1, batch);
  }

  pin(path: string): void {
    this.#raw.pin(path);
  }

  close(): void {
    this.#raw.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
