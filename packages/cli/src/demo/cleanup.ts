import type { Io } from '../cli/io.js';

/** Steps that undo what the demo set up, run last-in first-out, also on Ctrl-C. */
export class Cleanup {
  readonly #steps: Array<{ what: string; run: () => unknown }> = [];
  readonly #sync: Array<() => void> = [];

  add(what: string, run: () => unknown, sync?: () => void): void {
    this.#steps.push({ what, run });
    if (sync) this.#sync.push(sync);
  }

  #running: Promise<void> | undefined;

  /** One run at a time: a Ctrl-C during the normal clean-up joins it instead of racing it. */
  run(io: Io): Promise<void> {
    this.#running ??= this.#run(io).finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #run(io: Io): Promise<void> {
    while (this.#steps.length > 0) {
      const step = this.#steps.pop()!;
      try {
        await step.run();
      } catch (error) {
        io.err(`flowlb demo: cleaning up (${step.what}) failed: ${(error as Error).message}\n`);
      }
    }
    this.#sync.length = 0;
  }

  runSync(): void {
    for (const s of this.#sync.splice(0).reverse()) {
      try {
        s();
      } catch {
        // best effort while exiting
      }
    }
  }
}
