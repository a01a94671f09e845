/**
 * The sign-in link's pages: the confirmation page a GET shows (a real form, no script) and the
 * answers of its POST, in each bundled locale. Served with a CSP that allows no script and
 * only the one inline style below (by its hash), no referrer, no caching, no framing.
 */
import { createHash } from 'node:crypto';
import { escapeHtml, pickLocale } from '../send/messages.js';

export type LinkPageKind = 'confirm' | 'other_device' | 'unusable' | 'forbidden' | 'too_many_attempts';

interface PageText {
  title: string;
  body: string;
}

interface LocaleText {
  confirm: PageText & { button: string };
  other_device: PageText;
  unusable: PageText;
  forbidden: PageText;
  too_many_attempts: PageText;
}

const TEXT: ReadonlyMap<string, LocaleText> = new Map([
  [
    'en',
    {
      confirm: { title: 'Sign in to {app}', body: 'Press the button to finish signing in on this device.', button: 'Sign in' },
      other_device: {
        title: 'Type the code instead',
        body: 'This link signs in only the browser where the code was requested. Type the code from the email on the device where you asked for it.',
      },
      unusable: { title: 'This link cannot be used', body: 'It has already been used, has expired, or is not valid. Request a new code to sign in.' },
      forbidden: { title: 'Sign-in not confirmed', body: 'The sign-in must be confirmed from the page the link opens. Open the link from the email again.' },
      too_many_attempts: { title: 'Too many attempts', body: 'Too many wrong codes or links: request a new code and try again.' },
    },
  ],
  [
    'fr-ca',
    {
      confirm: { title: 'Connexion à {app}', body: 'Appuyez sur le bouton pour terminer la connexion sur cet appareil.', button: 'Se connecter' },
      other_device: {
        title: 'Entrez plutôt le code',
        body: "Ce lien ne connecte que le navigateur où le code a été demandé. Entrez le code du courriel sur l'appareil où vous l'avez demandé.",
      },
      unusable: {
        title: 'Ce lien ne peut pas être utilisé',
        body: "Il a déjà servi, il a expiré ou il n'est pas valide. Demandez un nouveau code pour vous connecter.",
      },
      forbidden: {
        title: 'Connexion non confirmée',
        body: "La connexion doit être confirmée depuis la page qu'ouvre le lien. Ouvrez de nouveau le lien du courriel.",
      },
      too_many_attempts: { title: 'Trop de tentatives', body: 'Trop de codes ou de liens erronés : demandez un nouveau code et réessayez.' },
    },
  ],
]);

const STYLE =
  'body{font-family:system-ui,sans-serif;color:#1b1f24;background:#f6f8fa;margin:0}' +
  'main{max-width:28rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:8px;border:1px solid #d0d7de}' +
  'h1{font-size:1.4rem;margin-top:0}' +
  'button{font:inherit;font-weight:600;padding:.75rem 1.5rem;border:0;border-radius:6px;background:#1f6feb;color:#fff;cursor:pointer}' +
  'button:focus-visible{outline:3px solid #0b3d91;outline-offset:2px}';

/** No script at all; the one inline style by its hash; forms post only here; never framed. */
const CSP =
  `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; ` +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The headers of every link page. */
export const LINK_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/html; charset=utf-8',
  'Cache-Control': 'no-store',
  'Referrer-Policy': 'no-referrer',
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
};

/** The locale of a page: from `Accept-Language`, else the app's default, else English. */
export function linkPageLocale(acceptLanguage: string | undefined, defaultLocale: string): string {
  const fallback = TEXT.has(defaultLocale.toLowerCase()) ? defaultLocale : 'en';
  return pickLocale(TEXT, undefined, acceptLanguage, fallback);
}

/**
 * One page. `form` (the confirmation page only) holds the token and the page's anti-forgery
 * field: the only place a token is ever written back, as hidden fields of the form that POSTs it.
 */
export function linkPage(kind: LinkPageKind, locale: string, appName: string, form?: { token: string; pageToken: string }): string {
  const text = TEXT.get(locale) ?? TEXT.get('en')!;
  const page = text[kind];
  const title = escapeHtml(page.title.replace('{app}', appName));
  const action =
    kind === 'confirm' && form !== undefined
      ? // "link" resolves to {basePath}/link from {basePath}/link?t=…: the POST carries no query string.
        `<form method="post" action="link"><input type="hidden" name="t" value="${escapeHtml(form.token)}">` +
        `<input type="hidden" name="c" value="${escapeHtml(form.pageToken)}"><button type="submit">${escapeHtml(text.confirm.button)}</button></form>`
      : '';
  return (
    `<!doctype html><html lang="${locale === 'fr-ca' ? 'fr-CA' : 'en'}"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">` +
    `<title>${title}</title><style>${STYLE}</style></head>` +
    `<body><main><h1>${title}</h1><p>${escapeHtml(page.body)}</p>${action}</main></body></html>`
  );
}
