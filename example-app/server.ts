// The blockid-otp example: a password, then a one-time code by SMS or email, then a page
// guarded by requireOtp(). Run it with `npm start`; see example-app/README.md.
import { fileURLToPath, pathToFileURL } from 'node:url';
import express, { type Express } from 'express';
import session from 'express-session';
import helmet from 'helmet';
import { RedisStore } from 'connect-redis';
import { createClient } from 'redis';
import {
  blockidOtp,
  devOutbox,
  memoryStore,
  nodemailerEmail,
  redisStore,
  twilioSms,
  type DevOutbox,
  type EmailSender,
  type SmsSender,
} from '../src/index.js';
import { ConfigError, readConfig, type Env, type ExampleConfig } from './config.js';
import { errorHandler, notFound, pageRoutes, type OtpSettings } from './routes.js';
import { findUser, normalizeUsername } from './users.js';

export { ConfigError } from './config.js';

export interface ExampleApp {
  app: Express;
  config: ExampleConfig;
  /** Settles when the app can serve (Redis connected, when REDIS_URL is set). */
  ready: Promise<void>;
  /** The dev outbox, when one channel or both use it (never in production). */
  outbox: DevOutbox | undefined;
  /** Releases what the app holds (the Redis connection, the memory store's timer). */
  close(): Promise<void>;
}

const otpSettings: OtpSettings = {
  basePath: '/otp',
  codeLength: 6,
  ttlSeconds: 300,
  maxAttempts: 5,
  resendCooldownSeconds: 30,
};

/**
 * Builds the example app from `env`. Throws `ConfigError` with a message that says what to
 * set when the environment cannot work (e.g. production without a real sender).
 */
export function createExampleApp(env: Env = process.env): ExampleApp {
  const config = readConfig(env);

  // ---- senders: real ones when configured, the dev outbox otherwise (never in production)
  const outbox = !config.twilio || !config.smtp ? (config.production ? undefined : devOutbox({ env })) : undefined;
  const sms: SmsSender | undefined = config.twilio ? twilioSms(config.twilio) : outbox?.sms;
  const email: EmailSender | undefined = config.smtp ? nodemailerEmail(config.smtp) : outbox?.email;
  const outboxChannels = [!config.twilio && outbox ? 'SMS' : '', !config.smtp && outbox ? 'email' : ''].filter(Boolean);

  // ---- stores: Redis for codes and sessions when REDIS_URL is set, memory otherwise
  const redis = config.redisUrl ? createClient({ url: config.redisUrl }) : undefined;
  let lastRedisError = '';
  redis?.on('error', (error: Error) => {
    if (error.message !== lastRedisError) console.error(`[example-app] Redis (${redactUrl(config.redisUrl ?? '')}): ${error.message}`);
    lastRedisError = error.message;
  });
  redis?.on('ready', () => {
    lastRedisError = '';
  });
  const ready = redis ? connectWithin(redis, config.redisUrl ?? '', 10_000) : Promise.resolve();
  ready.catch(() => {}); // callers await `ready` themselves
  const otpStore = redis ? redisStore({ client: redis, prefix: `${config.redisPrefix}otp:` }) : memoryStore();
  const sessionStore = redis ? new RedisStore({ client: redis, prefix: `${config.redisPrefix}sess:` }) : undefined;

  const otp = blockidOtp({
    ...otpSettings,
    secret: config.otpSecret,
    appName: config.appName,
    store: otpStore,
    ...(sms && { sms }),
    ...(email && { email }),
    ...(config.webOtpDomain && { webOtpDomain: config.webOtpDomain }),
    // Destinations only for the user who just passed the password step in this session:
    // nobody can start the code step for someone else.
    resolveUser: (username: string, req: express.Request) => {
      const pending = req.session?.pendingUsername;
      if (pending === undefined || normalizeUsername(username) !== pending) return null;
      const user = findUser(pending);
      if (!user) return null;
      return {
        ...(sms && user.phone && { smsTo: user.phone, smsISDCode: '1' }),
        ...(email && user.email && { emailTo: user.email }),
        locale: 'en',
      };
    },
  });

  const app = express();
  if (config.trustProxy !== undefined) app.set('trust proxy', config.trustProxy);

  app.use(
    helmet({
      contentSecurityPolicy: {
        directives: {
          'default-src': ["'self'"],
          'script-src': ["'self'"],
          'style-src': ["'self'"],
          'img-src': ["'self'", 'data:'],
          'connect-src': ["'self'"],
          'form-action': ["'self'"],
          'frame-ancestors': ["'none'"],
          // Over plain http (local development) an upgrade would break the page.
          'upgrade-insecure-requests': config.production ? [] : null,
        },
      },
      strictTransportSecurity: config.production,
    }),
  );
  app.use(
    '/assets',
    express.static(fileURLToPath(new URL('./public/', import.meta.url)), {
      index: false,
      maxAge: config.production ? '1h' : 0,
    }),
  );
  app.use(
    session({
      name: 'blockid.sid',
      secret: config.sessionSecrets,
      ...(sessionStore && { store: sessionStore }),
      resave: false,
      saveUninitialized: false,
      cookie: {
        httpOnly: true,
        sameSite: 'lax',
        secure: config.production,
        maxAge: 8 * 60 * 60 * 1000,
      },
    }),
  );
  app.use(otp);
  app.use(
    pageRoutes({
      appName: config.appName,
      otp: otpSettings,
      channels: { sms: sms !== undefined, email: email !== undefined },
      outbox: outbox && { entries: () => outbox.entries(), channelsInUse: outboxChannels },
      devPages: !config.production,
      secureCookies: config.production,
    }),
  );
  app.use(notFound(config.appName, !config.production));
  app.use(errorHandler(config.appName, !config.production, otpSettings.basePath));

  return {
    app,
    config,
    ready,
    outbox,
    async close() {
      await otpStore.close?.();
      if (redis?.isReady) await redis.close();
      else if (redis?.isOpen) redis.destroy(); // still trying to connect
    },
  };
}

