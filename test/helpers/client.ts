/**
 * A tiny HTTP client with one cookie jar per instance (every cookie, by name), over real
 * sockets: `fetch` by default, or node:http with a keep-alive agent (`keepAlive` or `agent`),
 * fast enough for thousands of requests. Every reply carries how long it took.
 */
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { after } from 'node:test';

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: any;
  /** From sending the request to the last byte of the reply. */
  ms: number;
}

export interface ClientOptions {
  /** Send over node:http through a new keep-alive agent with this many sockets (instead of `fetch`). */
  keepAlive?: number;
  /** Send over node:http through this agent (e.g. one keep-alive socket shared by several clients). */
  agent?: Agent;
  /** Headers every request carries (e.g. X-Forwarded-For). */
  headers?: Record<string, string>;
  /** node:http only: fail a request whose socket stays silent this long. */
  timeoutMs?: number;
}

export interface RequestInit {
  json?: unknown;
  raw?: string;
  contentType?: string;
  accept?: string;
  headers?: Record<string, string>;
}

/** Every reply any client saw, so a test can check that no code ever appeared in one. */
const seenReplies: Reply[] = [];

/** The keep-alive agents the clients made, destroyed when the file's tests end. */
const agents = new Set<Agent>();
after(() => closeAgents());

export function closeAgents(): void {
  for (const agent of agents) agent.destroy();
  agents.clear();
}

function parse(text: string): unknown {
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

export class Client {
  /** name -> value, in the order the server first set them. */
  readonly jar = new Map<string, string>();
  private readonly agent: Agent | undefined;

  constructor(
    readonly baseUrl: string,
    private readonly options: ClientOptions = {},
  ) {
    this.agent = options.agent ?? (options.keepAlive === undefined ? undefined : new Agent({ keepAlive: true, maxSockets: options.keepAlive }));
    if (this.agent && !options.agent) agents.add(this.agent);
  }

  /** The `Cookie` header this client sends (`a=1; b=2`); assign one to replay an old jar. */
  get cookie(): string | undefined {
    return this.jar.size === 0 ? undefined : [...this.jar].map(([name, value]) => `${name}=${value}`).join('; ');
  }

  set cookie(header: string | undefined) {
    this.jar.clear();
    for (const pair of header?.split(/;\s*/) ?? []) this.keep(pair);
  }

  /** The session cookie's value (express-session's signed id, or koa-session's id or data). */
  get sessionId(): string | undefined {
    return [...this.jar].find(([name]) => !name.endsWith('.sig'))?.[1];
  }

  /** A new client of `baseUrl` (default options) that presents a copy of this client's cookies. */
  at(baseUrl: string): Client {
    const client = new Client(baseUrl);
    client.cookie = this.cookie;
    return client;
  }

  /** Stores one `name=value` pair; an empty value (a cookie being cleared) drops the name. */
  private keep(pair: string): void {
    const at = pair.indexOf('=');
    if (at <= 0) return;
    const name = pair.slice(0, at).trim();
    const value = pair.slice(at + 1).trim();
    if (value === '') this.jar.delete(name);
    else this.jar.set(name, value);
  }

  /** Keeps a `Set-Cookie` line's pair; one that expired in 1970 (a cookie being cleared) drops the name. */
  private keepSetCookie(line: string): void {
    const pair = line.split(';')[0] ?? '';
    if (/expires=Thu, 01 Jan 1970/i.test(line)) this.keep(`${pair.slice(0, pair.indexOf('='))}=`);
    else this.keep(pair);
  }

  async request(method: string, path: string, init: RequestInit = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...this.options.headers, ...init.headers };
    if (this.cookie) headers.cookie = this.cookie;
    if (init.accept) headers.accept = init.accept;
    let body: string | undefined;
    if (init.json !== undefined) {
      body = JSON.stringify(init.json);
      headers['content-type'] = init.contentType ?? 'application/json';
    } else if (init.raw !== undefined) {
      body = init.raw;
      if (init.contentType) headers['content-type'] = init.contentType;
    }
    const reply = this.agent ? await this.overAgent(this.agent, method, path, headers, body) : await this.overFetch(method, path, headers, body);
    seenReplies.push(reply);
    return reply;
  }

  private async overFetch(method: string, path: string, headers: Record<string, string>, body: string | undefined): Promise<Reply> {
    const started = process.hrtime.bigint();
    const response = await fetch(this.baseUrl + path, { method, headers, body, redirect: 'manual' });
    for (const setCookie of response.headers.getSetCookie()) this.keepSetCookie(setCookie);
    const text = await response.text();
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    return { status: response.status, headers: response.headers, text, body: parse(text), ms };
  }

  private overAgent(agent: Agent, method: string, path: string, headers: Record<string, string>, raw: string | undefined): Promise<Reply> {
    const { hostname, port } = new URL(this.baseUrl);
    return new Promise((resolve, reject) => {
      const started = process.hrtime.bigint();
      const req = httpRequest(
        {
          host: hostname,
          port,
          method,
          path,
          agent,
          headers: { ...(raw !== undefined && { 'content-length': String(Buffer.byteLength(raw)) }), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            const ms = Number(process.hrtime.bigint() - started) / 1e6;
            for (const line of res.headers['set-cookie'] ?? []) this.keepSetCookie(line);
            const replyHeaders = new Headers();
            for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) replyHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({ status: res.statusCode ?? 0, headers: replyHeaders, text, body: parse(text), ms });
          });
          res.on('error', reject);
        },
      );
      const { timeoutMs } = this.options;
      if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer to ${method} ${path} within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(raw);
    });
  }

  post(path: string, json: unknown, init: { headers?: Record<string, string> } = {}) {
    return this.request('POST', path, { json, ...init });
  }

  /** POSTs `raw` (JSON text, or anything) with a JSON content type. */
  postRaw(path: string, raw: string, headers: Record<string, string> = {}) {
    return this.request('POST', path, { raw, contentType: 'application/json', headers });
  }

  get(path: string, accept?: string) {
    return this.request('GET', path, accept ? { accept } : {});
  }

  send(username: string, channel?: string, headers?: Record<string, string>) {
    return this.post('/otp/send', channel === undefined ? { username } : { username, channel }, { headers });
  }

  verify(username: string, code: string, headers?: Record<string, string>) {
    return this.post('/otp/verify', { username, code }, { headers });
  }
}

