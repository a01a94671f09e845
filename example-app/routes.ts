// The example's pages: sign-in (password), the code step, the guarded account page with
// its authenticator-app and recovery-code set-up, sign-out, and the dev outbox. The OTP
// endpoints themselves come from blockidOtp().
import { randomBytes, timingSafeEqual } from 'node:crypto';
import express, { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import QRCode from 'qrcode';
import { requireOtp, type OtpService, type OtpSessionFlag, type VerifyMethod } from '../src/index.js';
import type { SafeHtml } from './html.js';
import { authenticate, demoUsers, findUser, normalizeUsername, type DemoUser, type FactorStore } from './users.js';
import { channelChoices, groupKey, newestFirst } from './page-data.js';
import { accountPage, codeStepPage, layout, outboxPage, problemPage, recoveryCodesPage, signInPage, totpSetupPage, type OutboxEntryView } from './views.js';

declare module 'express-session' {
  interface SessionData {
    /** Set by the password step; the only user the code step may send to. */
    pendingUsername?: string;
    /** Synchronizer token for the sign-in and sign-out forms. */
    csrfToken?: string;
    /** Written by blockid-otp after a successful verify. */
    blockidOtp?: OtpSessionFlag;
    /**
     * An authenticator set-up waiting for its first code. The key is in `uri` (for the QR
     * code), so this lives only in the server-side session and only for TOTP_SETUP_MS.
     */
    totpSetup?: { sealed: string; uri: string; startedAt: number };
    /** One message for the next page ("Authenticator app added."). */
    notice?: string;
  }
}

/** How long a started authenticator set-up waits for its first code. */
const TOTP_SETUP_MS = 10 * 60 * 1000;

const SESSION_COOKIE = 'blockid.sid';

export interface OtpSettings {
  basePath: string;
  codeLength: number;
  ttlSeconds: number;
  maxAttempts: number;
  resendCooldownSeconds: number;
}

export interface PageOptions {
  appName: string;
  otp: OtpSettings;
  /** Which senders the app has. */
  channels: { sms: boolean; email: boolean; whatsapp: boolean; voice: boolean };
  /** blockid-otp's enrollment API (`otp.totp`, `otp.recoveryCodes`). */
  otpService: Pick<OtpService, 'totp' | 'recoveryCodes'>;
  /** Where the users' sealed authenticator keys and recovery code hashes live. */
  factors: FactorStore;
  outbox: { entries(): OutboxEntryView[] /** e.g. "SMS, WhatsApp and voice calls" */; channelsInUse: string } | undefined;
  /** Mount /dev/outbox (never in production). */
  devPages: boolean;
  /** Whether cookies are Secure (for clearing the session cookie the same way). */
  secureCookies: boolean;
}

// ---- helpers ----------------------------------------------------------------------------

function csrfToken(req: Request): string {
  req.session.csrfToken ??= randomBytes(32).toString('base64url');
  return req.session.csrfToken;
}

function csrfValid(req: Request): boolean {
  const expected = req.session.csrfToken;
  const given: unknown = (req.body as Record<string, unknown> | undefined)?._csrf;
  if (typeof expected !== 'string' || typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function verifiedUser(req: Request): DemoUser | undefined {
  const flag = req.session?.blockidOtp;
  return flag?.verified === true ? findUser(flag.username) : undefined;
}

function regenerate(req: Request): Promise<void> {
  return new Promise((resolve, reject) => req.session.regenerate((error: unknown) => (error ? reject(error) : resolve())));
}

// ---- routes -----------------------------------------------------------------------------

export function pageRoutes(options: PageOptions): Router {
  const { appName, otp, channels } = options;
  const router = Router();
  const form = express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 });

  const render = (res: Response, status: number, title: string, body: SafeHtml, scripts: string[] = []) => {
    res
      .status(status)
      .set('Cache-Control', 'no-store')
      .type('html')
      .send(layout({ appName, title, body, scripts, devOutbox: options.devPages }));
  };

  const expired = (res: Response) =>
    render(res, 403, 'Form expired', problemPage('This form has expired', 'For your safety, forms stop working after a while. Please try again.'));

  router.get('/', (req, res) => {
    res.redirect(303, verifiedUser(req) ? '/account' : '/login');
  });

  router.get('/login', (req, res) => {
    if (verifiedUser(req)) return res.redirect(303, '/account');
    const notice = 'signed-out' in req.query ? 'You have signed out.' : undefined;
    render(res, 200, 'Sign in', signInPage({ csrfToken: csrfToken(req), users: demoUsers, ...(notice && { notice }) }));
  });

  router.post('/login', form, async (req, res) => {
    if (!csrfValid(req)) return expired(res);
    const body = (req.body ?? {}) as Record<string, unknown>;
    const user = await authenticate(body.username, body.password);
    if (!user) {
      return render(
        res,
        401,
        'Sign in',
        signInPage({
          csrfToken: csrfToken(req),
          users: demoUsers,
          username: normalizeUsername(body.username).slice(0, 256),
          error: 'That username and password do not match. Check them and try again.',
        }),
      );
    }
    // A new session id at every change of privilege (no session fixation).
    await regenerate(req);
    req.session.pendingUsername = user.username;
    res.redirect(303, '/login/code');
  });

  router.get('/login/code', (req, res) => {
    const user = req.session.pendingUsername ? findUser(req.session.pendingUsername) : undefined;
    if (!user) return res.redirect(303, '/login');
    const { totp, recoveryCodes } = options.factors.get(user.username);
    render(
      res,
      200,
      'Enter your code',
      codeStepPage({
        user,
        choices: channelChoices(user, channels),
        hasTotp: totp !== undefined,
        hasRecoveryCodes: recoveryCodes.length > 0,
        basePath: otp.basePath,
        codeLength: otp.codeLength,
        ttlSeconds: otp.ttlSeconds,
        appName,
        devOutbox: options.devPages,
      }),
      ['/assets/code-step.js'],
    );
  });

  // ---- the account page and what it sets up (every route behind the code step) -----------

  const guard = requireOtp({ redirectTo: '/login' });

  /** The verified user, or a destroyed session and a redirect to sign-in (a user that no longer exists). */
  const accountUser = (req: Request, res: Response): DemoUser | undefined => {
    const user = verifiedUser(req);
    if (!user) req.session.destroy(() => res.redirect(303, '/login'));
    return user;
  };

  /** The set-up in progress, if it is still fresh. */
  const pendingSetup = (req: Request) => {
    const setup = req.session.totpSetup;
    if (setup && Date.now() - setup.startedAt <= TOTP_SETUP_MS) return setup;
    delete req.session.totpSetup;
    return undefined;
  };

  const toAccount = (req: Request, res: Response, notice: string) => {
    req.session.notice = notice;
    res.redirect(303, '/account');
  };

  router.get('/account', guard, (req, res) => {
    const user = accountUser(req, res);
    const flag = req.session.blockidOtp;
    if (!user || !flag) return;
    delete req.session.pendingUsername;
    const notice = req.session.notice;
    delete req.session.notice;
    const factors = options.factors.get(user.username);
    render(
      res,
      200,
      'Your account',
      accountPage({
        user,
        verifiedAt: new Date(flag.verifiedAt),
        method: (flag.method ?? 'code') as VerifyMethod,
        factors,
        csrfToken: csrfToken(req),
        ...(notice && { notice }),
      }),
    );
  });

  router.post('/account/totp', guard, form, async (req, res) => {
    if (!csrfValid(req)) return expired(res);
    const user = accountUser(req, res);
    if (!user) return;
    const { uri, sealed } = await options.otpService.totp.enroll(user.username, { issuer: appName, accountName: user.email ?? user.username });
    req.session.totpSetup = { sealed, uri, startedAt: Date.now() };
    res.redirect(303, '/account/totp');
  });

  const renderSetup = (req: Request, res: Response, status: number, user: DemoUser, error?: string) => {
    const setup = pendingSetup(req);
    if (!setup) return toAccount(req, res, 'The authenticator set-up timed out. Start it again when you are ready.');
    const secret = new URL(setup.uri).searchParams.get('secret') ?? '';
    render(
      res,
      status,
      'Set up an authenticator app',
      totpSetupPage({ user, appName, key: groupKey(secret), uri: setup.uri, csrfToken: csrfToken(req), ...(error && { error }) }),
    );
  };

  router.get('/account/totp', guard, (req, res) => {
    const user = accountUser(req, res);
    if (!user) return;
    if (!req.session.totpSetup) return res.redirect(303, '/account');
    renderSetup(req, res, 200, user);
  });

  // The QR code as an image from 'self' (the CSP allows no inline script and no other origin).
  router.get('/account/totp/qr.svg', guard, async (req, res) => {
    const setup = pendingSetup(req);
    if (!setup) return res.status(404).set('Cache-Control', 'no-store').end();
    const svg = await QRCode.toString(setup.uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    res.status(200).set('Cache-Control', 'no-store').type('image/svg+xml').send(svg);
  });

  router.post('/account/totp/confirm', guard, form, async (req, res) => {
    if (!csrfValid(req)) return expired(res);
    const user = accountUser(req, res);
    if (!user) return;
    const setup = pendingSetup(req);
    if (!setup) return toAccount(req, res, 'The authenticator set-up timed out. Start it again when you are ready.');
    const raw = (req.body as Record<string, unknown> | undefined)?.code;
    const code = typeof raw === 'string' ? raw.replace(/[\s-]/g, '').slice(0, 16) : '';
    if (!/^\d{6}$/.test(code)) return renderSetup(req, res, 422, user, 'Enter the 6-digit code your authenticator app shows.');
    if (!(await options.otpService.totp.confirm(user.username, setup.sealed, code))) {
      return renderSetup(
        req,
        res,
        422,
        user,
        "That code does not match. Enter the code the app shows now; if it keeps failing, check that the phone's clock is set automatically.",
      );
    }
    // Only now is the key saved, sealed, on the user's row; the session forgets it.
    options.factors.setTotp(user.username, setup.sealed);
    delete req.session.totpSetup;
    toAccount(req, res, 'Authenticator app added. Next time you sign in, use the code it shows.');
  });

  router.post('/account/totp/remove', guard, form, (req, res) => {
    if (!csrfValid(req)) return expired(res);
    const user = accountUser(req, res);
    if (!user) return;
    options.factors.removeTotp(user.username);
    toAccount(req, res, 'Authenticator app removed.');
  });

  router.post('/account/recovery-codes', guard, form, async (req, res) => {
    if (!csrfValid(req)) return expired(res);
    const user = accountUser(req, res);
    if (!user) return;
    const { codes, hashes } = await options.otpService.recoveryCodes.generate();
    // Only the hashes are kept; the codes are on this one page and nowhere else.
    options.factors.setRecoveryCodes(user.username, hashes);
    render(res, 200, 'Your recovery codes', recoveryCodesPage({ user, appName, codes }));
  });

  router.post('/logout', form, (req, res, next) => {
    if (!req.session.csrfToken) return res.redirect(303, '/login'); // no session: nothing to end
    if (!csrfValid(req)) return expired(res);
    req.session.destroy((error: unknown) => {
      if (error) return next(error);
      res.clearCookie(SESSION_COOKIE, { path: '/', httpOnly: true, sameSite: 'lax', secure: options.secureCookies });
      res.redirect(303, '/login?signed-out');
    });
  });

  if (options.devPages) {
    router.get('/dev/outbox', (_req, res) => {
      const entries = newestFirst(options.outbox?.entries() ?? []);
      render(res, 200, 'Dev outbox', outboxPage(entries, options.outbox?.channelsInUse ?? ''));
    });
  }

  return router;
}

/** 404 for everything no route answered. */
export function notFound(appName: string, devPages: boolean): RequestHandler {
  return (_req, res) => {
    res
      .status(404)
      .type('html')
      .send(
        layout({
          appName,
          title: 'Not found',
          devOutbox: devPages,
          body: problemPage('Page not found', 'There is nothing at this address.', { href: '/', text: 'Go to the start' }),
        }),
      );
  };
}

/** Last resort: logs the error, answers without details (JSON for API calls, a page otherwise). */
export function errorHandler(appName: string, devPages: boolean, apiBasePath: string): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    console.error('[example-app]', error);
    if (res.headersSent) return next(error);
    const status = 500;
    if (!req.accepts('html') || req.path.startsWith(`${apiBasePath}/`)) {
      return res.status(status).json({ error: 'internal_error', message: 'Something went wrong on our side. Try again.' });
    }
    res
      .status(status)
      .type('html')
      .send(
        layout({ appName, title: 'Error', devOutbox: devPages, body: problemPage('Something went wrong', 'We could not finish that. Try again in a moment.') }),
      );
  };
}
