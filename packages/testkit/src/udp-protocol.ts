/** One datagram seen by the echo peer (one JSON line on its stdout). */
export interface EchoRecord {
  /** Sender as `ip:port`. */
  from: string;
  /** The local socket that received it, `ip:port`; absent when bound to a wildcard address. */
  to?: string;
  len: number;
  /** The datagram decoded as UTF-8 (lossy for binary data; use `hex` for exact bytes). */
  data: string;
  hex: string;
  /** ms since the peer started. */
  t: number;
}

export interface ClientReply {
  from: string;
  data: string;
  hex: string;
  /** The sequence number of the datagram this reply echoes, when it could be matched. */
  seq?: number;
  /** ms since the client started. */
  t: number;
}

export interface ClientSummary {
  /** The client's own socket, `ip:port`. */
  local: string;
  sent: number;
  received: number;
  replies: ClientReply[];
  /** Sequence numbers (0-based) with no matching reply. */
  lostSeqs: number[];
  durationMs: number;
}

/** Printed once on stderr by the echo peer when every socket is bound. */
export interface ListeningNotice {
  listening: string[];
}

export function formatEndpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function parseEndpoint(text: string, defaultPort?: number): { address: string; port: number } {
  let address: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (v6?.[1]) {
    address = v6[1];
    portText = v6[2];
  } else {
    const idx = text.lastIndexOf(':');
    if (idx >= 0 && text.indexOf(':') === idx) {
      address = text.slice(0, idx);
      portText = text.slice(idx + 1);
    } else {
      address = text;
    }
  }
  const port = portText !== undefined && portText !== '' ? Number(portText) : defaultPort;
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`bad endpoint '${text}': expected ip:port`);
  }
  return { address, port };
}
