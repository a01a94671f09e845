/**
 * The pipeline suites' harness: the same app on Express and on Koa (sessions, the plugin,
 * an error handler), on the memory store, Redis on 127.0.0.1:6379 (a prefix of its own,
 * keys deleted at the end) and a private three-master Redis Cluster; counting senders and
 * every event kept; and a keep-alive client with a full cookie jar (koa-session's signed
 * cookies are two) that times each answer.
 */
import { randomBytes } from 'node:crypto';
import { Agent, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';
import express from 'express';
import session from 'express-session';
import Koa from 'koa';
import koaSession from 'koa-session';
import { createClient, type RedisClientType, type RedisClusterType } from 'redis';
import {
  blockidOtp, memoryStore, redisStore, type BlockidOtpMiddleware, type EmailSender, type OtpEventMap, type OtpOptions, type SmsSender,
} from '../../src/index.js';
import type { OtpStore } from '../../src/store.js';
import { blockidOtpKoa } from '../../src/koa.js';
import { startCluster, type TestCluster } from './redis-cluster.js';

const SECRET = 'pipeline-suite-secret-0123456789-abcdefgh';
export type Framework = 'express' | 'koa';
export const FRAMEWORKS: Framework[] = ['express', 'koa'];

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- stores ---------------------------------------------------------------------------------

export interface Backend {
  name: 'memory' | 'redis' | 'cluster';
  make(options?: { commandTimeoutMs?: number }): OtpStore;
}

const runPrefix = `otp-pipeline-${process.pid}-${randomBytes(4).toString('hex')}`;
let prefixCount = 0;
export const nextPrefix = () => `${runPrefix}-${(prefixCount += 1)}:`;

/** Deletes every key under `prefix` on a single Redis. */
export async function deleteUnder(client: RedisClientType, prefix: string): Promise<number> {
  let deleted = 0;
  for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
    if (keys.length > 0) deleted += await client.del(keys);
  }
  return deleted;
}

/**
 * Memory, Redis and (unless `cluster: false`) a private Cluster; an `after` hook deletes
 * every key this file wrote and stops the Cluster. Redis and Cluster are left out (with a
 * note) only when they cannot be started at all.
 */
export async function pipelineBackends({ cluster: withCluster = true } = {}): Promise<Backend[]> {
  const backends: Backend[] = [{ name: 'memory', make: () => memoryStore() }];
  const client = createClient({ url: 'redis://127.0.0.1:6379', socket: { reconnectStrategy: false, connectTimeout: 2000 } }) as RedisClientType;
  client.on('error', () => undefined);
  let redisUp = false;
  try {
    await client.connect();
    redisUp = true;
  } catch {
    console.log('# Redis on 127.0.0.1:6379 is not reachable: the redis cases are skipped');
  }
  let cluster: TestCluster | undefined;
  let clusterClient: RedisClusterType | undefined;
  if (withCluster) {
    try {
      cluster = await startCluster();
      clusterClient = await cluster.connect();
    } catch (error) {
      console.log(`# could not start a Redis Cluster (${(error as Error).message}): the cluster cases are skipped`);
    }
  }
  const prefixes: string[] = [];
  const prefixed = (make: (prefix: string) => OtpStore) => () => {
    const prefix = nextPrefix();
    prefixes.push(prefix);
    return make(prefix);
  };
  // commandTimeoutMs 5000: these suites are not about timeouts, and a loaded machine must not turn into 503s.
  if (redisUp) backends.push({ name: 'redis', make: (o = {}) => prefixed((prefix) => redisStore({ client, prefix, commandTimeoutMs: 5000, ...o }))() });
  if (clusterClient) {
    const cluster = clusterClient;
    backends.push({ name: 'cluster', make: (o = {}) => prefixed((prefix) => redisStore({ client: cluster, prefix, commandTimeoutMs: 5000, ...o }))() });
  }
  after(async () => {
    for (const prefix of prefixes) {
      if (redisUp) await deleteUnder(client, prefix);
    }
    if (redisUp) await client.quit();
    await cluster?.stop();
  });
  return backends;
}

// ---- the app --------------------------------------------------------------------------------

interface SenderCall {
  channel: 'sms' | 'email';
  to: string;
  code: string;
  username: string;
}

