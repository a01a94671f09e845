/**
 * The abuse suites' app: Express + express-session + blockidOtp on a loopback port, with
 * senders that count every call and keep every code, a logger that keeps every line, and a
 * keep-alive client (one cookie jar per instance) fast enough for thousands of requests.
 */
import { Agent, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after } from 'node:test';
import express from 'express';
import session from 'express-session';
import { createClient } from 'redis';
import { blockidOtp, memoryStore, redisStore, type Destinations, type EmailSender, type OtpLogger, type OtpOptions, type OtpService, type SmsSender } from '../../src/index.js';
import { serviceOf } from '../../src/core/http/adapter.js';

const SECRET = 'abuse-suite-secret-0123456789-abcdefghijkl';

export interface SenderCalls {
  channel: 'sms' | 'email';
  to: string;
  code: string;
  username: string;
}

/** Counting senders; `fail` (when set) decides per call whether and how a send fails. */
export function countingSenders(behaviour: { delayMs?: number; fail?: (call: SenderCalls) => unknown } = {}) {
  const calls: SenderCalls[] = [];
  const send = async (call: SenderCalls): Promise<void> => {
    calls.push(call);
    if (behaviour.delayMs) await new Promise((resolve) => setTimeout(resolve, behaviour.delayMs));
    const failure = behaviour.fail?.(call);
    if (failure !== undefined) throw failure;
  };
  const sms: SmsSender = { send: (m) => send({ channel: 'sms', to: m.to, code: m.code, username: m.username }) };
  const email: EmailSender = { send: (m) => send({ channel: 'email', to: m.to, code: m.code, username: m.username }) };
  return { sms, email, calls, codes: () => new Set(calls.map((c) => c.code)) };
}

/** A pino-shaped logger that keeps every line as the JSON text pino would print. */
export function captureLogger(): OtpLogger & { lines: string[] } {
  const lines: string[] = [];
  const keep = (level: string) => (details: object, message?: string) => {
    lines.push(JSON.stringify({ level, ...details, msg: message }));
  };
  return { lines, info: keep('info'), warn: keep('warn'), error: keep('error') };
}

export interface AbuseApp {
  url: string;
  port: number;
  service: OtpService;
  /** Errors Express's error handler saw (answered 500). */
  errors: Error[];
  close(): Promise<void>;
}

export interface AbuseAppOptions {
  otp: Partial<OtpOptions> & Pick<OtpOptions, 'resolveUser'>;
  /** Express's `trust proxy` setting, when the test sets one. */
  trustProxy?: unknown;
}

export async function startApp({ otp, trustProxy }: AbuseAppOptions): Promise<AbuseApp> {
  const app = express();
  if (trustProxy !== undefined) app.set('trust proxy', trustProxy);
  app.use(session({ secret: 'abuse-session-secret', resave: false, saveUninitialized: false, name: 'sid' }));
  const plugin = blockidOtp({ secret: SECRET, ...otp } as OtpOptions);
  app.use(plugin);
  const errors: Error[] = [];
  app.use((error: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
    errors.push(error);
    res.status(500).json({ error: 'internal_error', message: error.message });
  });
  const server: Server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    service: serviceOf(plugin),
    errors,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A map-backed `resolveUser` (no prototype lookups: `__proto__` is just another unknown name). */
export function directory(entries: Iterable<[string, Destinations]>): (username: string) => Destinations | null {
  const users = new Map(entries);
  return (username) => users.get(username) ?? null;
}

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  body: any;
  ms: number;
}

const agents = new Set<Agent>();

/** A keep-alive HTTP client with one cookie jar. */
export class Session {
  cookie: string | undefined;
  constructor(
    readonly port: number,
    readonly agent = new Agent({ keepAlive: true, maxSockets: 64 }),
  ) {
    agents.add(agent);
  }

  /** POSTs `raw` (already JSON text, or anything) with a JSON content type. */
  postRaw(path: string, raw: string, headers: Record<string, string> = {}): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: this.port,
          method: 'POST',
          path,
          agent: this.agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(raw),
            ...(this.cookie && { cookie: this.cookie }),
            ...headers,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const ms = Number(process.hrtime.bigint() - started) / 1e6;
            const setCookie = res.headers['set-cookie']?.[0]?.split(';')[0];
            if (setCookie) this.cookie = setCookie;
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown;
            try {
              body = text ? JSON.parse(text) : undefined;
            } catch {
              body = undefined;
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body, ms });
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(raw);
    });
  }

  post(path: string, json: unknown, headers?: Record<string, string>): Promise<Answer> {
    return this.postRaw(path, JSON.stringify(json), headers);
  }
}

export function closeAgents(): void {
  for (const agent of agents) agent.destroy();
  agents.clear();
}

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

/** Valid US numbers in distinct blocks (`+1 415 2xx ....`), one block per index. */
export function numberInBlock(block: number, line = 100): string {
  return `415${String(200 + (block % 800)).padStart(3, '0')}${String(line).padStart(4, '0')}`;
}

/** A store per backend: the memory store, and a Redis store under a prefix of its own (keys deleted at the end). */
async function storeBackends(): Promise<Array<{ name: string; make: () => OtpOptions['store']; close: () => Promise<void> }>> {
  const backends: Array<{ name: string; make: () => OtpOptions['store']; close: () => Promise<void> }> = [
    { name: 'memory', make: () => memoryStore(), close: async () => {} },
  ];
  const client = createClient({ url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', socket: { reconnectStrategy: false, connectTimeout: 2000 } });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch {
    return backends;
  }
  const prefixes: string[] = [];
  backends.push({
    name: 'redis',
    make: () => {
      const prefix = `otp-abuse-${process.pid}-${prefixes.length}-${Date.now().toString(36)}:`;
      prefixes.push(prefix);
      return redisStore({ client, prefix });
    },
    close: async () => {
      for (const prefix of prefixes) {
        for await (const keys of client.scanIterator({ MATCH: `${prefix}*`, COUNT: 500 })) {
          if (keys.length > 0) await client.del(keys);
        }
      }
      await client.quit();
    },
  });
  return backends;
}

/**
 * A suite's shared setup: one memory and one Redis backend, the apps it starts, and an
 * `after` hook that closes them all.
 */
export async function abuseSuite() {
  const backends = await storeBackends();
  const apps: AbuseApp[] = [];
  after(async () => {
    for (const app of apps) await app.close();
    closeAgents();
    for (const backend of backends) await backend.close();
  });
  return { backends, apps };
}
