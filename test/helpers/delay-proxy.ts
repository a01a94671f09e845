/**
 * A TCP proxy on loopback that holds every chunk `delayMs` before passing it on, in each
 * direction: put it between node-redis and Redis to see how many sequential round trips an
 * operation makes (each one costs 2 × delayMs more). Order is kept: timers of one duration
 * fire in the order they were set.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface DelayProxy {
  port: number;
  /** The one-way delay; can be changed while connections are open. */
  delayMs: number;
  close(): Promise<void>;
}

export async function startDelayProxy(target: { host?: string; port: number }, delayMs: number): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const proxy: DelayProxy = { port: 0, delayMs, close: async () => {} };
  const pipeDelayed = (from: Socket, to: Socket) => {
    from.on('data', (chunk) => {
      if (proxy.delayMs <= 0) return void to.write(chunk);
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, proxy.delayMs);
    });
    from.on('end', () => setTimeout(() => to.end(), proxy.delayMs));
    from.on('error', () => to.destroy());
    from.on('close', () => setTimeout(() => to.destroy(), proxy.delayMs));
  };
  const server: Server = createServer((client) => {
    client.setNoDelay(true);
    const upstream = createConnection({ host: target.host ?? '127.0.0.1', port: target.port });
    upstream.setNoDelay(true);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    }
    pipeDelayed(client, upstream);
    pipeDelayed(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as AddressInfo).port;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    });
  return proxy;
}
