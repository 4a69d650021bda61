/**
 * Proof that a handle is being built by this package around a native object it made. Not exported from the package:
 * the public classes cannot be constructed from user values, such as a descriptor number.
 */
export const OWN: unique symbol = Symbol('@flowlb/xdp-core own');

export function assertOwn(token: unknown, what: string, howToGet: string): void {
  if (token !== OWN) throw new TypeError(`${what} cannot be constructed directly: ${howToGet}`);
}
