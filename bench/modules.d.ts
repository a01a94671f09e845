/**
 * Types for the untyped packages the bench loads (autocannon 9, passwordless 1.1.3 and its token
 * stores): only the parts the bench uses, as their sources define them.
 */

declare module 'autocannon' {
  import type { EventEmitter } from 'node:events';

  namespace autocannon {
    /** One request of a sequence; `setupRequest` returns the request to send. */
    interface Request {
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: string;
      setupRequest?: (request: Request, context: Record<string, unknown>) => Request;
    }
    interface Options {
      url: string;
      connections?: number;
      /** Seconds. */
      duration?: number;
      headers?: Record<string, string>;
      requests?: Request[];
    }
    interface Histogram {
      average: number;
      p50: number;
      p99: number;
      total: number;
    }
    interface Result {
      /** Seconds. */
      duration: number;
      /** Milliseconds. */
      latency: Histogram;
      requests: Histogram;
      errors: number;
      timeouts: number;
      statusCodeStats?: Record<string, { count: number }>;
    }
    interface Instance extends EventEmitter {
      stop(): void;
      on(event: 'response', listener: (client: unknown, statusCode: number, resBytes: number, responseTime: number) => void): this;
    }
  }

  function autocannon(options: autocannon.Options): Promise<autocannon.Result>;
  function autocannon(options: autocannon.Options, callback: (error: Error | null, result: autocannon.Result) => void): autocannon.Instance;
  export = autocannon;
}

declare module 'passwordless-tokenstore' {
  namespace TokenStore {
    type Callback = (error?: Error | null) => void;
  }
  /** The abstract TokenStore a passwordless token store inherits from (a constructor function). */
  interface TokenStore {
    authenticate(token: string, uid: string, callback: (error: Error | null, valid: boolean, referrer: string | null | undefined) => void): void;
    /** `originUrl`: undefined unless requestToken() was given an `originField`. */
    storeOrUpdate(token: string, uid: string, msToLive: number, originUrl: string | undefined, callback: TokenStore.Callback): void;
    invalidateUser(uid: string, callback: TokenStore.Callback): void;
    clear(callback: TokenStore.Callback): void;
    length(callback: (error: Error | null, length: number) => void): void;
  }
  const TokenStore: {
    new (): TokenStore;
    prototype: TokenStore;
  };
  export = TokenStore;
}

declare module 'passwordless-memorystore' {
  import TokenStore = require('passwordless-tokenstore');
  const MemoryStore: new () => TokenStore;
  export = MemoryStore;
}

declare module 'passwordless' {
  import type { RequestHandler } from 'express';
  import TokenStore = require('passwordless-tokenstore');

  interface Passwordless {
    init(tokenStore: TokenStore): void;
    addDelivery(
      sendToken: (token: string, uid: unknown, recipient: string, callback: (error?: Error) => void) => void,
      options?: { ttl?: number; numberToken?: { max: number } },
    ): void;
    sessionSupport(): RequestHandler;
    requestToken(
      getUserId: (user: string, delivery: string | undefined, callback: (error: Error | null, uid: unknown) => void) => void,
      options?: { userField?: string },
    ): RequestHandler;
    acceptToken(options?: { allowPost?: boolean; tokenField?: string; uidField?: string }): RequestHandler;
  }
  const passwordless: Passwordless;
  export = passwordless;
}
