import { OWN, assertOwn } from './internal.js';
import { explainKernelFloor, INGRESS_IFINDEX_FLOOR, LIVE_FRAMES_FLOOR } from './kernel.js';
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

  /** @internal Programs come from `BpfObject.program` and `Program.openPinned`. */
  constructor(token: typeof OWN, raw: NativeProgram) {
    assertOwn(token, 'Program', 'use BpfObject.program or Program.openPinned');
    this.#raw = raw;
  }

  static openPinned(path: string): Program {
    return new Program(OWN, native().openPinnedProgram(path));
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

  /**
   * Attaches to an interface (name or index, in the caller's network namespace) and returns the link. The program
   * stays attached until the link is closed or detached, whether or not the link is still referenced.
   */
  attachXdp(iface: string | number, options: AttachXdpOptions = {}): Link {
    return new Link(OWN, this.#raw.attachXdp(ifIndex(iface), options.mode ?? 'auto'));
  }

  /**
   * Runs the program on one frame with BPF_PROG_TEST_RUN. With `ingressIfindex`, helpers such as bpf_fib_lookup
   * see that interface, in the caller's network namespace; that needs Linux 5.15 or later.
   */
  testRun(options: TestRunOptions): TestRunResult {
    const repeat = options.repeat ?? 1;
    const out = options.dataSizeOut ?? options.data.length + 256;
    const ingress = options.ingressIfindex ?? 0;
    try {
      return this.#raw.testRun(options.data, ingress, repeat, out);
    } catch (error) {
      throw ingress ? explainKernelFloor(error, 'testRun with an ingress interface', INGRESS_IFINDEX_FLOOR) : error;
    }
  }

  /**
   * Runs the program on `repeat` copies of a frame in live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES): the verdicts
   * are carried out, so XDP_TX and XDP_REDIRECT really transmit. A traffic generator in a few lines of BPF; the
   * call blocks until every frame has been run. Needs Linux 5.18 or later.
   */
  runLive(options: LiveRunOptions): LiveRunResult {
    if (!Number.isInteger(options.ingressIfindex) || options.ingressIfindex <= 0) {
      throw new RangeError(`runLive needs the ifindex of the device the frames arrive on, got ${options.ingressIfindex}`);
    }
    const batch = options.batchSize ?? 0;
    if (!Number.isInteger(batch) || batch < 0 || batch > 256) {
      throw new RangeError(`batchSize must be an integer from 1 to 256, got ${options.batchSize}`);
    }
    try {
      return this.#raw.runLive(options.data, options.ingressIfindex, options.repeat ?? 1, batch);
    } catch (error) {
      throw explainKernelFloor(error, 'runLive (live frames)', LIVE_FRAMES_FLOOR);
    }
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
