/**
 * `GET|HEAD|POST {basePath}/link`: the sign-in link, safe from mail scanners.
 *
 * A GET (or HEAD) only shows a page whose button POSTs the token: it reads the session (for
 * the page's anti-forgery field) and writes nothing anywhere, so scanners and link previews
 * that fetch it change nothing. The POST is refused cross-site (`Sec-Fetch-Site`, `Origin`,
 * else the page's field), then confirms the link through the service: only the session that
 * asked signs in.
 */
import { checkPageToken, LINK_TOKEN_LENGTH, pageToken, parseLinkToken } from './token.js';
import { LINK_PAGE_HEADERS, linkPage, linkPageLocale, type LinkPageKind } from './page.js';
import type { HttpExchange, HttpReply, SessionPort } from '../http/handler.js';
import type { OtpService } from '../service.js';
import type { OtpSessionFlag } from '../types.js';

/** The username the session last asked a code for, kept at send time for its link's POST. */
export const SESSION_LINK_USER = 'blockidOtpLinkUser';

export function createLinkRoutes(service: OtpService, sessionKeys: { flag: string; binding: string }) {
  const { secret, appName, defaultLocale, ttlSeconds, link } = service.options;
  const linkOrigin = link === undefined ? undefined : new URL(link.url).origin;

  const page = (
    exchange: HttpExchange,
    status: number,
    kind: LinkPageKind,
    form?: { token: string; pageToken: string },
    headers: Record<string, string> = {},
  ): HttpReply => ({
    status,
    html: linkPage(kind, linkPageLocale(exchange.acceptLanguage, defaultLocale), appName, form),
    headers: { ...LINK_PAGE_HEADERS, ...headers },
  });

  /** The session's binding hash, or `''` when it has none (another device). */
  const bindingOf = (session: SessionPort): string => {
    const nonce = session.read(sessionKeys.binding);
    return typeof nonce === 'string' ? service.bindingHash(nonce) : '';
  };

  /** The request's own origin: the link URL's, or the one its `Host` names (over http or https). */
  const isOwnOrigin = (origin: string, host: string | undefined): boolean => {
    if (origin === linkOrigin) return true;
    try {
      const url = new URL(origin);
      return host !== undefined && (url.protocol === 'https:' || url.protocol === 'http:') && url.host === host.toLowerCase();
    } catch {
      return false;
    }
  };

  /**
   * Cross-site or not: `Sec-Fetch-Site` and `Origin` decide when the browser sends them (a page
   * under `Referrer-Policy: no-referrer` posts `Origin: null`, which decides nothing); with
   * neither, the page's anti-forgery field must be this token's, for this session.
   */
  const sameOrigin = (exchange: HttpExchange, token: string, field: string | null, binding: string): boolean => {
    const site = exchange.header('sec-fetch-site')?.toLowerCase();
    if (site === 'cross-site' || site === 'same-site') return false;
    const origin = exchange.header('origin');
    const hasOrigin = origin !== undefined && origin !== 'null';
    if (hasOrigin && !isOwnOrigin(origin, exchange.header('host'))) return false;
    if (site === 'same-origin' || hasOrigin) return true;
    return checkPageToken(secret, field, token, binding, ttlSeconds);
  };

  const show = async (exchange: HttpExchange, session: SessionPort): Promise<HttpReply> => {
    const token = new URLSearchParams(exchange.query).get('t') ?? '';
    if (parseLinkToken(token) === null) return page(exchange, 200, 'unusable');
    return page(exchange, 200, 'confirm', { token, pageToken: pageToken(secret, token, bindingOf(session)) });
  };

  const confirm = async (exchange: HttpExchange, session: SessionPort): Promise<HttpReply> => {
    const form = new URLSearchParams(await exchange.text());
    const token = (form.get('t') ?? '').slice(0, LINK_TOKEN_LENGTH + 1);
    const binding = bindingOf(session);
    if (!sameOrigin(exchange, token, form.get('c'), binding)) return page(exchange, 403, 'forbidden');
    const asked = session.read(SESSION_LINK_USER);
    const result = await service.confirmLink(token, typeof asked === 'string' ? asked : undefined, {
      binding: binding === '' ? null : binding,
      req: exchange.req,
      ...(exchange.ip !== undefined && { ip: exchange.ip }),
    });
    switch (result.result) {
      case 'verified': {
        await session.regenerate();
        const flag: OtpSessionFlag = { verified: true, username: result.username, verifiedAt: Date.now(), method: 'link' };
        session.write(sessionKeys.flag, flag);
        return { status: 303, headers: { Location: link!.redirectTo, 'Cache-Control': 'no-store', 'Referrer-Policy': 'no-referrer' } };
      }
      case 'other_device':
        return page(exchange, 200, 'other_device');
      case 'too_many_attempts':
        return page(
          exchange,
          429,
          'too_many_attempts',
          undefined,
          result.retryAfterSeconds === undefined ? {} : { 'Retry-After': String(result.retryAfterSeconds) },
        );
      case 'unusable':
        return page(exchange, 200, 'unusable');
    }
  };

  return { show, confirm };
}

/** True for `application/x-www-form-urlencoded`, with or without parameters. */
export function isFormContentType(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() === 'application/x-www-form-urlencoded';
}
