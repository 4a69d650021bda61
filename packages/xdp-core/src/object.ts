import { OWN } from './internal.js';
import { BpfMap } from './map.js';
import { native, type NativeObject } from './native.js';
import { Program } from './program.js';

/**
 * A BPF ELF object: open it, size and pin its maps, load it (the verifier runs off the main thread), then take
 * handles to its programs and maps. Handles stay valid after the object is closed.
 */
export class BpfObject {
  readonly #raw: NativeObject;
  readonly path: string;

  private constructor(raw: NativeObject, path: string) {
    this.#raw = raw;
    this.path = path;
  }

  static open(path: string): BpfObject {
    return new BpfObject(new (native().BpfObject)(path), path);
  }

  get loaded(): boolean {
    return this.#raw.loaded;
  }

  mapNames(): string[] {
    return this.#raw.mapNames();
  }

  programNames(): string[] {
    return this.#raw.programNames();
  }

  /** Before load: the number of entries a map gets. */
  setMaxEntries(map: string, maxEntries: number): this {
    this.#raw.setMaxEntries(map, maxEntries);
    return this;
  }

  /**
   * Before load: where a map is pinned. If a compatible map is pinned there already, load reuses it (its
   * entries survive); otherwise load creates the map and pins it there.
   */
  setPinPath(map: string, path: string | undefined): this {
    this.#raw.setPinPath(map, path);
    return this;
  }

  /**
   * Loads and verifies every program. Rejects with the end of the verifier's log in the message and the whole log
   * (libbpf's messages included) in `error.log`.
   */
  async load(): Promise<void> {
    await this.#raw.load();
  }

  program(name: string): Program {
    return new Program(OWN, this.#raw.program(name));
  }

  map(name: string): BpfMap {
    return new BpfMap(OWN, this.#raw.map(name));
  }

  close(): void {
    this.#raw.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
