/**
 * `blockid-otp/fastify`: the Fastify 5 plugin, a thin translation between Fastify and the
 * framework-free core. The OTP routes live in a scope of their own whose one content-type
 * parser leaves the body unread, so the core reads it and answers with the contract's error
 * bodies (415, 413, 400), not Fastify's. The plugin itself is not encapsulated (as with
 * fastify-plugin), so `app.otp`, `request.blockidOtp` and its hook reach the whole app.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { afterResponse, isRequest, requireResolveUser, withOtpApi, type OtpApi } from './core/http/adapter.js';
import { readJsonBody, readTextBody } from './core/http/body.js';
import { cookieSession, createCookieSessions, isCookieSession, type CookieSession, type CookieSessionState } from './core/http/cookie-session.js';
import { flagSession, normalizeFlag } from './core/http/flag-session.js';
import { createGuard, type RequireOtpOptions } from './core/http/guard.js';
import { createHttpHandler, SESSION_FLAG, type HttpReply, type SessionPort } from './core/http/handler.js';
import { createOtpService } from './core/service.js';
import type { OtpOptions } from './core/options.js';
import type { OtpSessionFlag } from './core/types.js';
import { checkFastifyTrustProxy } from './core/http/fastify-trust-proxy.js';

export { cookieSession, type CookieSession, type CookieSessionOptions } from './core/http/cookie-session.js';
export type { RequireOtpOptions } from './core/http/guard.js';
export type { OtpOptions } from './core/options.js';

/** `blockidOtpFastify` options: every core option, and `session` to choose blockid-otp's own cookie. */
export interface BlockidOtpFastifyOptions extends OtpOptions {
  /**
   * `cookieSession(...)`: the session in one sealed cookie. Default: `@fastify/session`'s
   * `request.session` when that plugin is registered before this one, else `cookieSession()`.
   */
  session?: CookieSession | undefined;
}

/** `app.otp`: the programmatic API. */
export interface BlockidOtpFastifyApi extends OtpApi {
  /** A `Set-Cookie` value that ends blockid-otp's cookie session (sign-out); with @fastify/session, call `request.session.destroy()`. */
  clearSession(): string;
}

declare module 'fastify' {
  interface FastifyInstance {
    otp: BlockidOtpFastifyApi;
  }
  interface FastifyRequest {
    /** The verified session flag, or `null`: set for every request by `blockidOtpFastify`. */
    blockidOtp: OtpSessionFlag | null;
  }
}

/** The slice of @fastify/session's `request.session` that blockid-otp uses. */
interface FastifySessionLike {
  get(key: string): unknown;
  set(key: string, value: unknown): void;
  regenerate(): Promise<void>;
  sessionId: string;
}

/** What the plugin's hook found for a request: how a guard knows the plugin ran, and the session the routes use. */
interface RequestState {
  session: SessionPort | undefined;
  setCookie(): Promise<string | undefined>;
  flag: OtpSessionFlag | null;
}

const states = new WeakMap<FastifyRequest, RequestState>();
const noCookie = async (): Promise<undefined> => undefined;
/** The methods the core answers (405 with Allow for a wrong one); OPTIONS stays with the app, e.g. @fastify/cors preflights. */
const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH'] as const;

function fastifySessionPort(request: FastifyRequest): SessionPort | undefined {
  const current = () => (request as unknown as { session?: FastifySessionLike }).session;
  const session = current();
  if (session === undefined || session === null || typeof session.regenerate !== 'function' || typeof session.get !== 'function') return undefined;
  // Always `current()`: regenerate() puts a new session object on the request.
  return {
    read: (name) => current()?.get(name),
    write: (name, value) => current()?.set(name, value),
    regenerate: async () => {
      await current()?.regenerate();
    },
    id: () => {
      const id = current()?.sessionId;
      return typeof id === 'string' && id !== '' ? `sid:${id}` : undefined;
    },
  };
}

/** Every reply of the plugin and its guard goes out here. */
/** The one writer of every reply: JSON (`body`), HTML (`html`, typed by its headers) or empty. */
function write(
  reply: FastifyReply,
  answer: { status: number; headers: Record<string, string>; body?: object; html?: string; afterReply?: () => Promise<void> },
  setCookie?: string,
): FastifyReply {
  if (answer.afterReply !== undefined) afterResponse(reply.raw, answer.afterReply);
  reply.code(answer.status).headers(answer.headers);
  if (setCookie !== undefined) reply.header('set-cookie', setCookie);
  if (answer.html !== undefined) return reply.send(answer.html);
  if (answer.body === undefined) return reply.send();
  return reply.type('application/json; charset=utf-8').send(JSON.stringify(answer.body));
}

function takeOptions(options: BlockidOtpFastifyOptions): { session: CookieSession | undefined; rest: OtpOptions } {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('blockidOtpFastify: expected an options object: await app.register(blockidOtpFastify, { secret, resolveUser, email }).');
  }
  // What Fastify's register() itself reads; the plugin serves at `basePath`, from the app's root.
  const { session, prefix, logLevel, logSerializers, trustProxy, ...rest } = options as BlockidOtpFastifyOptions & Record<string, unknown>;
  if (prefix !== undefined)
    throw new TypeError(`blockidOtpFastify: the "prefix" register option does not apply to this plugin; set basePath: '${String(prefix)}/otp' instead.`);
  if (trustProxy !== undefined)
    throw new TypeError(
      "blockidOtpFastify: the client IP is Fastify's request.ip: set trustProxy on Fastify itself, e.g. Fastify({ trustProxy: '10.0.0.1' }) with your proxy's address.",
    );
  if (session !== undefined && !isCookieSession(session)) {
    throw new TypeError(
      'blockidOtpFastify: option "session" must be cookieSession(...) from "blockid-otp/fastify", or left out to use @fastify/session when it is registered first.',
    );
  }
  return { session, rest: rest as OtpOptions };
}

