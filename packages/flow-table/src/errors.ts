export type FlowTableErrorCode = 'E2BIG' | 'EEXIST' | 'ENOENT';

/**
 * A refused write, with the errno name the kernel gives for the same refusal on a BPF hash map, so callers can
 * handle the in-memory and the kernel table alike by `code`.
 */
export class FlowTableError extends Error {
  readonly code: FlowTableErrorCode;

  constructor(code: FlowTableErrorCode, message: string) {
    super(message);
    this.name = 'FlowTableError';
    this.code = code;
  }
}
