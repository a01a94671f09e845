// The example's pages on Koa: the same pages as the Express example (routes.ts), from the
// same views: sign-in (password), the code step, the guarded account page with its
// authenticator-app and recovery-code set-up, sign-out, and the dev outbox. A page request is
// a browser's: a GET that asks for HTML, or a form post; JSON requests go on to the JSON
// endpoints of koa.ts.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Context, Next } from 'koa';
import QRCode from 'qrcode';
import type { OtpService, VerifyMethod } from '../src/index.js';
import { requireOtpKoa } from '../src/koa.js';
import type { SafeHtml } from './html.js';
import { channelChoices, groupKey, newestFirst, type PageChannels } from './page-data.js';
import type { OtpSettings } from './routes.js';
import { authenticate, demoUsers, findUser, normalizeUsername, type DemoUser, type FactorStore } from './users.js';
import { accountPage, codeStepPage, layout, outboxPage, problemPage, recoveryCodesPage, signInPage, totpSetupPage, type OutboxEntryView } from './views.js';

/** How long a started authenticator set-up waits for its first code. */
const TOTP_SETUP_MS = 10 * 60 * 1000;

export interface KoaPageOptions {
  appName: string;
  otp: OtpSettings;
  channels: PageChannels;
  otpService: Pick<OtpService, 'totp' | 'recoveryCodes'>;
  factors: FactorStore;
  outbox: { entries(): OutboxEntryView[]; channelsInUse: string } | undefined;
  /** Mount /dev/outbox (never in production). */
  devPages: boolean;
}

/** The files under /assets (the stylesheet, the code step's script, the icon), read once. */
const ASSETS: Record<string, string> = {
  'app.css': 'text/css; charset=utf-8',
  'code-step.js': 'text/javascript; charset=utf-8',
  'favicon.svg': 'image/svg+xml',
};

/** What the pages keep in koa-session's session. */
interface PageSession {
  pendingUsername?: string;
  csrfToken?: string;
  blockidOtp?: { verified: true; username: string; verifiedAt: number; method?: VerifyMethod };
  /** The id of an authenticator set-up in progress (the key itself stays on the server). */
  totpSetupId?: string;
  notice?: string;
  regenerate?(): Promise<void>;
}

const sessionOf = (ctx: Context): PageSession => (ctx.session ?? {}) as PageSession;

/** A browser's page request: a GET that prefers HTML to JSON, or a form post. */
function isPageRequest(ctx: Context): boolean {
  if (ctx.method === 'GET' || ctx.method === 'HEAD') return ctx.accepts('json', 'html') === 'html';
  return ctx.method === 'POST' && ctx.is('application/x-www-form-urlencoded') === 'application/x-www-form-urlencoded';
}

async function formBody(ctx: Context): Promise<Record<string, string>> {
  let raw = '';
  for await (const chunk of ctx.req) {
    raw += chunk;
    ctx.assert(raw.length <= 4096, 413, 'The form is too large.');
  }
  return Object.fromEntries(new URLSearchParams(raw));
}

