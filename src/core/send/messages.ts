/** Message templates (English and French for Canada built in) and locale choice. */
import { definedOnly } from '../defined.js';

export interface MessageContext {
  code: string;
  appName: string;
  /** "5 minutes", "30 seconds", in the message's language. */
  validFor: string;
  locale: string;
  /** The sign-in link (`link` option), emails only; HTML-escaped in `emailHtml`. Undefined when off. */
  link?: string | undefined;
}

export interface MessageTemplates {
  sms(context: MessageContext): string;
  emailSubject(context: MessageContext): string;
  emailText(context: MessageContext): string;
  /** Interpolated values are HTML-escaped by the caller; return markup. */
  emailHtml(context: MessageContext): string;
}

/** The sign-in link as a button-styled anchor (email clients keep inline styles, not classes). */
const linkButton = (link: string | undefined, lines: { linkIntro: string; linkButton: string }): string =>
  link === undefined
    ? ''
    : `<p>${lines.linkIntro}</p><p><a href="${link}" style="display:inline-block;padding:12px 20px;border-radius:6px;` +
      `background:#1f6feb;color:#ffffff;font-weight:600;text-decoration:none">${lines.linkButton}</a></p>`;

const emailHtml = (lines: { heading: string; intro: string; footer: string; linkIntro: string; linkButton: string }, code: string, link?: string): string =>
  `<!doctype html><html><body style="font-family:system-ui,sans-serif;color:#1b1f24">` +
  `<p>${lines.heading}</p><p>${lines.intro}</p>` +
  `<p style="font-size:28px;letter-spacing:6px;font-weight:700;font-family:ui-monospace,monospace">${code}</p>` +
  linkButton(link, lines) +
  `<p style="color:#57606a">${lines.footer}</p></body></html>`;

const english: MessageTemplates = {
  sms: (m) => `${m.code} is your ${m.appName} verification code. It expires in ${m.validFor}. Do not share it with anyone.`,
  emailSubject: (m) => `Your ${m.appName} verification code`,
  emailText: (m) =>
    `Your ${m.appName} verification code is ${m.code}\n\n` +
    (m.link === undefined ? '' : `Or sign in on the device where you asked for it by opening this link:\n${m.link}\n\n`) +
    `It expires in ${m.validFor}. Do not share it with anyone: ` +
    `we will never ask you for it.\nIf you did not ask for this code, you can ignore this email.\n`,
  emailHtml: (m) =>
    emailHtml(
      {
        heading: `Your ${m.appName} verification code`,
        intro: `Enter this code to continue. It expires in ${m.validFor}.`,
        footer: 'Do not share it with anyone: we will never ask you for it. If you did not ask for this code, you can ignore this email.',
        linkIntro: 'Or sign in with one click, on the device where you asked for the code:',
        linkButton: 'Sign in',
      },
      m.code,
      m.link,
    ),
};

const frenchCanada: MessageTemplates = {
  sms: (m) => `${m.code} est votre code de vérification ${m.appName}. Il expire dans ${m.validFor}. Ne le communiquez à personne.`,
  emailSubject: (m) => `Votre code de vérification ${m.appName}`,
  emailText: (m) =>
    `Votre code de vérification ${m.appName} est ${m.code}\n\n` +
    (m.link === undefined ? '' : `Ou connectez-vous sur l'appareil où vous l'avez demandé en ouvrant ce lien :\n${m.link}\n\n`) +
    `Il expire dans ${m.validFor}. Ne le communiquez à personne : ` +
    `nous ne vous le demanderons jamais.\nSi vous n'avez pas demandé ce code, ignorez ce courriel.\n`,
  emailHtml: (m) =>
    emailHtml(
      {
        heading: `Votre code de vérification ${m.appName}`,
        intro: `Entrez ce code pour continuer. Il expire dans ${m.validFor}.`,
        footer: "Ne le communiquez à personne : nous ne vous le demanderons jamais. Si vous n'avez pas demandé ce code, ignorez ce courriel.",
        linkIntro: "Ou connectez-vous en un clic, sur l'appareil où vous avez demandé le code :",
        linkButton: 'Se connecter',
      },
      m.code,
      m.link,
    ),
};

const builtInMessages: Record<string, MessageTemplates> = { en: english, 'fr-CA': frenchCanada };

/** "5 minutes" / "5 minutes" (fr) / "30 seconds" / "30 secondes". */
export function describeDuration(seconds: number, locale: string): string {
  const french = locale.toLowerCase().startsWith('fr');
  if (seconds < 60 || seconds % 60 !== 0) return `${seconds} ${french ? 'secondes' : seconds === 1 ? 'second' : 'seconds'}`;
  const minutes = seconds / 60;
  return `${minutes} ${minutes === 1 ? 'minute' : 'minutes'}`;
}

/** Merges the caller's templates over the built-ins, once at setup. */
export function buildCatalog(
  overrides: Record<string, { [Name in keyof MessageTemplates]?: MessageTemplates[Name] | undefined }>,
  defaultLocale: string,
): Map<string, MessageTemplates> {
  const catalog = new Map<string, MessageTemplates>();
  const fallback = builtInMessages[defaultLocale] ?? english;
  for (const locale of new Set([...Object.keys(builtInMessages), ...Object.keys(overrides)])) {
    catalog.set(locale.toLowerCase(), { ...(builtInMessages[locale] ?? fallback), ...definedOnly(overrides[locale] ?? {}) });
  }
  return catalog;
}

/**
 * The best locale in `catalog` for an explicit locale (from `resolveUser`) or an
 * `Accept-Language` header; exact tags first, then the language alone (`fr` → `fr-CA`).
 */
export function pickLocale(
  catalog: ReadonlyMap<string, unknown>,
  preferred: string | undefined,
  acceptLanguage: string | undefined,
  defaultLocale: string,
): string {
  const wanted = preferred ? [preferred] : parseAcceptLanguage(acceptLanguage);
  for (const tag of wanted) {
    const lower = tag.toLowerCase();
    if (catalog.has(lower)) return lower;
    const language = lower.split('-')[0];
    const sameLanguage = [...catalog.keys()].find((key) => key.split('-')[0] === language);
    if (sameLanguage) return sameLanguage;
  }
  return defaultLocale.toLowerCase();
}

function parseAcceptLanguage(header: string | undefined): string[] {
  if (!header) return [];
  return header
    .split(',')
    .slice(0, 20)
    .map((part) => {
      const [tag = '', ...params] = part.trim().split(';');
      const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
      return { tag: tag.trim(), q: q ? Number(q.slice(2)) || 0 : 1 };
    })
    .filter((entry) => entry.tag !== '' && entry.tag !== '*' && entry.q > 0)
    .sort((a, b) => b.q - a.q)
    .map((entry) => entry.tag);
}

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}
