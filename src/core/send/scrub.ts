/**
 * Scrubs what a sender's error may echo of its message before the text becomes a
 * `delivery_failed` reason or a log line. Custom senders and providers rewrite what they were
 * given, so exact matching is not enough: the number may come back without `+`, without the
 * `1`, in national format or grouped with dots; the address in another case; the code spaced
 * out as a voice call reads it (`4. 4. 2. 4. 2. 2.`) or wrapped in markup.
 */

/**
 * Between a code's digits: characters that are not digits, and whole markup tags, which may
 * hold digits of their own (TwiML's `</Say><Pause length="1"/><Say>`, SSML's `<break time="1s"/>`).
 */
const CODE_GAP = '(?:[^0-9<]|<[^<>]{0,80}>){0,48}';
/** Between a number's digits: the separators people and providers write (spaces, dots, dashes, parentheses, slashes). */
const PHONE_GAP = '[\\s().\\-/]{0,3}';
/** A local part shorter than this is not scrubbed on its own (it would blank out ordinary words). */
const MIN_LOCAL_PART = 4;

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const spaced = (digits: string, gap: string) => [...digits].join(gap);

/** Patterns for one destination: an E.164 +1 number in any grouping, or an address in any case. */
function destinationPatterns(to: string): RegExp[] {
  const national = /^\+1(\d{10})$/.exec(to)?.[1];
  if (national !== undefined) {
    return [
      // With or without the country code (and its +), any grouping of the ten digits.
      new RegExp(`(?:\\+?1${PHONE_GAP})?\\(?${spaced(national, PHONE_GAP)}`, 'g'),
      // The subscriber number alone (exchange and line), which the masked form does not show.
      new RegExp(spaced(national.slice(3), PHONE_GAP), 'g'),
    ];
  }
  const at = to.lastIndexOf('@');
  const local = at > 0 ? to.slice(0, at) : '';
  return [new RegExp(escapeRegExp(to), 'gi'), ...(local.length >= MIN_LOCAL_PART ? [new RegExp(escapeRegExp(local), 'gi')] : [])];
}

/**
 * `text` without the destination (replaced by `masked`) and the code (replaced by `[code]`),
 * in any of the writings above.
 */
export function scrubMessage(text: string, message: { code: string; to: string }, masked: string): string {
  let scrubbed = text;
  for (const pattern of destinationPatterns(message.to)) scrubbed = scrubbed.replace(pattern, masked);
  if (/^\d+$/.test(message.code)) scrubbed = scrubbed.replace(new RegExp(spaced(message.code, CODE_GAP), 'g'), '[code]');
  else scrubbed = scrubbed.split(message.code).join('[code]');
  return scrubbed;
}
