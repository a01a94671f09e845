/** Turns an issued code and a target into the message its channel's sender gets. */
import { OtpError } from '../errors.js';
import { buildCatalog, describeDuration, escapeHtml, pickLocale } from './messages.js';
import type { ResolvedOptions } from '../options.js';
import type { Target } from './targets.js';
import type { Channel } from '../types.js';
import type { Outgoing } from './delivery.js';
import { providerOf } from '../provider.js';

export type Composer = ReturnType<typeof createComposer>;

export function createComposer(config: ResolvedOptions) {
  const catalog = buildCatalog(config.messages, config.defaultLocale);
  const senders = { sms: config.sms, email: config.email, whatsapp: config.whatsapp, voice: config.voice };
  const missing = (channel: Channel) =>
    new OtpError('CHANNEL_NOT_CONFIGURED', `The ${channel} channel was asked for, but no "${channel}" sender is configured.`);

  return {
    senders,
    locale: (preferred: string | undefined, acceptLanguage: string | undefined) => pickLocale(catalog, preferred, acceptLanguage, config.defaultLocale),

    /** The message for `target` on `channel` (a fallback may send a phone target on another phone channel). */
    compose(code: string, username: string, target: Target, locale: string, channel: Channel = target.channel, link?: string): Outgoing {
      const templates = catalog.get(locale) ?? catalog.get('en');
      if (templates === undefined) throw new Error('blockid-otp: no message templates');
      const context = { code, appName: config.appName, validFor: describeDuration(config.ttlSeconds, locale), locale };
      const about = { to: target.to, code, username };
      switch (channel) {
        case 'sms': {
          const sender = senders.sms;
          if (sender === undefined) throw missing(channel);
          const webOtp = config.webOtpDomain === undefined ? '' : `\n\n@${config.webOtpDomain} #${code}`;
          const message = { to: target.to, body: templates.sms(context) + webOtp, code, username };
          return { channel, message: about, provider: providerOf(sender), send: () => sender.send(message) };
        }
        case 'whatsapp': {
          const sender = senders.whatsapp;
          if (sender === undefined) throw missing(channel);
          const message = { to: target.to, code, username, locale };
          return { channel, message: about, provider: providerOf(sender), send: () => sender.send(message) };
        }
        case 'voice': {
          const sender = senders.voice;
          if (sender === undefined) throw missing(channel);
          const message = { to: target.to, code, username, locale, appName: config.appName };
          return { channel, message: about, provider: providerOf(sender), send: () => sender.send(message) };
        }
        case 'email': {
          const sender = senders.email;
          if (sender === undefined) throw missing(channel);
          const message = {
            to: target.to,
            subject: templates.emailSubject(context),
            text: templates.emailText({ ...context, link }),
            html: templates.emailHtml({ ...context, appName: escapeHtml(config.appName), link: link === undefined ? undefined : escapeHtml(link) }),
            code,
            username,
          };
          const linkToken = link === undefined ? undefined : (new URL(link).searchParams.get('t') ?? undefined);
          return { channel, message: { ...about, linkToken }, provider: providerOf(sender), send: () => sender.send(message) };
        }
      }
    },
  };
}
