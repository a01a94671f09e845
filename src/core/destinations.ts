/**
 * The seed's destination rules: US and Canada numbers only, one plain email address.
 * Both functions return the canonical form used for sending and for quota keys.
 */
import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { OtpError } from './errors.js';

const PHONE_CHARACTERS = /^\+?[0-9\s().-]+$/;
const REFUSED_PHONE_TYPES = new Set(['PREMIUM_RATE', 'SHARED_COST']);

/** Successful results, by input: `resolveUser` hands back the same stored number on every send (bounded, oldest out). */
const normalizedPhones = new Map<string, string>();
const MAX_CACHED_PHONES = 10_000;

/**
 * Turns `smsTo` (any common writing) and `smsISDCode` (`"1"` or `"+1"`, the default) into
 * E.164 (`+14155550100`). Throws `INVALID_PHONE` for anything that is not a valid United
 * States or Canada number, including other +1 countries and premium-rate numbers.
 */
export function normalizePhone(smsTo: unknown, smsISDCode: unknown = '1'): string {
  const cacheKey = typeof smsTo === 'string' && typeof smsISDCode === 'string' ? `${smsISDCode}\u0000${smsTo}` : undefined;
  const cached = cacheKey === undefined ? undefined : normalizedPhones.get(cacheKey);
  if (cached !== undefined) return cached;
  const normalized = parsePhone(smsTo, smsISDCode);
  if (cacheKey !== undefined) {
    if (normalizedPhones.size >= MAX_CACHED_PHONES) normalizedPhones.delete(normalizedPhones.keys().next().value as string);
    normalizedPhones.set(cacheKey, normalized);
  }
  return normalized;
}

function parsePhone(smsTo: unknown, smsISDCode: unknown): string {
  if (typeof smsISDCode !== 'string' || !/^\+?1$/.test(smsISDCode.trim())) {
    throw new OtpError('INVALID_PHONE', 'smsISDCode must be "1" or "+1": only United States and Canada numbers are supported.');
  }
  if (typeof smsTo !== 'string' || smsTo.length > 32 || !PHONE_CHARACTERS.test(smsTo.trim())) {
    throw new OtpError('INVALID_PHONE', 'smsTo must be a phone number written with digits, spaces, "+", "-", "." or parentheses.');
  }
  const phone = parsePhoneNumberFromString(smsTo.trim(), 'US');
  if (phone === undefined || !phone.isValid() || phone.countryCallingCode !== '1') {
    throw new OtpError('INVALID_PHONE', 'smsTo is not a valid United States or Canada phone number.');
  }
  if (phone.country !== 'US' && phone.country !== 'CA') {
    throw new OtpError('INVALID_PHONE', 'smsTo belongs to another +1 country: only United States and Canada numbers are supported.');
  }
  const type = phone.getType();
  if (type !== undefined && REFUSED_PHONE_TYPES.has(type)) {
    throw new OtpError('INVALID_PHONE', 'smsTo is a premium-rate or shared-cost number, which cannot receive codes.');
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
