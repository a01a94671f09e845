/**
 * A voice call that reads the code: `client.calls.create({ to, from, twiml })` with inline
 * TwiML that says each digit on its own, twice, in the message's language. The TwiML holds
 * the code, so it is never logged and never part of an error.
 */
import { optionError } from '../../core/validate.js';
import { OtpError, configError } from '../../core/errors.js';
import type { VoiceMessage, VoiceSender } from '../../core/types.js';
import { checkOptionNames, credentialOptions, twilioClient, type TwilioCredentials } from './client.js';
import { callFailure, twilioFailure } from './errors.js';
import { withProvider } from '../../core/provider.js';

/** The part of a `twilio` client this sender uses; a client from `twilio(...)` fits it. */
export interface TwilioVoiceClient {
  calls: {
    create(params: { to: string; from: string; twiml: string }): Promise<unknown>;
  };
}

/** The languages a call can speak, each with its own wording. */
export type VoiceLanguage = 'en-US' | 'fr-CA';

export type TwilioVoiceOptions = TwilioCredentials<TwilioVoiceClient> & {
  /** The calling number (a Twilio number or a verified caller ID) in E.164 form. */
  from: string;
  /**
   * The Twilio `<Say>` voice: one for every call, or one per language. Defaults:
   * `Polly.Joanna` (en-US), `Polly.Chantal` (fr-CA).
   */
  voice?: string | Partial<Record<VoiceLanguage, string>> | undefined;
  /** The call's language when the message locale is neither English nor French. Default `'en-US'`. */
  language?: VoiceLanguage | undefined;
};

const knownOptions = [...credentialOptions, 'from', 'voice', 'language'];
const E164 = /^\+[1-9]\d{6,14}$/;
const VOICE_NAME = /^[A-Za-z][A-Za-z0-9._-]{0,63}$/;
/** Twilio's limit for the `Twiml` parameter. */
const MAX_TWIML_CHARACTERS = 4000;

const wording: Record<VoiceLanguage, { first(appName: string): string; again: string; defaultVoice: string }> = {
  'en-US': {
    first: (appName) => (appName === '' ? 'Your code is:' : `Your ${appName} code is:`),
    again: 'Again, your code is:',
    defaultVoice: 'Polly.Joanna',
  },
  'fr-CA': {
    first: (appName) => (appName === '' ? 'Votre code est :' : `Votre code ${appName} est :`),
    again: 'Je répète, votre code est :',
    defaultVoice: 'Polly.Chantal',
  },
};
const languages = Object.keys(wording) as VoiceLanguage[];

/** A `VoiceSender` that calls `to` from `from` and reads the code twice. */
export function twilioVoice(options: TwilioVoiceOptions): VoiceSender {
  const opts = checkOptionNames('twilioVoice', options, knownOptions);
  const client = twilioClient<TwilioVoiceClient>('twilioVoice', opts, (c) => typeof c.calls?.create === 'function');
  if (typeof opts.from !== 'string' || !E164.test(opts.from)) {
    throw optionError('twilioVoice', 'from', 'your calling number in E.164 form, e.g. "+14155550111"', opts.from);
  }
  const from = opts.from;
  const fallbackLanguage = resolveLanguage(opts.language);
  const voices = resolveVoices(opts.voice);

  return withProvider(
    {
      async send(message: VoiceMessage): Promise<void> {
        const language = languageOf(message.locale, fallbackLanguage);
        const twiml = voiceTwiml(message.code, message.appName, language, voices[language]);
        if (twiml.length > MAX_TWIML_CHARACTERS) {
          throw new OtpError('DELIVERY_FAILED', `twilioVoice: the call's TwiML is over Twilio's ${MAX_TWIML_CHARACTERS}-character limit; shorten appName`, {
            retryable: false,
          });
        }
        const ready = await client();
        try {
          await ready.calls.create({ to: message.to, from, twiml });
        } catch (error) {
          throw twilioFailure(error, callFailure);
        }
      },
    },
    'twilio',
  );
}

/** The TwiML of one call: the code read digit by digit, a pause, and the code again. */
function voiceTwiml(code: string, appName: string, language: VoiceLanguage, voice: string): string {
  const words = wording[language];
  const digits = `${[...code].join('. ')}.`;
  const say = (text: string): string => `<Say language="${language}" voice="${escapeXml(voice)}">${escapeXml(text)}</Say>`;
  return (
    '<?xml version="1.0" encoding="UTF-8"?>' +
    `<Response>${say(`${words.first(appName.trim())} ${digits}`)}<Pause length="1"/>${say(`${words.again} ${digits}`)}</Response>`
  );
}

/** `fr`, `fr-CA`, `fr-FR` → fr-CA; `en`, `en-US`, `en-GB` → en-US; anything else → `fallback`. */
function languageOf(locale: string, fallback: VoiceLanguage): VoiceLanguage {
  const primary = typeof locale === 'string' ? locale.trim().toLowerCase().split(/[-_]/)[0] : undefined;
  if (primary === 'fr') return 'fr-CA';
  if (primary === 'en') return 'en-US';
  return fallback;
}

function resolveLanguage(language: unknown): VoiceLanguage {
  if (language === undefined) return 'en-US';
  if (typeof language !== 'string' || !languages.includes(language as VoiceLanguage)) {
    throw optionError('twilioVoice', 'language', `one of ${languages.map((l) => `"${l}"`).join(', ')}`, language);
  }
  return language as VoiceLanguage;
}

function resolveVoices(voice: unknown): Record<VoiceLanguage, string> {
  const checked = (name: unknown, option: string): string => {
    if (typeof name !== 'string' || !VOICE_NAME.test(name)) {
      throw configError(`twilioVoice: option "${option}" must be a Twilio <Say> voice name such as "Polly.Joanna"`, 'invalid-sender-options');
    }
    return name;
  };
  if (voice === undefined || typeof voice === 'string') {
    const one = voice === undefined ? undefined : checked(voice, 'voice');
    return { 'en-US': one ?? wording['en-US'].defaultVoice, 'fr-CA': one ?? wording['fr-CA'].defaultVoice };
  }
  if (typeof voice !== 'object' || voice === null) {
    throw configError(
      'twilioVoice: option "voice" must be a voice name, or an object of voice names by language ({ "en-US": ..., "fr-CA": ... })',
      'invalid-sender-options',
    );
  }
  const unknown = Object.keys(voice).find((key) => !languages.includes(key as VoiceLanguage));
  if (unknown) throw configError(`twilioVoice: "voice" has no language "${unknown}"; expected ${languages.join(', ')}`, 'invalid-sender-options');
  const byLanguage = voice as Partial<Record<VoiceLanguage, unknown>>;
  return {
    'en-US': byLanguage['en-US'] === undefined ? wording['en-US'].defaultVoice : checked(byLanguage['en-US'], 'voice.en-US'),
    'fr-CA': byLanguage['fr-CA'] === undefined ? wording['fr-CA'].defaultVoice : checked(byLanguage['fr-CA'], 'voice.fr-CA'),
  };
}

/** Text safe inside an XML element or a quoted attribute; characters XML 1.0 forbids are dropped. */
function escapeXml(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '')
    .replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