/** `client.connect()`, or a rejection naming the URL when Redis does not answer in time. */
function connectWithin(client: { connect(): Promise<unknown> }, url: string, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis at ${redactUrl(url)} did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
    timer.unref();
  });
  return Promise.race([client.connect().then(() => undefined), timeout]).finally(() => clearTimeout(timer));
}

/** The URL without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'REDIS_URL';
  }
}

function printBanner(config: ExampleConfig, url: string): void {
  const lines = [
    '',
    `  ${config.appName} (blockid-otp example) is running at ${url}`,
    '',
    '  Demo accounts (password: blockid-demo)',
    '    john.smith    codes by SMS to 4155550100 or email to john.smith@example.com',
    '    ada.lovelace  codes by email to ada@example.com',
    '',
    config.production
      ? '  Production mode: real senders only, no dev outbox.'
      : `  Messages that are not sent for real appear at ${url}/dev/outbox`,
    `  Codes: ${config.twilio ? 'SMS via Twilio' : 'SMS to dev outbox'}, ${config.smtp ? 'email via SMTP' : 'email to dev outbox'}; ` +
      `store: ${config.redisUrl ? 'Redis' : 'memory'}.`,
    '',
  ];
  console.log(lines.join('\n'));
}

async function main(): Promise<void> {
  let example: ExampleApp;
  try {
    example = createExampleApp(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`blockid-otp example cannot start: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
  const { app, config, ready, close } = example;
  for (const warning of config.warnings) console.warn(`[example-app] warning: ${warning}`);
  if (config.production && config.trustProxy === undefined) {
    console.warn('[example-app] warning: cookies are Secure in production; if TLS ends at a proxy, set TRUST_PROXY=1.');
  }
  try {
    await ready;
  } catch (error) {
    console.error(`blockid-otp example cannot start: ${(error as Error).message}. Check REDIS_URL.`);
    await close().catch(() => {});
    process.exit(1);
  }
  // Outside production, listen on loopback only: the dev outbox shows every code.
  const host = config.host ?? (config.production ? undefined : '127.0.0.1');
  const onListening = () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    printBanner(config, `http://localhost:${port}`);
  };
  const server = host ? app.listen(config.port, host, onListening) : app.listen(config.port, onListening);
  server.on('error', (error) => {
    console.error(`blockid-otp example cannot listen on port ${config.port}: ${error.message}`);
    process.exit(1);
  });
  const stop = () => {
    server.close(() => void close().finally(() => process.exit(0)));
    server.closeAllConnections();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  void main();
}
