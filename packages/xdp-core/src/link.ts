import { OWN, assertOwn } from './internal.js';
import { native, type NativeLink } from './native.js';

export interface LinkInfo {
  id: number;
  progId: number;
  type: number;
  ifindex?: number;
}

/**
 * An attachment of a program. Closing the last handle detaches it unless it is pinned; `detach()` ends it even
 * when pinned. A link stays attached until `close()` or `detach()`, even when nothing references it any more: the
 * garbage collector never closes it. It ends with the thread (main or worker) that made it.
 */
export class Link {
  readonly #raw: NativeLink;

  /** @internal Links come from `Program.attachXdp` and `Link.openPinned`. */
  constructor(token: typeof OWN, raw: NativeLink) {
    assertOwn(token, 'Link', 'use Program.attachXdp or Link.openPinned');
    this.#raw = raw;
  }

  static openPinned(path: string): Link {
    return new Link(OWN, native().openPinnedLink(path));
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

  /** Ends the attachment now, pinned or not. The handle stays open until `close()`. */
  detach(): void {
    this.#raw.detach();
  }

  /** Replaces the attached program atomically. */
  update(program: { fd: number }): void {
    this.#raw.update(program.fd);
  }

  /** Releases this handle, which detaches the program unless the link is pinned. Closing twice is harmless. */
  close(): void {
    this.#raw.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
