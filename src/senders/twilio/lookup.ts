/**
 * A line-type gate through Twilio Lookup v2:
 * `client.lookups.v2.phoneNumbers(e164).fetch({ fields: 'line_type_intelligence' })`.
 * The core asks it before the first send to a number, caches the answer for `cacheSeconds`
 * and refuses (`block`) or only reports (`monitor`) a type that is not in `allow`.
 */
import { optionError } from '../../core/validate.js';
import { wholeNumber } from '../../core/validate.js';
import { OtpError, configError } from '../../core/errors.js';
import type { LineTypeLookup } from '../../core/types.js';
import { checkOptionNames, credentialOptions, twilioClient, type TwilioCredentials } from './client.js';
import { lookupFailure, twilioFailure } from './errors.js';
import { withTimeout } from '../../core/timeout.js';

/** The line types Twilio's Line Type Intelligence reports. */
export const TWILIO_LINE_TYPES = [
  'mobile',
  'landline',
  'fixedVoip',
  'nonFixedVoip',
  'personal',
  'tollFree',
  'premium',
  'sharedCost',
  'uan',
  'voicemail',
  'pager',
  'unknown',
] as const;
export type TwilioLineType = (typeof TWILIO_LINE_TYPES)[number];

/** The part of a `twilio` client the lookup uses; a client from `twilio(...)` fits it. */
export interface TwilioLookupClient {
  lookups: {
    v2: {
      phoneNumbers(phoneNumber: string): {
        fetch(params: { fields: string }): Promise<{ lineTypeIntelligence?: { type?: string | null } | null }>;
      };
    };
  };
}

export type TwilioLookupOptions = TwilioCredentials<TwilioLookupClient> & {
  /** The line types that may receive codes. Default `['mobile']`. */
  allow?: readonly TwilioLineType[] | undefined;
  /** `'block'` refuses other types (and fails closed on a Lookup error); `'monitor'` only reports. Default `'block'`. */
  mode?: 'block' | 'monitor' | undefined;
  /** How long the core keeps an answer. Default 2,592,000 (30 days), 60..31,536,000. */
  cacheSeconds?: number | undefined;
  /** How long one lookup may take before it counts as failed. Default 5,000, 100..30,000. */
  timeoutMs?: number | undefined;
};

const knownOptions = [...credentialOptions, 'allow', 'mode', 'cacheSeconds', 'timeoutMs'];
const defaults = { allow: ['mobile'] as const, mode: 'block', cacheSeconds: 2_592_000, timeoutMs: 5_000 } as const;
const E164 = /^\+[1-9]\d{6,14}$/;

/** A `LineTypeLookup` (the `lookup` option) on Twilio Lookup v2's Line Type Intelligence. */
export function twilioLookup(options: TwilioLookupOptions): LineTypeLookup {
  const opts = checkOptionNames('twilioLookup', options, knownOptions);
  const client = twilioClient<TwilioLookupClient>('twilioLookup', opts, (c) => typeof c.lookups?.v2?.phoneNumbers === 'function');
  const allow = resolveAllow(opts.allow);
  const mode = resolveMode(opts.mode);
  const cacheSeconds = integerIn('cacheSeconds', opts.cacheSeconds ?? defaults.cacheSeconds, 60, 31_536_000);
  const timeoutMs = integerIn('timeoutMs', opts.timeoutMs ?? defaults.timeoutMs, 100, 30_000);

  return {
    mode,
    allow,
    cacheSeconds,
    async lookup(e164: string): Promise<{ lineType: string | null }> {
      if (typeof e164 !== 'string' || !E164.test(e164)) throw configError('twilioLookup: lookup() takes a number in E.164 form', 'invalid-argument');
      const ready = await client();
      const request = ready.lookups.v2.phoneNumbers(e164).fetch({ fields: 'line_type_intelligence' });
      const timedOut = () =>
        new OtpError('DELIVERY_FAILED', `Twilio Lookup did not answer within ${timeoutMs} ms`, { retryable: true, cause: { provider: 'twilio' } });
      try {
        const answer = await withTimeout(request, timeoutMs, timedOut);
        const type = answer?.lineTypeIntelligence?.type;
        return { lineType: typeof type === 'string' && type !== '' ? type : null };
      } catch (error) {
        throw error instanceof OtpError ? error : twilioFailure(error, lookupFailure);
      }
    },
  };
}

function resolveAllow(allow: unknown): readonly TwilioLineType[] {
  if (allow === undefined) return defaults.allow;
  if (!Array.isArray(allow) || allow.length === 0) {
    throw configError(`twilioLookup: option "allow" must be a non-empty array of line types (${TWILIO_LINE_TYPES.join(', ')})`, 'invalid-sender-options');
  }
  for (const type of allow) {
    if (!TWILIO_LINE_TYPES.includes(type)) {
      const near = TWILIO_LINE_TYPES.find((known) => squash(known) === squash(String(type)));
      const hint = near ? `did you mean "${near}"?` : `expected ${TWILIO_LINE_TYPES.join(', ')}`;
      throw configError(`twilioLookup: "allow" has an unknown line type ${JSON.stringify(type)}; ${hint}`, 'invalid-sender-options');
    }
  }
  return Object.freeze([...new Set(allow as TwilioLineType[])]);
}

function resolveMode(mode: unknown): 'block' | 'monitor' {
  if (mode === undefined) return defaults.mode;
  if (mode !== 'block' && mode !== 'monitor') throw optionError('twilioLookup', 'mode', '"block" or "monitor"', mode);
  return mode;
}

function integerIn(option: string, value: unknown, min: number, max: number): number {
  return wholeNumber('twilioLookup', option, value, min, max);
}

/** `tollFree`, `toll_free` and `TOLL-FREE` alike. */
function squash(name: string): string {
  return name.toLowerCase().replace(/[^a-z]/g, '');
}