/** express-session's id inside the client's signed cookie (`sid=s%3A<id>.<signature>`). */
export function expressSessionId(client: Client): string {
  const value = decodeURIComponent(client.sessionId ?? '');
  assert.match(value, /^s:.+\..+$/, `a signed session cookie, got ${value}`);
  return value.slice(2, value.lastIndexOf('.'));
}

/** A browser-like client: a keep-alive connection of its own (4 sockets), headers it always sends, a 5 s timeout. */
export const browserClient = (baseUrl: string, headers: Record<string, string> = {}, timeoutMs = 5000) =>
  new Client(baseUrl, { keepAlive: 4, headers, timeoutMs });

const ALNUM = /[0-9A-Za-z]/;

/**
 * A check of `text` for codes: whether a code stands in it as a token of its own, not inside a
 * longer run of letters and digits, in the text as sent or with its percent-escapes decoded
 * (decoded once, for every code asked about). A six-digit code inside a session cookie's random id
 * (`sid=…-db123456…`) is chance, not a leak; `"code":"123456"`, `x-debug: 123456` and `code%3D123456` are leaks.
 */
function codeCheck(text: string): (code: string) => boolean {
  const standsAlone = (within: string, code: string) => {
    for (let at = within.indexOf(code); at !== -1; at = within.indexOf(code, at + 1)) {
      if (!ALNUM.test(within[at - 1] ?? ' ') && !ALNUM.test(within[at + code.length] ?? ' ')) return true;
    }
    return false;
  };
  let decoded: string;
  try {
    decoded = decodeURIComponent(text);
  } catch {
    decoded = text.replace(/%([0-9A-Fa-f]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
  }
  return decoded === text ? (code) => standsAlone(text, code) : (code) => standsAlone(text, code) || standsAlone(decoded, code);
}

/** Whether `code` stands in `text` as a token of its own (see {@link codeCheck}). */
export const holdsCode = (text: string, code: string): boolean => codeCheck(text)(code);

/** Throws if any reply (status line, headers, body) holds one of `codes` (see {@link codeCheck}). */
export function assertNoCodeLeaked(codes: Iterable<string>): number {
  const all = [...new Set(codes)];
  for (const reply of seenReplies) {
    const inBody = codeCheck(reply.text);
    const inHeaders = codeCheck([...reply.headers].map(([name, value]) => `${name}: ${value}`).join('\n'));
    for (const code of all) {
      if (inBody(code) || inHeaders(code)) throw new Error(`a code appeared in a response (status ${reply.status})`);
    }
  }
  return seenReplies.length;
}
