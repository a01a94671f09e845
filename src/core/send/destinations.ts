/**
 * The BlockID SDK's destination rules: US and Canada numbers only, one plain email address.
 * Both functions return the canonical form used for sending and for quota keys.
 */
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { OtpError, configError } from '../errors.js';
import { RecentValues } from './recent.js';

/**
 * The number types refused by default, none of them a person's phone (libphonenumber's
 * `getType()` names): each can be allowed by name (`allowNumberTypes`). Fixed-line and
 * mobile numbers are always accepted.
 */
export const PHONE_NUMBER_TYPES = ['TOLL_FREE', 'PREMIUM_RATE', 'SHARED_COST', 'PERSONAL_NUMBER', 'VOIP', 'UAN', 'PAGER', 'VOICEMAIL'] as const;
export type PhoneNumberType = (typeof PHONE_NUMBER_TYPES)[number];

const TYPE_DESCRIPTIONS: Record<PhoneNumberType, string> = {
  TOLL_FREE: 'a toll-free number',
  PREMIUM_RATE: 'a premium-rate number',
  SHARED_COST: 'a shared-cost number',
  PERSONAL_NUMBER: 'a personal (follow-me) number',
  VOIP: 'a VoIP number',
  UAN: 'a universal access number',
  PAGER: 'a pager number',
  VOICEMAIL: 'a voicemail access number',
};

export interface NormalizePhoneOptions {
  /** Number types to accept although a person's phone is not one (`PHONE_NUMBER_TYPES`). */
  allowTypes?: ReadonlySet<string> | readonly string[] | undefined;
}

/**
 * Checks an option that lists number types to allow (e.g. `allowNumberTypes: ['TOLL_FREE']`)
 * and returns them as a set; `undefined` allows none. Throws a TypeError naming `optionName`
 * for anything but an array (or set) of `PHONE_NUMBER_TYPES`.
 */
export function resolveAllowedNumberTypes(value: unknown, optionName: string): ReadonlySet<PhoneNumberType> {
  if (value === undefined) return new Set();
  if (!Array.isArray(value) && !(value instanceof Set)) {
    throw configError(`${optionName} must be an array of number types (${PHONE_NUMBER_TYPES.join(', ')})`, 'invalid-options');
  }
  for (const type of value as Iterable<unknown>) {
    if (PHONE_NUMBER_TYPES.includes(type as PhoneNumberType)) continue;
    const near = PHONE_NUMBER_TYPES.find((known) => squash(known) === squash(String(type)));
    const always = type === 'MOBILE' || type === 'FIXED_LINE' || type === 'FIXED_LINE_OR_MOBILE' ? ` (${type} numbers are always accepted)` : '';
    const hint = near ? `did you mean "${near}"?` : `expected ${PHONE_NUMBER_TYPES.join(', ')}`;
    throw configError(`${optionName} has an unknown number type ${JSON.stringify(type)}${always}; ${hint}`, 'invalid-options');
  }
  return new Set(value as Iterable<PhoneNumberType>);
}

/** `toll_free`, `tollFree` and `TOLL-FREE` alike. */
function squash(name: string): string {
  return name.toLowerCase().replace(/[^a-z]/g, '');
}

/** Successful results, by allowed types and input: `resolveUser` hands back the same stored number on every send (bounded). */
const normalizedPhones = new RecentValues<string>(10_000);
/** Each allow list, checked on its first use (like any option, it is not meant to change afterwards), with its cache-key part. */
const allowLists = new WeakMap<object, { types: ReadonlySet<PhoneNumberType>; key: string }>();
const allowNone = { types: new Set<PhoneNumberType>() as ReadonlySet<PhoneNumberType>, key: '' };
const PHONE_CHARACTERS = /^\+?[0-9\s().-]+$/;

/**
 * Turns `smsTo` (any common writing) and `smsISDCode` (`"1"` or `"+1"`, the default) into
 * E.164 (`+14155550100`). Throws `INVALID_PHONE` for anything that is not a valid United
 * States or Canada number, including other +1 countries and numbers that are not a person's
 * phone (toll-free, premium-rate, VoIP, ...: `PHONE_NUMBER_TYPES`) unless
 * `options.allowTypes` names their type.
 */
