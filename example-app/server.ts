// The blockid-otp example: a password, then a one-time code by SMS or email, then a page
// guarded by requireOtp(). Run it with `npm start`; see example-app/README.md.
import { fileURLToPath, pathToFileURL } from 'node:url';
import express, { type Express } from 'express';
import session from 'express-session';
import helmet from 'helmet';
import { Registry } from 'prom-client';
import { blockidOtp, type DevOutbox } from '../src/index.js';
import { prometheusMetrics } from '../src/metrics.js';
import { ConfigError, readConfig, type Env, type ExampleConfig } from './config.js';
import { otpSettings, securityHeaders } from './page-data.js';
import { errorHandler, notFound, pageRoutes } from './routes.js';
import { buildSenders, channelNames, type ExampleSenders } from './senders.js';
import { createStorage } from './storage.js';
import { createFactorStore, findUser, normalizeUsername, type FactorStore } from './users.js';

export { ConfigError } from './config.js';

export interface ExampleApp {
  app: Express;
  config: ExampleConfig;
  /** Settles when the app can serve (Redis or PostgreSQL connected, tables created). */
  ready: Promise<void>;
  /** The dev outbox, when a channel without a real sender uses it (never in production). */
  outbox: DevOutbox | undefined;
  /** The users' authenticator keys (sealed) and recovery code hashes, in memory. */
  factors: FactorStore;
  /** The Prometheus registry behind `GET /metrics`, when metrics are on. */
  metrics: Registry | undefined;
  /** Which sender each channel has. */
  senders: ExampleSenders;
  /** Where codes and sessions live: `memory`, `Redis` or `PostgreSQL`. */
  storage: string;
  /** Releases what the app holds (connections, the memory store's timer). */
  close(): Promise<void>;
}

/** The site icon: served at /assets/favicon.svg and at /favicon.ico. */
export const FAVICON = new URL('./public/favicon.svg', import.meta.url);

/**
 * Builds the example app from `env`. Throws `ConfigError` with a message that says what to
 * set when the environment cannot work (e.g. production without a real sender).
 */
export function createExampleApp(env: Env = process.env): ExampleApp {
  const config = readConfig(env);

  // ---- senders: real ones when configured, the dev outbox for the others (never in production)
  const senders = buildSenders(config, env);
  const { sms, email, whatsapp, voice, outbox } = senders;

  // ---- stores: PostgreSQL or Redis for codes and sessions when configured, memory otherwise
  const storage = createStorage(config);
  const factors = createFactorStore();
  const registry = config.metrics ? new Registry() : undefined;

  const otp = blockidOtp({
    ...otpSettings,
    secret: config.otpSecret,
    appName: config.appName,
    store: storage.otpStore,
    ...(sms && { sms }),
    ...(email && { email }),
    ...(whatsapp && { whatsapp }),
    ...(voice && { voice }),
    ...(config.webOtpDomain && { webOtpDomain: config.webOtpDomain }),
    ...(registry && { metrics: prometheusMetrics({ registry }) }),
    // Each email also carries a sign-in link (docs/sign-in-link.md): PUBLIC_URL is where browsers reach this app.
    link: { url: new URL(`${otpSettings.basePath}/link`, env.PUBLIC_URL ?? `http://localhost:${config.port}`).href, redirectTo: '/account' },
    // Destinations and factors only for the user who just passed the password step in this
    // session: nobody can start (or guess at) the code step for someone else.
    resolveUser: (username: string, req: express.Request) => {
      const pending = req.session?.pendingUsername;
      if (pending === undefined || normalizeUsername(username) !== pending) return null;
      const user = findUser(pending);
      if (!user) return null;
      const { totp, recoveryCodes } = factors.get(user.username);
      const phone = (sms || whatsapp || voice) && user.phone;
      return {
        ...(phone && { smsTo: phone, smsISDCode: '1' }),
        ...(email && user.email && { emailTo: user.email }),
        ...(totp && { totp }),
        recoveryCodes,
        locale: 'en',
      };
    },
    // A recovery code works once: delete its hash from the user's row.
    onRecoveryCodeUsed: (username: string, hash: string) => factors.removeRecoveryCode(username, hash),
  });

  const app = express();
  if (config.trustProxy !== undefined) app.set('trust proxy', config.trustProxy);

  app.use(helmet(securityHeaders(config.production)));
  app.use(
    '/assets',
    express.static(fileURLToPath(new URL('./public/', import.meta.url)), {
      index: false,
      maxAge: config.production ? '1h' : 0,
    }),
  );
  // Browsers ask for /favicon.ico on their own, whatever the page links: the same SVG.
  app.get('/favicon.ico', (_req, res) => {
    res
      .type('image/svg+xml')
      .set('Cache-Control', config.production ? 'public, max-age=86400' : 'no-cache')
      .sendFile(fileURLToPath(FAVICON));
  });
  if (registry) {
    // Before the session: a scrape never creates or touches a session.
    app.get('/metrics', async (_req, res, next) => {
      try {
        res
          .set('Cache-Control', 'no-store')
          .type(registry.contentType)
          .send(await registry.metrics());
      } catch (error) {
        next(error);
      }
    });
  }
  app.use(
    session({
      name: 'blockid.sid',
      secret: config.sessionSecrets,
      ...(storage.sessionStore && { store: storage.sessionStore }),
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
      channels: senders.channels,
      otpService: otp,
      factors,
      outbox: outbox && { entries: () => outbox.entries(), channelsInUse: channelNames(senders.outboxChannels) },
      devPages: !config.production,
      secureCookies: config.production,
    }),
  );
  app.use(notFound(config.appName, !config.production));
  app.use(errorHandler(config.appName, !config.production, otpSettings.basePath));

  return {
    app,
    config,
    ready: storage.ready,
    outbox,
    factors,
    metrics: registry,
    senders,
    storage: storage.kind,
    close: () => storage.close(),
  };
}

function printBanner({ config, senders, storage: kind }: ExampleApp, url: string): void {
  const real = [
    config.twilio?.sms && 'SMS via Twilio',
    config.twilio?.whatsapp && 'WhatsApp via Twilio',
    config.twilio?.voice && 'calls via Twilio',
    config.smtp && 'email via SMTP',
  ].filter(Boolean);
  const lines = [
    '',
    `  ${config.appName} (blockid-otp example) is running at ${url}`,
    '',
    '  Demo accounts (password: blockid-demo)',
    '    john.smith    codes by SMS to 4155550100 or email to john.smith@example.com',
    '    ada.lovelace  codes by email to ada@example.com',
    '',
    senders.outbox
      ? `  ${channelNames(senders.outboxChannels)} are not sent for real: read them at ${url}/dev/outbox`
      : '  Every channel has a real sender: no dev outbox.',
    `  Real senders: ${real.length > 0 ? real.join(', ') : 'none'}; codes and sessions: ${kind}.`,
    ...(config.metrics ? [`  Prometheus metrics: ${url}/metrics`] : []),
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
    console.error(`blockid-otp example cannot start: ${(error as Error).message}. Check ${config.databaseUrl ? 'DATABASE_URL' : 'REDIS_URL'}.`);
    await close().catch(() => {});
    process.exit(1);
  }
  // Outside production, listen on loopback only: the dev outbox shows every code.
  const host = config.host ?? (config.production ? undefined : '127.0.0.1');
  const onListening = () => {
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    printBanner(example, `http://localhost:${port}`);
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
