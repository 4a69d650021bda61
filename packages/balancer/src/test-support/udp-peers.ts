import dgram from 'node:dgram';

export interface Received {
  from: string;
  data: string;
}

function bind(address: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.once('error', reject);
    socket.bind({ address, port, exclusive: true }, () => {
      socket.removeListener('error', reject);
      // ICMP errors surface here; the tests judge by what arrives.
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}

/** Resolves when `check` holds, polling every 10 ms; rejects after `timeoutMs` with `what` in the message. */
export async function waitUntil(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A backend that answers every datagram with `<name>|<datagram>` and remembers what it got. */
export class EchoBackend {
  readonly received: Received[] = [];
  private constructor(
    readonly name: string,
    readonly socket: dgram.Socket,
  ) {
    socket.on('message', (msg, rinfo) => {
      const from = `${rinfo.address}:${rinfo.port}`;
      this.received.push({ from, data: msg.toString() });
      socket.send(Buffer.concat([Buffer.from(`${name}|`), msg]), rinfo.port, rinfo.address);
    });
  }

  static async start(name: string, address: string, port: number): Promise<EchoBackend> {
    return new EchoBackend(name, await bind(address, port));
  }

  close(): void {
    this.socket.close();
  }
}

/**
 * A backend that, once it hears from someone, sends them `count` datagrams `push <i>`, one every `intervalMs`,
 * whatever they do meanwhile: traffic from server to client only.
 */
export class PushBackend {
  readonly received: Received[] = [];
  sent = 0;
  readonly #timers = new Set<NodeJS.Timeout>();
  private constructor(readonly socket: dgram.Socket, count: number, intervalMs: number) {
    socket.on('message', (msg, rinfo) => {
      this.received.push({ from: `${rinfo.address}:${rinfo.port}`, data: msg.toString() });
      let i = 0;
      const timer = setInterval(() => {
        socket.send(`push ${i}`, rinfo.port, rinfo.address);
        this.sent++;
        if (++i === count) {
          clearInterval(timer);
          this.#timers.delete(timer);
        }
      }, intervalMs);
      this.#timers.add(timer);
    });
  }

  static async start(address: string, port: number, count: number, intervalMs: number): Promise<PushBackend> {
    return new PushBackend(await bind(address, port), count, intervalMs);
  }

  close(): void {
    for (const t of this.#timers) clearInterval(t);
    this.socket.close();
  }
}

/** A client socket that keeps everything it receives. */
export class TestClient {
  readonly received: Received[] = [];
  private constructor(readonly socket: dgram.Socket) {
    socket.on('message', (msg, rinfo) => this.received.push({ from: `${rinfo.address}:${rinfo.port}`, data: msg.toString() }));
  }

  static async open(address: string, port = 0): Promise<TestClient> {
    return new TestClient(await bind(address, port));
  }

  get local(): string {
    const a = this.socket.address();
    return `${a.address}:${a.port}`;
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(data: string | Buffer, to: { address: string; port: number }): Promise<void> {
    return new Promise((resolve, reject) => this.socket.send(data, to.port, to.address, (e) => (e ? reject(e) : resolve())));
  }

  /** Sends and waits for the next datagram; undefined if none comes within `timeoutMs`. */
  async request(data: string, to: { address: string; port: number }, timeoutMs = 2000): Promise<Received | undefined> {
    const before = this.received.length;
    await this.send(data, to);
    try {
      await waitUntil(() => this.received.length > before, timeoutMs, `a reply to ${data}`);
    } catch {
      return undefined;
    }
    return this.received[before];
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}