export function normalizePhone(smsTo: unknown, smsISDCode: unknown = '1', options: NormalizePhoneOptions = {}): string {
  const allowed = allowListOf(options.allowTypes);
  const cacheKey = typeof smsTo === 'string' && typeof smsISDCode === 'string' ? `${allowed.key}\u0001${smsISDCode}\u0000${smsTo}` : undefined;
  const cached = cacheKey === undefined ? undefined : normalizedPhones.get(cacheKey);
  if (cached !== undefined) return cached;
  const normalized = parsePhone(smsTo, smsISDCode, allowed.types);
  if (cacheKey !== undefined) normalizedPhones.set(cacheKey, normalized);
  return normalized;
}

function allowListOf(allowTypes: NormalizePhoneOptions['allowTypes']): { types: ReadonlySet<PhoneNumberType>; key: string } {
  if (allowTypes === undefined) return allowNone;
  let checked = typeof allowTypes === 'object' && allowTypes !== null ? allowLists.get(allowTypes) : undefined;
  if (checked === undefined) {
    const types = resolveAllowedNumberTypes(allowTypes, 'allowTypes');
    checked = { types, key: [...types].sort().join(',') };
    allowLists.set(allowTypes, checked);
  }
  return checked;
}

function parsePhone(smsTo: unknown, smsISDCode: unknown, allowTypes: ReadonlySet<PhoneNumberType>): string {
  if (typeof smsISDCode !== 'string' || !/^\+?1$/.test(smsISDCode.trim())) {
    throw new OtpError('INVALID_PHONE', 'smsISDCode must be "1" or "+1": only United States and Canada numbers are supported.');
  }
  if (typeof smsTo !== 'string' || smsTo.length > 32 || !PHONE_CHARACTERS.test(smsTo.trim())) {
    throw new OtpError('INVALID_PHONE', 'smsTo must be a phone number written with digits, spaces, "+", "-", "." or parentheses.');
  }
  const phone = parsePhoneNumberFromString(smsTo.trim(), 'US');
  // With the full ("max") metadata, libphonenumber's isValid() is getType() !== undefined (the same
  // pattern matching), so one getType() answers both.
  const type = phone?.countryCallingCode === '1' ? phone.getType() : undefined;
  if (phone === undefined || type === undefined) {
    throw new OtpError('INVALID_PHONE', 'smsTo is not a valid United States or Canada phone number.');
  }
  if (phone.country !== 'US' && phone.country !== 'CA') {
    throw new OtpError('INVALID_PHONE', 'smsTo belongs to another +1 country: only United States and Canada numbers are supported.');
  }
  if (Object.hasOwn(TYPE_DESCRIPTIONS, type) && !allowTypes.has(type as PhoneNumberType)) {
    const description = TYPE_DESCRIPTIONS[type as PhoneNumberType];
    throw new OtpError('INVALID_PHONE', `smsTo is ${description} (${type}), not a person's phone: codes are not sent to it.`);
  }
  return phone.number;
}

const LOCAL_ATOM = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+";
const LOCAL_PART = new RegExp(`^${LOCAL_ATOM}(?:\\.${LOCAL_ATOM})*$`);
const DOMAIN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;

/**
 * Accepts one plain address (`local@domain.tld`) and returns it trimmed with the domain
 * lower-cased. Quoted local parts, comments, display names, lists and IP-literal domains
 * throw `INVALID_EMAIL`.
 */
export function normalizeEmail(emailTo: unknown): string {
  const refuse = (why: string): never => {
    throw new OtpError('INVALID_EMAIL', `emailTo must be one plain email address (${why}).`);
  };
  if (typeof emailTo !== 'string') return refuse('not a string');
  const address = emailTo.trim();
  if (address.length === 0 || address.length > 254) return refuse('empty or longer than 254 characters');
  const at = address.lastIndexOf('@');
  if (at <= 0 || address.indexOf('@') !== at) return refuse('expected exactly one "@" with a local part before it');
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (local.length > 64 || !LOCAL_PART.test(local)) return refuse('quoted local parts, comments, spaces and display names are not accepted');
  if (!DOMAIN.test(domain)) return refuse('the domain must be a plain host name such as example.com');
  return `${local}@${domain.toLowerCase()}`;
}

/** `+1******0100`: enough to recognise a destination in logs and events, no more. */
export function maskDestination(destination: string): string {
  const at = destination.indexOf('@');
  if (at > 0) return `${destination[0]}***${destination.slice(at)}`;
  return `${destination.slice(0, 2)}******${destination.slice(-4)}`;
}
