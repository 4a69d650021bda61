import type { Endpoint } from '@flowlb/flow-table';

interface Claim {
  holders: number;
  checked: Promise<void>;
}

/**
 * The local endpoints that flow sockets hold, counted per endpoint, with a check run once when an endpoint is first
 * claimed and shared by everyone who claims it while it is held. Flows towards different targets share a SNAT
 * port, so the check cannot run per flow: a second flow's check would find the first flow's socket.
 */
export class PortClaims {
  readonly #claims = new Map<string, Claim>();

  /** Endpoints held. */
  get size(): number {
    return this.#claims.size;
  }

  /**
   * Claims `local` for one holder. The first claim runs `check`; later claims wait for its outcome. Rejects with
   * the check's error, and then holds nothing.
   */
  async claim(local: Endpoint, check: (local: Endpoint) => Promise<void>): Promise<void> {
    const key = keyOf(local);
    let claim = this.#claims.get(key);
    if (!claim) {
      claim = { holders: 0, checked: check(local) };
      this.#claims.set(key, claim);
    }
    claim.holders++;
    try {
      await claim.checked;
    } catch (error) {
      this.release(local);
      throw error;
    }
  }

  /** Gives up one holder's claim; the endpoint is forgotten with its last holder, so the next claim checks again. */
  release(local: Endpoint): void {
    const key = keyOf(local);
    const claim = this.#claims.get(key);
    if (!claim) return;
    if (--claim.holders <= 0) this.#claims.delete(key);
  }

  clear(): void {
    this.#claims.clear();
  }
}

function keyOf(e: Endpoint): string {
  return `${e.address}:${e.port}`;
}
