// The example's pages: sign-in (password), the code step, the guarded account page,
// sign-out, and the dev outbox. The OTP endpoints themselves come from blockidOtp().
import { randomBytes, timingSafeEqual } from 'node:crypto';
import express, { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import { requireOtp, type OtpSessionFlag } from '../src/index.js';
import type { SafeHtml } from './html.js';
import { authenticate, demoUsers, findUser, normalizeUsername, type DemoUser } from './users.js';
import {
  accountPage,
  codeStepPage,
  layout,
  outboxPage,
  problemPage,
  signInPage,
  type ChannelChoice,
  type OutboxEntryView,
} from './views.js';

declare module 'express-session' {
  interface SessionData {
    /** Set by the password step; the only user the code step may send to. */
    pendingUsername?: string;
    /** Synchronizer token for the sign-in and sign-out forms. */
    csrfToken?: string;
    /** Written by blockid-otp after a successful verify. */
    blockidOtp?: OtpSessionFlag;
  }
}

export const SESSION_COOKIE = 'blockid.sid';

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
  channels: { sms: boolean; email: boolean };
  outbox: { entries(): OutboxEntryView[]; channelsInUse: string[] } | undefined;
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

function maskPhone(phone: string): { detail: string; spoken: string } {
  const last4 = phone.replace(/\D/g, '').slice(-4);
  return { detail: `(•••) •••-${last4}`, spoken: `the phone number ending in ${last4}` };
}

function maskEmail(email: string): { detail: string; spoken: string } {
  const at = email.lastIndexOf('@');
  const first = email.slice(0, 1);
  const domain = email.slice(at + 1);
  return { detail: `${first}•••@${domain}`, spoken: `the ${domain} address starting with ${first}` };
}

function channelChoices(user: DemoUser, channels: PageOptions['channels']): ChannelChoice[] {
  const phone = channels.sms && user.phone ? maskPhone(user.phone) : undefined;
  const email = channels.email && user.email ? maskEmail(user.email) : undefined;
  const choices: ChannelChoice[] = [];
  if (phone) choices.push({ channel: 'sms', label: 'Send by SMS', detail: `Text message to ${phone.detail}`, spoken: phone.spoken });
  if (email) choices.push({ channel: 'email', label: 'Send by email', detail: `Email to ${email.detail}`, spoken: email.spoken });
  if (phone && email) {
    choices.push({
      channel: 'both',
      label: 'Send by SMS and email',
      detail: 'The same code to your phone and your inbox',
      spoken: `${phone.spoken} and ${email.spoken}`,
    });
  }
  return choices;
}

/** Newest first; entries of the same millisecond keep the order they were sent in, reversed. */
function newestFirst(entries: OutboxEntryView[]): OutboxEntryView[] {
  return entries
    .map((entry, index) => ({ entry, index }))
    .sort((a, b) => b.entry.at.getTime() - a.entry.at.getTime() || b.index - a.index)
    .map(({ entry }) => entry);
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
    render(
      res,
      200,
      'Enter your code',
      codeStepPage({
        user,
        choices: channelChoices(user, channels),
        basePath: otp.basePath,
        codeLength: otp.codeLength,
        ttlSeconds: otp.ttlSeconds,
        devOutbox: options.devPages,
      }),
      ['/assets/code-step.js'],
    );
  });

  router.get('/account', requireOtp({ redirectTo: '/login' }), (req, res, next) => {
    const user = verifiedUser(req);
    const flag = req.session.blockidOtp;
    if (!user || !flag) {
      return req.session.destroy((error: unknown) => (error ? next(error) : res.redirect(303, '/login')));
    }
    delete req.session.pendingUsername;
    render(res, 200, 'Your account', accountPage({ user, verifiedAt: new Date(flag.verifiedAt), csrfToken: csrfToken(req) }));
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
      render(res, 200, 'Dev outbox', outboxPage(entries, options.outbox?.channelsInUse ?? []));
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
      .send(layout({ appName, title: 'Not found', devOutbox: devPages, body: problemPage('Page not found', 'There is nothing at this address.', { href: '/', text: 'Go to the start' }) }));
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
      .send(layout({ appName, title: 'Error', devOutbox: devPages, body: problemPage('Something went wrong', 'We could not finish that. Try again in a moment.') }));
  };
}