export function koaPages(options: KoaPageOptions): (ctx: Context, next: Next) => Promise<void> {
  const { appName, otp, channels, factors } = options;
  const guard = requireOtpKoa({ redirectTo: '/login' });
  /**
   * Authenticator set-ups in progress, by id: the key (in `uri`, for the QR code) must not ride
   * in koa-session's cookie, which is signed but readable. One process only, as the memory store.
   */
  const setups = new Map<string, { sealed: string; uri: string; startedAt: number }>();
  const assets = new Map<string, Promise<Buffer>>();

  const render = (ctx: Context, status: number, title: string, body: SafeHtml, scripts: string[] = []) => {
    ctx.status = status;
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'html';
    ctx.body = layout({ appName, title, body, scripts, devOutbox: options.devPages });
  };
  const redirect = (ctx: Context, to: string) => {
    ctx.status = 303;
    ctx.redirect(to);
  };
  const csrfToken = (ctx: Context): string => {
    const session = sessionOf(ctx);
    session.csrfToken ??= randomBytes(32).toString('base64url');
    if (ctx.session !== session) ctx.session = session as never;
    return session.csrfToken;
  };
  const csrfValid = (ctx: Context, form: Record<string, string>): boolean => {
    const expected = sessionOf(ctx).csrfToken;
    const given = form._csrf;
    if (typeof expected !== 'string' || typeof given !== 'string') return false;
    const a = Buffer.from(given);
    const b = Buffer.from(expected);
    return a.length === b.length && timingSafeEqual(a, b);
  };
  const expired = (ctx: Context) =>
    render(ctx, 403, 'Form expired', problemPage('This form has expired', 'For your safety, forms stop working after a while. Please try again.'));
  const verifiedUser = (ctx: Context): DemoUser | undefined => {
    const flag = sessionOf(ctx).blockidOtp;
    return flag?.verified === true ? findUser(flag.username) : undefined;
  };
  const toAccount = (ctx: Context, notice: string) => {
    sessionOf(ctx).notice = notice;
    redirect(ctx, '/account');
  };
  const pendingSetup = (ctx: Context) => {
    const id = sessionOf(ctx).totpSetupId;
    const setup = id === undefined ? undefined : setups.get(id);
    if (setup && Date.now() - setup.startedAt <= TOTP_SETUP_MS) return setup;
    if (id !== undefined) setups.delete(id);
    delete sessionOf(ctx).totpSetupId;
    return undefined;
  };
  /** Runs `page` for a verified user (behind the guard); a user who no longer exists is signed out. */
  const account =
    (page: (ctx: Context, user: DemoUser, form: Record<string, string>) => Promise<void> | void, post = false) =>
    (ctx: Context) =>
      guard(ctx, async () => {
        const form = post ? await formBody(ctx) : {};
        if (post && !csrfValid(ctx, form)) return expired(ctx);
        const user = verifiedUser(ctx);
        if (!user) {
          ctx.session = null;
          return redirect(ctx, '/login');
        }
        await page(ctx, user, form);
      });

  const renderSetup = (ctx: Context, status: number, user: DemoUser, error?: string) => {
    const setup = pendingSetup(ctx);
    if (!setup) return toAccount(ctx, 'The authenticator set-up timed out. Start it again when you are ready.');
    const secret = new URL(setup.uri).searchParams.get('secret') ?? '';
    render(
      ctx,
      status,
      'Set up an authenticator app',
      totpSetupPage({ user, appName, key: groupKey(secret), uri: setup.uri, csrfToken: csrfToken(ctx), ...(error && { error }) }),
    );
  };

  const pages: Record<string, (ctx: Context) => Promise<void> | void> = {
    'GET /': (ctx) => redirect(ctx, verifiedUser(ctx) ? '/account' : '/login'),

    'GET /login': (ctx) => {
      if (verifiedUser(ctx)) return redirect(ctx, '/account');
      const notice = 'signed-out' in ctx.query ? 'You have signed out.' : undefined;
      render(ctx, 200, 'Sign in', signInPage({ csrfToken: csrfToken(ctx), users: demoUsers, ...(notice && { notice }) }));
    },

    'POST /login': async (ctx) => {
      const form = await formBody(ctx);
      if (!csrfValid(ctx, form)) return expired(ctx);
      const user = await authenticate(form.username, form.password);
      if (!user) {
        const view = { csrfToken: csrfToken(ctx), users: demoUsers, username: normalizeUsername(form.username).slice(0, 256) };
        return render(ctx, 401, 'Sign in', signInPage({ ...view, error: 'That username and password do not match. Check them and try again.' }));
      }
      // A new session at every change of privilege (no session fixation).
      ctx.session = { pendingUsername: user.username } as never;
      await sessionOf(ctx).regenerate?.();
      redirect(ctx, '/login/code');
    },

    'GET /login/code': (ctx) => {
      const pending = sessionOf(ctx).pendingUsername;
      const user = pending ? findUser(pending) : undefined;
      if (!user) return redirect(ctx, '/login');
      const { totp, recoveryCodes } = factors.get(user.username);
      const view = {
        user,
        choices: channelChoices(user, channels),
        hasTotp: totp !== undefined,
        hasRecoveryCodes: recoveryCodes.length > 0,
        basePath: otp.basePath,
        codeLength: otp.codeLength,
        ttlSeconds: otp.ttlSeconds,
        appName,
        devOutbox: options.devPages,
      };
      render(ctx, 200, 'Enter your code', codeStepPage(view), ['/assets/code-step.js']);
    },

    'GET /account': account((ctx, user) => {
      const session = sessionOf(ctx);
      const flag = session.blockidOtp!;
      delete session.pendingUsername;
      const notice = session.notice;
      delete session.notice;
      const view = {
        user,
        verifiedAt: new Date(flag.verifiedAt),
        method: flag.method ?? 'code',
        factors: factors.get(user.username),
        csrfToken: csrfToken(ctx),
        ...(notice && { notice }),
      };
      render(ctx, 200, 'Your account', accountPage(view));
    }),

    'POST /account/totp': account(async (ctx, user) => {
      const { uri, sealed } = await options.otpService.totp.enroll(user.username, { issuer: appName, accountName: user.email ?? user.username });
      const id = randomBytes(16).toString('base64url');
      setups.set(id, { sealed, uri, startedAt: Date.now() });
      sessionOf(ctx).totpSetupId = id;
      redirect(ctx, '/account/totp');
    }, true),

    'GET /account/totp': account((ctx, user) => {
      if (sessionOf(ctx).totpSetupId === undefined) return redirect(ctx, '/account');
      renderSetup(ctx, 200, user);
    }),

    // The QR code as an image from 'self' (the CSP allows no inline script and no other origin).
    'GET /account/totp/qr.svg': account(async (ctx) => {
      const setup = pendingSetup(ctx);
      ctx.set('Cache-Control', 'no-store');
      if (!setup) return void (ctx.status = 404);
      ctx.type = 'image/svg+xml';
      ctx.body = await QRCode.toString(setup.uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    }),

    'POST /account/totp/confirm': account(async (ctx, user, form) => {
      const setup = pendingSetup(ctx);
      if (!setup) return toAccount(ctx, 'The authenticator set-up timed out. Start it again when you are ready.');
      const code = (form.code ?? '').replace(/[\s-]/g, '').slice(0, 16);
      if (!/^\d{6}$/.test(code)) return renderSetup(ctx, 422, user, 'Enter the 6-digit code your authenticator app shows.');
      if (!(await options.otpService.totp.confirm(user.username, setup.sealed, code))) {
        return renderSetup(
          ctx,
          422,
          user,
          "That code does not match. Enter the code the app shows now; if it keeps failing, check that the phone's clock is set automatically.",
        );
      }
      // Only now is the key saved, sealed, on the user's row; the server forgets the set-up.
      factors.setTotp(user.username, setup.sealed);
      setups.delete(sessionOf(ctx).totpSetupId ?? '');
      delete sessionOf(ctx).totpSetupId;
      toAccount(ctx, 'Authenticator app added. Next time you sign in, use the code it shows.');
    }, true),

    'POST /account/totp/remove': account((ctx, user) => {
      factors.removeTotp(user.username);
      toAccount(ctx, 'Authenticator app removed.');
    }, true),

    'POST /account/recovery-codes': account(async (ctx, user) => {
      const { codes, hashes } = await options.otpService.recoveryCodes.generate();
      // Only the hashes are kept; the codes are on this one page and nowhere else.
      factors.setRecoveryCodes(user.username, hashes);
      render(ctx, 200, 'Your recovery codes', recoveryCodesPage({ user, appName, codes }));
    }, true),

    'POST /logout': async (ctx) => {
      if (!sessionOf(ctx).csrfToken) return redirect(ctx, '/login'); // no session: nothing to end
      if (!csrfValid(ctx, await formBody(ctx))) return expired(ctx);
      ctx.session = null;
      redirect(ctx, '/login?signed-out');
    },

    ...(options.devPages && {
      'GET /dev/outbox': (ctx: Context) =>
        render(ctx, 200, 'Dev outbox', outboxPage(newestFirst(options.outbox?.entries() ?? []), options.outbox?.channelsInUse ?? '')),
    }),
  };

  /** A static file of public/, for any client (scripts and stylesheets are not page requests). */
  const asset = async (ctx: Context, name: string): Promise<boolean> => {
    const type = ASSETS[name];
    if (type === undefined) return false;
    if (!assets.has(name)) assets.set(name, readFile(new URL(`./public/${name}`, import.meta.url)));
    ctx.type = type;
    ctx.set('Cache-Control', 'no-cache');
    ctx.body = await assets.get(name)!;
    return true;
  };

  return async (ctx, next) => {
    if (ctx.method === 'GET' || ctx.method === 'HEAD') {
      // Browsers ask for /favicon.ico on their own, whatever the page links: the same SVG.
      if (ctx.path === '/favicon.ico' && (await asset(ctx, 'favicon.svg'))) return;
      if (ctx.path.startsWith('/assets/') && (await asset(ctx, ctx.path.slice('/assets/'.length)))) return;
    }
    const page = pages[`${ctx.method === 'HEAD' ? 'GET' : ctx.method} ${ctx.path}`];
    // The sign-in form, the code step and the set-up page exist only as pages.
    const pageOnly = ['GET /login', 'GET /login/code', 'GET /account/totp', 'GET /account/totp/qr.svg'].includes(`${ctx.method} ${ctx.path}`);
    if (page && (pageOnly || isPageRequest(ctx))) return void (await page(ctx));
    await next();
    if (ctx.status === 404 && ctx.body === undefined && isPageRequest(ctx)) {
      render(ctx, 404, 'Not found', problemPage('Page not found', 'There is nothing at this address.', { href: '/', text: 'Go to the start' }));
    }
  };
}