function countingSenders(sync?: () => void) {
  const calls: SenderCall[] = [];
  const record = async (call: SenderCall) => {
    sync?.();
    calls.push(call);
  };
  const sms: SmsSender = { send: (m) => record({ channel: 'sms', to: m.to, code: m.code, username: m.username }) };
  const email: EmailSender = { send: (m) => record({ channel: 'email', to: m.to, code: m.code, username: m.username }) };
  return { sms, email, calls };
}

/** Limits high enough that only the ones a test sets ever refuse. */
export const generousLimits = {
  sendsPerIp: { points: 1_000_000, windowSeconds: 3600 },
  sendsPerUsername: { points: 1_000_000, windowSeconds: 3600 },
  sendsPerDestination: { points: 1_000_000, windowSeconds: 3600 },
  smsPerPrefix: { points: 1_000_000, windowSeconds: 3600 },
  smsPerHour: 100_000_000,
  smsPerDay: 100_000_000,
} satisfies OtpOptions['limits'];

export interface PipelineAppOptions {
  framework: Framework;
  store: OtpStore;
  otp: Partial<OtpOptions> & Pick<OtpOptions, 'resolveUser'>;
  /** Trust one proxy (Express `trust proxy` 1, Koa `proxy` with `maxIpsCount` 1): clients pick their IP with X-Forwarded-For. */
  trustProxy?: boolean;
  /** Runs first on the new app (e.g. `app.set('trust proxy', 10)`, `app.proxy = true`). */
  expressSetup?: (app: express.Express) => void;
  koaSetup?: (app: Koa) => void;
  /** Express middleware mounted before the plugin (Koa: `koaBefore`). */
  expressBefore?: express.RequestHandler;
  koaBefore?: Koa.Middleware;
  /** Extra routes after the plugin; they get the plugin (for its programmatic API). */
  expressRoutes?: (app: express.Express, otp: BlockidOtpMiddleware) => void;
  koaRoutes?: (app: Koa, otp: BlockidOtpMiddleware) => void;
}

export interface PipelineApp {
  framework: Framework;
  port: number;
  /** The plugin: middleware plus `generateOtp`, `verifyOtp`, `unlock`, `on`. */
  otp: BlockidOtpMiddleware;
  calls: SenderCall[];
  events: { [E in 'failed' | 'locked' | 'rate_limited' | 'verified']: Array<OtpEventMap[E]> };
  /** Errors the app's error handler answered with 500. */
  errors: Error[];
  /** The code of the first delivery for `username` after `mark` (a `calls.length` taken before the send). */
  codeAfter(username: string, mark: number): Promise<string>;
  close(): Promise<void>;
}

/** Apps still open when the file ends (a failed assertion skipped their `close()`): closed then, so no server keeps the file alive. */
const openApps = new Set<PipelineApp>();
after(async () => {
  for (const app of openApps) await app.close();
});

