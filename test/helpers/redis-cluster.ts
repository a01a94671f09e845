/**
 * A private three-master Redis Cluster for one test file (as test/contract/stores.test.ts starts
 * one), and a node-redis cluster client on it, optionally through other addresses (for
 * example a delay proxy per node, mapped with node-redis's `nodeAddressMap`).
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { createCluster, type RedisClientType, type RedisClusterType } from 'redis';
import { freePort, keysUnder, kill, reconnectStrategy, startRedis, waitForRedis } from './redis-server.js';

const run = promisify(execFile);

export interface TestCluster {
  /** The masters' own ports. */
  ports: number[];
  /** The masters' processes (a test may SIGSTOP one). */
  readonly nodes: ChildProcess[];
  /** A connected client; `via` maps a master's port to the port the client should use instead. */
  connect(via?: Map<number, number>): Promise<RedisClusterType>;
  /** Deletes every key under `prefix` on every master. */
  deleteUnder(client: RedisClusterType, prefix: string): Promise<number>;
  stop(): Promise<void>;
}

export async function startCluster(): Promise<TestCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'blockid-otp-pipeline-cluster-'));
  const ports: number[] = [];
  while (ports.length < 3) {
    const port = await freePort(true);
    if (!ports.includes(port)) ports.push(port);
  }
  const nodes: ChildProcess[] = ports.map((port) =>
    startRedis(port, dir, ['--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '5000']),
  );
  await Promise.all(ports.map(waitForRedis));
  await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
  for (const port of ports) {
    for (let i = 0; ; i += 1) {
      const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
      if (stdout.includes('cluster_state:ok')) break;
      if (i > 100) throw new Error(`cluster node ${port} never reached cluster_state:ok`);
      await sleep(100);
    }
  }
  const clients: RedisClusterType[] = [];
  return {
    ports,
    nodes,
    async connect(via) {
      const first = ports[0] ?? 0;
      const nodeAddressMap =
        via === undefined ? undefined : Object.fromEntries(ports.map((port) => [`127.0.0.1:${port}`, { host: '127.0.0.1', port: via.get(port) ?? port }]));
      const client = createCluster({
        rootNodes: [{ url: `redis://127.0.0.1:${via?.get(first) ?? first}` }],
        defaults: { socket: { reconnectStrategy } },
        ...(nodeAddressMap && { nodeAddressMap }),
      }) as unknown as RedisClusterType;
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
      return client;
    },
    async deleteUnder(client, prefix) {
      let deleted = 0;
      for (const master of client.masters) {
        const node = (await client.nodeClient(master)) as unknown as RedisClientType;
        for (const key of await keysUnder(node, prefix)) deleted += await node.del(key);
      }
      return deleted;
    },
    async stop() {
      for (const client of clients) {
        try {
          if (client.isOpen) await client.close();
        } catch {
          // already closed
        }
      }
      for (const node of nodes) await kill(node);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