const plugin: FastifyPluginAsync<BlockidOtpFastifyOptions> = async (fastify: FastifyInstance, options: BlockidOtpFastifyOptions) => {
  const { session, rest } = takeOptions(options);
  const service = createOtpService(rest, 'blockidOtpFastify');
  requireResolveUser('blockidOtpFastify', rest);
  const handle = createHttpHandler(service);
  const { maxBodyBytes, basePath } = service.options;
  const useFastifySession = session === undefined && fastify.hasRequestDecorator('session');
  const cookies = useFastifySession ? undefined : createCookieSessions(session ?? cookieSession(), service.options.secret);

  fastify.decorate(
    'otp',
    withOtpApi(
      {
        clearSession: () => {
          if (cookies === undefined) throw new TypeError("blockid-otp: the session is @fastify/session's: end it with await request.session.destroy().");
          return cookies.clear();
        },
      },
      service,
    ) as BlockidOtpFastifyApi,
  );
  fastify.decorateRequest('blockidOtp', null);

  fastify.addHook('onRequest', async (request) => {
    checkFastifyTrustProxy(request);
    let state: RequestState;
    if (cookies !== undefined) {
      const loaded: CookieSessionState = await cookies.load(request.headers.cookie);
      state = { session: loaded.port, setCookie: loaded.setCookie, flag: null };
    } else {
      state = { session: fastifySessionPort(request), setCookie: noCookie, flag: null };
    }
    state.flag = normalizeFlag(state.session?.read(SESSION_FLAG));
    states.set(request, state);
    request.blockidOtp = state.flag;
  });

  if (cookies !== undefined && session === undefined) {
    // @fastify/session registered after this plugin: two sessions, and the app would think it uses its own.
    fastify.addHook('onReady', async () => {
      if (fastify.hasRequestDecorator('session')) {
        throw new TypeError(
          "blockidOtpFastify: @fastify/session is registered after blockid-otp: register it before, or pass session: cookieSession() to keep blockid-otp's own cookie session.",
        );
      }
    });
  }

  const base = basePath === '/' ? '' : basePath;
  const prefix = fastify.prefix;
  await fastify.register(async (scope) => {
    // One parser for every content type that reads nothing: the core reads and checks the body.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    scope.route({
      method: [...ALL_METHODS],
      url: `${base}/*`,
      handler: async (request, reply) => {
        const state = states.get(request);
        const url = request.url;
        const query = url.indexOf('?');
        const path = (query === -1 ? url : url.slice(0, query)).slice(prefix.length) || '/';
        const answer: HttpReply | undefined = await handle({
          method: request.method,
          path,
          contentType: request.headers['content-type'],
          acceptLanguage: request.headers['accept-language'],
          ip: request.ip,
          body: () => readJsonBody(request.raw, undefined, maxBodyBytes),
          text: () => readTextBody(request.raw, undefined, maxBodyBytes),
          header: (name) => {
            const value = request.headers[name];
            return Array.isArray(value) ? value[0] : value;
          },
          query: query === -1 ? '' : url.slice(query + 1),
          session: state?.session,
          req: request,
        });
        if (answer === undefined) return reply.callNotFound();
        return write(reply, answer, await state?.setCookie());
      },
    });
  });
};

/**
 * `await app.register(blockidOtpFastify, options)`. Marked as fastify-plugin marks a plugin
 * (skip-override, name, Fastify version), without depending on fastify-plugin.
 */
export const blockidOtpFastify = Object.assign(plugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'blockid-otp',
  [Symbol.for('plugin-meta')]: { name: 'blockid-otp', fastify: '5.x' },
});

const missingPlugin = {
  error: 'server_error',
  message:
    'requireOtpFastify() ran without blockidOtpFastify in front of it: await app.register(blockidOtpFastify, { ... }) in this app (or a parent scope) before the routes it guards.',
};

/** `requireOtpFastify(options?)` as a `preHandler`: lets verified sessions through; 401 `otp_required`, or 303 for pages when `redirectTo` is set. */
export function requireOtpFastify(options?: RequireOtpOptions): preHandlerAsyncHookHandler {
  if (isRequest(options)) throw new TypeError('requireOtpFastify was used without being called: write { preHandler: requireOtpFastify() }.');
  const decide = createGuard(options, 'requireOtpFastify');
  return async function requireOtp(request, reply) {
    const state = states.get(request);
    if (state === undefined) {
      request.log.error(missingPlugin.message);
      return write(reply, { status: 500, headers: { 'Cache-Control': 'no-store' }, body: missingPlugin });
    }
    const refusal = decide(flagSession(state.flag), request.headers.accept);
    if (refusal !== undefined) return write(reply, refusal);
  };
}
