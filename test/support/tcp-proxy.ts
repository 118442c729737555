/**
 * A TCP proxy on a loopback port in front of PostgreSQL or Redis, for tests of a network path that
 * misbehaves without the server itself being touched:
 *
 * - `stall()`: open connections stop forwarding bytes in both directions and stay open (the peers'
 *   kernels still answer keepalive probes), and new connections are accepted and held the same way;
 * - `admitNew()`: new connections are forwarded again, the stalled ones stay stalled;
 * - `refuse()`: open connections are reset and new ones refused (nothing listens on the port);
 * - `resume()`: listens again, forwards new connections and releases the stalled ones.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  host: string;
  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string;
  stall(): void;
  admitNew(): void;
  refuse(): Promise<void>;
  resume(): Promise<void>;
  /** Connections open now, and how many of them are stalled. */
  connections(): { open: number; stalled: number };
  /** The local ports of the proxy's sockets to the server on the stalled connections, as the server sees its clients. */
  stalledUpstreamPorts(): number[];
  close(): Promise<void>;
}

interface Conn {
  client: Socket;
  upstream: Socket;
  stalled: boolean;
  connected: boolean;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const host = '127.0.0.1';
  const conns = new Set<Conn>();
  let stallNew = false;
  let server: Server | undefined;
  let port = 0;

  const release = (c: Conn) => {
    c.stalled = false;
    if (c.connected) {
      c.client.resume();
      c.upstream.resume();
    }
  };
  const hold = (c: Conn) => {
    c.stalled = true;
    c.client.pause();
    c.upstream.pause();
  };
  const drop = (c: Conn) => {
    conns.delete(c);
    c.client.destroy();
    c.upstream.destroy();
  };

  /** Forwards `from` to `to`, honouring back-pressure, and never while the connection is stalled. */
  const forward = (c: Conn, from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => {
          if (!c.stalled) from.resume();
        });
      }
    });
  };

  const onConnection = (client: Socket) => {
    client.pause();
    const upstream = connect(target.port, target.host);
    upstream.pause();
    const c: Conn = { client, upstream, stalled: stallNew, connected: false };
    conns.add(c);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('error', () => drop(c));
    upstream.on('error', () => drop(c));
    client.on('close', () => drop(c));
    upstream.on('close', () => drop(c));
    forward(c, client, upstream);
    forward(c, upstream, client);
    upstream.once('connect', () => {
      c.connected = true;
      if (!c.stalled) release(c);
    });
  };

  async function listen(): Promise<void> {
    if (server) return;
    const srv = createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => {
        srv.off('error', reject);
        resolve();
      });
    });
    const address = srv.address();
    port = typeof address === 'object' && address ? address.port : port;
    server = srv;
  }

  async function unlisten(): Promise<void> {
    const srv = server;
    server = undefined;
    if (srv) await new Promise<void>((resolve) => srv.close(() => resolve()));
  }

  await listen();

  return {
    get port() {
      return port;
    },
    host,
    via(url: string) {
      const u = new URL(url);
      u.hostname = host;
      u.port = String(port);
      return u.toString();
    },
    stall() {
      stallNew = true;
      for (const c of conns) hold(c);
    },
    admitNew() {
      stallNew = false;
    },
    async refuse() {
      stallNew = false;
      const closing = unlisten();
      for (const c of [...conns]) {
        c.client.resetAndDestroy();
        drop(c);
      }
      await closing;
    },
    async resume() {
      stallNew = false;
      await listen();
      for (const c of conns) release(c);
    },
    connections() {
      let stalled = 0;
      for (const c of conns) if (c.stalled) stalled++;
      return { open: conns.size, stalled };
    },
    stalledUpstreamPorts() {
      return [...conns].flatMap((c) => (c.stalled && c.upstream.localPort ? [c.upstream.localPort] : []));
    },
    async close() {
      const closing = unlisten();
      for (const c of [...conns]) drop(c);
      await closing;
    },
  };
}
