/**
 * Private redis-server processes for tests that must kill, stall or cluster Redis without
 * touching the shared one on 127.0.0.1:6379. Every child is SIGKILLed when the test process exits.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { RedisClientType } from 'redis';

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

const run = promisify(execFile);

/** node-redis reconnect strategy for tests: retry soon (50 ms, 100 ms, ... at most 500 ms). */
export const reconnectStrategy = (retries: number): number => Math.min(retries * 50, 500);

/** A loopback port nobody listens on (and, for Cluster, whose bus port `port + 10000` is free too). */
export async function freePort(withBusPort = false): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | null>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(null));
      server.listen(port, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : null));
      });
    });
  for (;;) {
    const port = await tryListen(0);
    if (port === null || (withBusPort && (port > 55_000 || (await tryListen(port + 10_000)) === null))) continue;
    return port;
  }
}

/** Starts `redis-server` on `port` (no persistence, loopback only), with `dir` as its working directory. */
export function startRedis(port: number, dir: string, extra: string[] = []): ChildProcess {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...extra], {
    cwd: dir,
    stdio: 'ignore',
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Resolves once `redis-cli -p port ping` answers PONG (up to 5 s). */
export async function waitForRedis(port: number): Promise<void> {
  for (let i = 0; i < 100; i += 1) {
    try {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'ping']);
      if (stdout.trim() === 'PONG') return;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`redis-server on port ${port} did not start`);
}

/** Sends `signal` to a child and waits until it has exited (no-op when it already has). */
export async function kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

/** Every key under `prefix` on one node (a client, or one Cluster master). */
export async function keysUnder(client: RedisClientType, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const batch of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 1000 })) keys.push(...batch);
  return keys;
}