export async function startPipelineApp(options: PipelineAppOptions): Promise<PipelineApp> {
  const senders = countingSenders();
  const otpOptions = { secret: SECRET, sms: senders.sms, email: senders.email, store: options.store, ...options.otp } as OtpOptions;
  const errors: Error[] = [];
  let otp: BlockidOtpMiddleware;
  let server: Server;
  if (options.framework === 'express') {
    const app = express();
    if (options.trustProxy) app.set('trust proxy', 1);
    options.expressSetup?.(app);
    app.use(session({ secret: 'pipeline-session-secret', resave: false, saveUninitialized: false, name: 'sid' }));
    if (options.expressBefore) app.use(options.expressBefore);
    otp = blockidOtp(otpOptions);
    app.use(otp);
    options.expressRoutes?.(app, otp);
    app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(error);
      res.status(500).json({ error: 'internal_error', message: error.message });
    });
    server = app.listen(0, '127.0.0.1');
  } else {
    const app = new Koa();
    app.keys = ['pipeline-session-key'];
    if (options.trustProxy) Object.assign(app, { proxy: true, maxIpsCount: 1 });
    options.koaSetup?.(app);
    app.use(async (ctx, next) => {
      try {
        await next();
      } catch (error) {
        errors.push(error as Error);
        ctx.status = 500;
        ctx.body = { error: 'internal_error', message: (error as Error).message };
      }
    });
    app.use(koaSession({ key: 'sid', signed: true }, app));
    if (options.koaBefore) app.use(options.koaBefore);
    const plugin = blockidOtpKoa(otpOptions);
    otp = plugin as unknown as BlockidOtpMiddleware;
    app.use(plugin);
    options.koaRoutes?.(app, otp);
    server = app.listen(0, '127.0.0.1');
  }
  await new Promise((resolve) => server.once('listening', resolve));
  const events: PipelineApp['events'] = { failed: [], locked: [], rate_limited: [], verified: [] };
  const listen = (otp.on as (event: string, listener: (payload: unknown) => void) => unknown).bind(otp);
  for (const name of Object.keys(events) as Array<keyof typeof events>) listen(name, (event) => void (events[name] as unknown[]).push(event));
  const app: PipelineApp = {
    framework: options.framework,
    port: (server.address() as AddressInfo).port,
    otp,
    calls: senders.calls,
    events,
    errors,
    async codeAfter(username, mark) {
      for (let i = 0; i < 400; i += 1) {
        const call = senders.calls.slice(mark).find((c) => c.username === username);
        if (call) return call.code;
        await sleep(5);
      }
      throw new Error(`no code was delivered for ${username}`);
    },
    close: () =>
      new Promise<void>((resolve) => {
        openApps.delete(app);
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  openApps.add(app);
  return app;
}

// ---- the client -----------------------------------------------------------------------------

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: any;
  text: string;
  /** From writing the request to the last byte of the answer. */
  ms: number;
}

const agents: Agent[] = [];
after(() => {
  for (const agent of agents) agent.destroy();
});

/** One browser: a cookie jar, a keep-alive connection, and headers it always sends (e.g. X-Forwarded-For). */
export class Browser {
  readonly jar = new Map<string, string>();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 4 });
  constructor(
    readonly port: number,
    readonly headers: Record<string, string> = {},
  ) {
    agents.push(this.agent);
  }

  post(path: string, json: unknown, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Answer> {
    return this.request('POST', path, JSON.stringify(json), { 'content-type': 'application/json', ...headers }, timeoutMs);
  }

  get(path: string, headers: Record<string, string> = {}): Promise<Answer> {
    return this.request('GET', path, undefined, headers, 5000);
  }

  send(username: string, channel?: string, headers?: Record<string, string>) {
    return this.post('/otp/send', channel === undefined ? { username } : { username, channel }, headers);
  }

  verify(username: string, code: string, headers?: Record<string, string>) {
    return this.post('/otp/verify', { username, code }, headers);
  }

  request(method: string, path: string, raw: string | undefined, headers: Record<string, string>, timeoutMs: number): Promise<Answer> {
    const cookie = [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ');
    return new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: this.port,
          method,
          path,
          agent: this.agent,
          headers: {
            ...(raw !== undefined && { 'content-length': String(Buffer.byteLength(raw)) }),
            ...(cookie && { cookie }),
            ...this.headers,
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const ms = Number(process.hrtime.bigint() - started) / 1e6;
            for (const line of res.headers['set-cookie'] ?? []) {
              const pair = line.split(';')[0] ?? '';
              const at = pair.indexOf('=');
              if (at <= 0) continue;
              const value = pair.slice(at + 1);
              if (value === '' || /expires=Thu, 01 Jan 1970/i.test(line)) this.jar.delete(pair.slice(0, at));
              else this.jar.set(pair.slice(0, at), value);
            }
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown;
            try {
              body = text ? JSON.parse(text) : undefined;
            } catch {
              body = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text, ms });
          });
          res.on('error', reject);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer to ${method} ${path} within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(raw);
    });
  }
}

// ---- figures --------------------------------------------------------------------------------

/** `{ "202": 10, "429 rate_limited": 40 }`: statuses (with the error code) and how often. */
export function tally(answers: Answer[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const answer of answers) {
    const key = answer.body?.error ? `${answer.status} ${answer.body.error}` : String(answer.status);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

export const wrongFor = (code: string) => (code === '000000' ? '111111' : '000000');
export const round = (ms: number, digits = 2) => Number(ms.toFixed(digits));
