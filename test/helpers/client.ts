/** A tiny HTTP client with one cookie jar per instance (every cookie, by name), over real sockets. */

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

/** Every reply any client saw, so a test can check that no code ever appeared in one. */
const seenReplies: Reply[] = [];

export class Client {
  /** name -> value, in the order the server first set them. */
  readonly jar = new Map<string, string>();

  constructor(readonly baseUrl: string) {}

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

  /** Stores one `name=value` pair; an empty value (a cookie being cleared) drops the name. */
  private keep(pair: string): void {
    const at = pair.indexOf('=');
    if (at <= 0) return;
    const name = pair.slice(0, at).trim();
    const value = pair.slice(at + 1).trim();
    if (value === '') this.jar.delete(name);
    else this.jar.set(name, value);
  }

  async request(method: string, path: string, init: { json?: unknown; raw?: string; contentType?: string; accept?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...init.headers };
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
    const response = await fetch(this.baseUrl + path, { method, headers, body, redirect: 'manual' });
    for (const setCookie of response.headers.getSetCookie()) this.keep(setCookie.split(';')[0] ?? '');
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    const reply = { status: response.status, headers: response.headers, text, body: parsed };
    seenReplies.push(reply);
    return reply;
  }

  post(path: string, json: unknown, init: { headers?: Record<string, string> } = {}) {
    return this.request('POST', path, { json, ...init });
  }

  get(path: string, accept?: string) {
    return this.request('GET', path, accept ? { accept } : {});
  }
}

/** Throws if any reply (status line, headers, body) contains one of `codes`. */
export function assertNoCodeLeaked(codes: Iterable<string>): number {
  const all = [...new Set(codes)];
  for (const reply of seenReplies) {
    const headerText = [...reply.headers].map(([name, value]) => `${name}: ${value}`).join('\n');
    for (const code of all) {
      if (reply.text.includes(code) || headerText.includes(code)) throw new Error(`a code appeared in a response (status ${reply.status})`);
    }
  }
  return seenReplies.length;
}
