import { native, type NativeLink } from './native.js';

export interface LinkInfo {
  id: number;
  progId: number;
  type: number;
  ifindex?: number;
}

/**
 * An attachment of a program. Closing the last handle detaches it unless it is pinned; `detach()` ends it even
 * when pinned.
 */
export class Link {
  readonly #raw: NativeLink;

  /** @internal */
  constructor(raw: NativeLink) {
    this.#raw = raw;
  }

  static openPinned(path: string): Link {
    return new Link(native().openPinnedLink(path));
  }

  get description(): string {
    return this.#raw.description;
  }
  get fd(): number {
    return this.#raw.fd;
  }

  info(): LinkInfo {
    return this.#raw.info();
  }

  /** Keeps the attachment alive after this process exits, until the pin is removed. */
  pin(path: string): void {
    this.#raw.pin(path);
  }

  detach(): void {
    this.#raw.detach();
  }

  /** Replaces the attached program atomically. */
  update(program: { fd: number }): void {
    this.#raw.update(program.fd);
  }

  close(): void {
    this.#raw.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
