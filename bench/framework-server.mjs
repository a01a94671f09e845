/**
 * One benchmark server on fetch (served by @hono/node-server), Hono, Fastify or Express, run as its own
 * child process by bench/frameworks.mjs. Configured by BENCH_SERVER (JSON: { framework, kind,
 * distDir, workHmacs }); reports { port } over IPC when listening and exits on 'stop'.
 *
 * Kinds:
 * - `otp`       the framework with its blockid-otp adapter (cookie session, memory store):
 *               the endpoints, and GET /data guarded by the adapter's requireOtp.
 * - `baseline`  the same framework without blockid-otp: GET /data and POST /write (parses the
 *               JSON body, answers 202), each framework's own plain routes; each answers JSON
 *               and writes one cookie, as a route of an app with a session does. POST /work is
 *               /write plus a fixed amount of CPU work (`burn()`), the same on every framework:
 *               the yardstick for what "CPU above the baseline" reads for identical work.
 *               Express also has POST /write-lean: /write reading the body and answering as
 *               the Express adapter does (no express.json(), no res.json()).
 *
 * Bench-only routes under /__bench read what the capture sender saw (as in bench/server.mjs).
 */
import { createHmac } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * The package's entries the servers load, built from src/.
 *
 * @typedef {{ index: typeof import('../src/index.js'), fetch: typeof import('../src/fetch.js'), hono: typeof import('../src/hono.js'), fastify: typeof import('../src/fastify.js') }} Entries
 */

/** @type {{ framework: string, kind: string, distDir: string, workHmacs?: number }} set by bench/frameworks.mjs */
const config = JSON.parse(process.env.BENCH_SERVER ?? '{}');
const { framework, kind, distDir, workHmacs = 0 } = config;
const OTP_SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
/**
 * @template {keyof Entries} N
 * @param {N} name
 * @returns {Promise<Entries[N]>}
 */
const load = (name) => import(pathToFileURL(path.join(distDir, `${name}.js`)).href);

/**
 * Valid US numbers and one address per user, as bench/server.mjs makes them.
 *
 * @param {string} username
 */
function destinationsFor(username) {
  let n = 0;
  for (let i = 0; i < username.length; i++) n = (n * 31 + username.charCodeAt(i)) % 10_000;
  return { smsTo: `415555${String(n).padStart(4, '0')}`, smsISDCode: '1', emailTo: `${username}@example.com` };
}

/** @type {Map<string, string>} */
const codes = new Map();
const capture = {
  /** @param {import('../src/index.js').SmsMessage | import('../src/index.js').EmailMessage} message */
  async send(message) {
    if (!message.username.startsWith('s-')) codes.set(message.username, message.code);
  },
};
const high = { points: 1_000_000, windowSeconds: 3600 };
/**
 * The limits of bench/server.mjs: no quota or lock is reached during a run.
 *
 * @param {Entries['fetch']} fetchEntry
 */
const otpOptions = (fetchEntry) => ({
  secret: OTP_SECRET,
  resolveUser: (/** @type {string} */ username) => destinationsFor(username),
  sms: capture,
  email: capture,
  session: fetchEntry.cookieSession({ secure: false }),
  ttlSeconds: 600,
  maxAttempts: 10,
  limits: {
    sendsPerUsername: high,
    sendsPerDestination: high,
    sendsPerIp: high,
    smsPerPrefix: high,
    smsPerHour: 0,
    smsPerDay: 0,
    failedVerifications: 91,
    lockSeconds: 900,
    maxConsecutiveFailures: 100,
  },
});

/**
 * What a /__bench route answers; undefined for any other path.
 *
 * @param {string} pathname
 * @param {URLSearchParams} query
 */
const benchJson = (pathname, query) => {
  if (pathname === '/__bench/code') return { code: codes.get(query.get('u') ?? '') ?? null };
  if (pathname === '/__bench/codes') return { count: codes.size, codes: Object.fromEntries(codes) };
  return undefined;
};
const data = { data: 'account', ok: true };
/** The one cookie a baseline route writes: a value as long as a sealed session's, and its attributes. */
const COOKIE_NAME = 'app-session';
const COOKIE_VALUE = `v1.${'x'.repeat(180)}`;
const SET_COOKIE = `${COOKIE_NAME}=${COOKIE_VALUE}; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax`;
const accepted = { status: 'sent', expiresIn: 600, resendIn: 30 };
/**
 * The fixed work of POST /work: `workHmacs` keyed hashes of the body, synchronous, the same on every framework.
 *
 * @param {unknown} body
 */
function burn(body) {
  let digest = JSON.stringify(body);
  for (let i = 0; i < workHmacs; i++) digest = createHmac('sha256', OTP_SECRET).update(digest).digest('hex');
  return digest;
}

async function fetchServer() {
  const { createAdaptorServer } = await import('@hono/node-server');
  const fetchEntry = await load('fetch');
  const otp = kind === 'otp' ? fetchEntry.createOtpHandler(otpOptions(fetchEntry)) : undefined;
  const server = createAdaptorServer({
    fetch: async (request, env) => {
      const url = new URL(request.url);
      const bench = benchJson(url.pathname, url.searchParams);
      if (bench !== undefined) return Response.json(bench);
      if (otp !== undefined) {
        const answer = await otp.handle(request, { ip: env.incoming.socket.remoteAddress });
        if (answer !== null) return answer;
        if (url.pathname === '/data') return (await otp.requireOtp(request)) ?? Response.json(data);
      } else if (url.pathname === '/data') {
        return Response.json(data, { headers: { 'set-cookie': SET_COOKIE } });
      } else if ((url.pathname === '/write' || url.pathname === '/work') && request.method === 'POST') {
        const body = await request.json();
        if (url.pathname === '/work') burn(body);
        return Response.json(accepted, { status: 202, headers: { 'set-cookie': SET_COOKIE } });
      }
      return Response.json({ error: 'not_found' }, { status: 404 });
    },
  });
  // A node:http server: createAdaptorServer's default createServer.
  return /** @type {import('node:http').Server} */ (server);
}

async function honoServer() {
  const { createAdaptorServer } = await import('@hono/node-server');
  const { Hono } = await import('hono');
  const app = new Hono();
  app.get('/__bench/*', (c) => c.json(benchJson(c.req.path, new URL(c.req.url).searchParams) ?? {}));
  if (kind === 'otp') {
    const { blockidOtpHono, requireOtpHono } = await load('hono');
    app.use(blockidOtpHono(otpOptions(await load('fetch'))));
    app.get('/data', requireOtpHono(), (c) => c.json(data));
  } else {
    const { setCookie } = await import('hono/cookie');
    const written = { maxAge: 86400, path: '/', httpOnly: true, sameSite: /** @type {const} */ ('Lax') };
    app.get('/data', (c) => {
      setCookie(c, COOKIE_NAME, COOKIE_VALUE, written);
      return c.json(data);
    });
    app.post('/write', async (c) => {
      await c.req.json();
      setCookie(c, COOKIE_NAME, COOKIE_VALUE, written);
      return c.json(accepted, 202);
    });
    app.post('/work', async (c) => {
      burn(await c.req.json());
      setCookie(c, COOKIE_NAME, COOKIE_VALUE, written);
      return c.json(accepted, 202);
    });
  }
  return /** @type {import('node:http').Server} */ (createAdaptorServer({ fetch: app.fetch })); // node:http, as above
}

async function fastifyServer() {
  const { default: Fastify } = await import('fastify');
  const app = Fastify();
  app.get('/__bench/*', async (request) => benchJson(request.url.split('?')[0] ?? '', new URL(request.url, 'http://x').searchParams) ?? {});
  if (kind === 'otp') {
    const { blockidOtpFastify, requireOtpFastify } = await load('fastify');
    await app.register(blockidOtpFastify, otpOptions(await load('fetch')));
    app.get('/data', { preHandler: requireOtpFastify() }, async () => data);
  } else {
    app.get('/data', async (_request, reply) => reply.header('set-cookie', SET_COOKIE).send(data));
    app.post('/write', async (_request, reply) => reply.code(202).header('set-cookie', SET_COOKIE).send(accepted));
    app.post('/work', async (request, reply) => {
      burn(request.body);
      return reply.code(202).header('set-cookie', SET_COOKIE).send(accepted);
    });
  }
  await app.ready();
  return app.server;
}

/** Express with the same cookie session, so its OTP work is the yardstick for the other adapters'. */
async function expressServer() {
  const { default: express } = await import('express');
  const { createServer } = await import('node:http');
  const app = express();
  app.use((req, res, next) => (req.path.startsWith('/__bench/') ? res.json(benchJson(req.path, new URL(req.url, 'http://x').searchParams) ?? {}) : next()));
  if (kind === 'otp') {
    const { blockidOtp, requireOtp } = await load('index');
    app.use(blockidOtp(otpOptions(await load('fetch'))));
    app.get('/data', requireOtp(), (_req, res) => res.json(data));
  } else {
    app.get('/data', (_req, res) => res.setHeader('set-cookie', SET_COOKIE).json(data));
    app.post('/write', express.json(), (_req, res) => res.status(202).setHeader('set-cookie', SET_COOKIE).json(accepted));
    // What the adapter does instead of express.json() and res.json(): reads the body itself, answers with res.end().
    app.post('/write-lean', (req, res) => {
      /** @type {Buffer[]} */
      const chunks = [];
      req.on('data', (chunk) => chunks.push(chunk));
      req.on('end', () => {
        JSON.parse(Buffer.concat(chunks).toString('utf8'));
        const text = JSON.stringify(accepted);
        res.statusCode = 202;
        res.setHeader('set-cookie', SET_COOKIE);
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.setHeader('Content-Length', Buffer.byteLength(text));
        res.end(text);
      });
    });
    app.post('/work', express.json(), (req, res) => {
      burn(req.body);
      res.status(202).setHeader('set-cookie', SET_COOKIE).json(accepted);
    });
  }
  return createServer(app);
}

/** @type {Record<string, () => Promise<import('node:http').Server>>} */
const makers = { fetch: fetchServer, hono: honoServer, fastify: fastifyServer, express: expressServer };
if (makers[framework] === undefined || (kind !== 'otp' && kind !== 'baseline')) {
  throw new Error(`bench/framework-server.mjs: unknown framework ${String(framework)} or kind ${String(kind)}`);
}
const server = await makers[framework]();
server.listen(0, '127.0.0.1', () => process.send?.({ type: 'ready', port: /** @type {import('node:net').AddressInfo} */ (server.address()).port }));

function stop() {
  server.closeAllConnections?.();
  server.close();
  process.exit(0);
}
process.on('message', (message) => {
  if (message === 'stop') stop();
});
process.on('disconnect', stop);
process.on('SIGTERM', stop);
