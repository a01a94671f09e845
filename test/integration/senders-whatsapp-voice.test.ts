/**
 * twilioWhatsApp and twilioVoice through the real `twilio` SDK, against Prism mocking
 * Twilio's own description of the Messages and Calls APIs (`--errors`: a request the spec
 * forbids is answered 422, so a 201 means the request passed validation).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { VoiceMessage, WhatsAppMessage } from '../../src/core/types.js';
import { twilioVoice, twilioWhatsApp, type TwilioVoiceOptions, type TwilioWhatsAppOptions } from '../../src/senders/twilio/index.js';
import { startPrism, testAccountSid, testAuthToken, twilioClientAnswering, twilioClientFor, twilioSpecPath, type PrismMock } from '../helpers/prism.js';
import { deliveryError } from '../helpers/sender-contract.js';
import { parseXml, textOf, type XmlElement } from '../helpers/xml.js';

const code = '493817';
const spokenCode = '4. 9. 3. 8. 1. 7.';
const from = '+14155550111';
const contentSid = 'HX0123456789abcdef0123456789abcdef';
const whatsAppMessage: WhatsAppMessage = { to: '+14155550100', code, username: 'john.smith', locale: 'en' };
const voiceMessage: VoiceMessage = { to: '+14155550100', code, username: 'john.smith', locale: 'en', appName: 'Acme' };
const messagesPath = `/2010-04-01/Accounts/${testAccountSid}/Messages.json`;
const callsPath = `/2010-04-01/Accounts/${testAccountSid}/Calls.json`;
const skipReason = `Twilio OpenAPI spec not found at ${twilioSpecPath}`;

/** The `<Say>` elements of a call's TwiML, checked to be well-formed `<Response><Say/><Pause/><Say/></Response>`. */
function saysOf(twiml: string | undefined): XmlElement[] {
  assert.ok(twiml, 'the call carried TwiML');
  const root = parseXml(twiml);
  assert.equal(root.name, 'Response');
  const elements = root.children.filter((child): child is XmlElement => typeof child !== 'string');
  assert.deepEqual(
    elements.map((element) => element.name),
    ['Say', 'Pause', 'Say'],
  );
  assert.deepEqual(elements[1]?.attributes, { length: '1' });
  return [elements[0]!, elements[2]!];
}

const digitsOf = (say: XmlElement): string => textOf(say).replace(/\D/g, '');

describe("twilioWhatsApp and twilioVoice through the twilio SDK against Twilio's OpenAPI description (Prism)", () => {
  let prism: PrismMock | null = null;
  before(async () => {
    prism = await startPrism();
  });
  after(async () => {
    await prism?.stop();
  });

  it('WhatsApp: sends the authentication template with the code as variable 1, and the spec accepts it', async (t) => {
    if (!prism) return t.skip(skipReason);
    const { client, requests } = twilioClientFor(prism.baseUrl);
    await twilioWhatsApp({ client, from, contentSid }).send(whatsAppMessage);
    assert.deepEqual(requests, [
      {
        method: 'POST',
        path: messagesPath,
        form: { To: 'whatsapp:+14155550100', From: 'whatsapp:+14155550111', ContentSid: contentSid, ContentVariables: '{"1":"493817"}' },
        status: 201,
      },
    ]);
    assert.deepEqual(JSON.parse(requests[0]?.form.ContentVariables ?? ''), { 1: code });
  });

  it('WhatsApp: "from" may carry the whatsapp: prefix already', async (t) => {
    if (!prism) return t.skip(skipReason);
    const { client, requests } = twilioClientFor(prism.baseUrl);
    await twilioWhatsApp({ client, from: `whatsapp:${from}`, contentSid }).send(whatsAppMessage);
    assert.equal(requests[0]?.form.From, 'whatsapp:+14155550111');
    assert.equal(requests[0]?.status, 201);
  });

  it('voice: calls To from From with TwiML that reads each digit, twice, and the spec accepts it', async (t) => {
    if (!prism) return t.skip(skipReason);
    const { client, requests } = twilioClientFor(prism.baseUrl);
    await twilioVoice({ client, from }).send(voiceMessage);
    assert.equal(requests.length, 1);
    const [request] = requests;
    assert.equal(request?.method, 'POST');
    assert.equal(request?.path, callsPath);
    assert.equal(request?.status, 201);
    assert.deepEqual(Object.keys(request?.form ?? {}).sort(), ['From', 'To', 'Twiml']);
    assert.equal(request?.form.To, '+14155550100');
    assert.equal(request?.form.From, from);

    const [first, again] = saysOf(request?.form.Twiml);
    for (const say of [first!, again!]) {
      assert.deepEqual(say.attributes, { language: 'en-US', voice: 'Polly.Joanna' });
      assert.equal(digitsOf(say), code, 'each <Say> reads the whole code');
      assert.ok(textOf(say).includes(spokenCode), 'digit by digit, not as one number');
    }
    assert.equal(textOf(first!), `Your Acme code is: ${spokenCode}`);
    assert.equal(textOf(again!), `Again, your code is: ${spokenCode}`);
  });
});

describe('twilioVoice TwiML', () => {
  it('(the strict XML checker refuses what is not well-formed)', () => {
    for (const bad of [
      '<Response><Say>1</Response>',
      '<Response><Say>a & b</Say></Response>',
      '<Response><Say a="1" a="2"/></Response>',
      '<Response><Say voice=x/></Response>',
      '<Response>&nbsp;</Response>',
      '<Response/><Response/>',
      '<Response><Say>a < b</Say></Response>',
    ]) {
      assert.throws(() => parseXml(bad), SyntaxError, bad);
    }
    assert.equal(textOf(parseXml('<?xml version="1.0" encoding="UTF-8"?><R a=\'&quot;\'>x &amp; &#233;<P/></R>')), 'x & é');
  });

  const callWith = async (options: Partial<TwilioVoiceOptions>, message: Partial<VoiceMessage> = {}): Promise<string> => {
    const { client, requests } = twilioClientAnswering(201, { sid: `CA${'0'.repeat(32)}`, status: 'queued' });
    await twilioVoice({ client, from, ...options } as TwilioVoiceOptions).send({ ...voiceMessage, ...message });
    return requests[0]?.form.Twiml ?? '';
  };

  const locales: Array<[string, 'en-US' | 'fr-CA', string, string]> = [
    ['en', 'en-US', 'Polly.Joanna', 'Your Acme code is:'],
    ['en-US', 'en-US', 'Polly.Joanna', 'Your Acme code is:'],
    ['en-CA', 'en-US', 'Polly.Joanna', 'Your Acme code is:'],
    ['fr', 'fr-CA', 'Polly.Chantal', 'Votre code Acme est :'],
    ['fr-CA', 'fr-CA', 'Polly.Chantal', 'Votre code Acme est :'],
    ['fr_FR', 'fr-CA', 'Polly.Chantal', 'Votre code Acme est :'],
    ['es-MX', 'en-US', 'Polly.Joanna', 'Your Acme code is:'],
  ];
  for (const [locale, language, voice, opening] of locales) {
    it(`locale ${locale}: <Say language="${language}" voice="${voice}">`, async () => {
      const [first, again] = saysOf(await callWith({}, { locale }));
      assert.deepEqual(first?.attributes, { language, voice });
      assert.deepEqual(again?.attributes, { language, voice });
      assert.equal(textOf(first!), `${opening} ${spokenCode}`);
      assert.equal(digitsOf(again!), code);
    });
  }

  it('French wording says the code again in French', async () => {
    const [, again] = saysOf(await callWith({}, { locale: 'fr-CA' }));
    assert.equal(textOf(again!), `Je répète, votre code est : ${spokenCode}`);
  });

  it('"language" sets the call language for locales it has no wording for', async () => {
    const [first] = saysOf(await callWith({ language: 'fr-CA' }, { locale: 'de' }));
    assert.equal(first?.attributes.language, 'fr-CA');
    const [english] = saysOf(await callWith({ language: 'fr-CA' }, { locale: 'en' }));
    assert.equal(english?.attributes.language, 'en-US', 'an English message stays English');
  });

  it('"voice" sets the voice: one for every language, or one per language', async () => {
    const [one] = saysOf(await callWith({ voice: 'Polly.Joanna-Neural' }, { locale: 'fr' }));
    assert.deepEqual(one?.attributes, { language: 'fr-CA', voice: 'Polly.Joanna-Neural' });
    const byLanguage = { voice: { 'fr-CA': 'Google.fr-CA-Standard-A' } };
    const [french] = saysOf(await callWith(byLanguage, { locale: 'fr' }));
    assert.equal(french?.attributes.voice, 'Google.fr-CA-Standard-A');
    const [english] = saysOf(await callWith(byLanguage, { locale: 'en' }));
    assert.equal(english?.attributes.voice, 'Polly.Joanna', 'the other language keeps its default');
  });

  it('appName is XML-escaped and read as written', async () => {
    const appName = 'Tom & Jerry\'s <Shop> "Deluxe"';
    const twiml = await callWith({}, { appName });
    assert.ok(!twiml.includes('<Shop>'), 'markup in appName stays text');
    const [first] = saysOf(twiml);
    assert.equal(textOf(first!), `Your ${appName} code is: ${spokenCode}`);
  });

  it('characters XML cannot hold are dropped from appName; an empty appName reads "Your code is"', async () => {
    const [first] = saysOf(await callWith({}, { appName: 'Ac\u0000me\u001b\ud800' }));
    assert.equal(textOf(first!), `Your Acme code is: ${spokenCode}`);
    const [plain] = saysOf(await callWith({}, { appName: '  ' }));
    assert.equal(textOf(plain!), `Your code is: ${spokenCode}`);
  });

  it('a 10-digit code is read digit by digit too', async () => {
    const [first, again] = saysOf(await callWith({}, { code: '0012345678' }));
    assert.equal(digitsOf(first!), '0012345678');
    assert.equal(digitsOf(again!), '0012345678');
    assert.ok(textOf(first!).includes('0. 0. 1. 2. 3. 4. 5. 6. 7. 8.'));
  });

  it("TwiML over Twilio's 4,000-character limit is refused before any request, without the TwiML", async () => {
    const { client, requests } = twilioClientAnswering(201, {});
    const error = await deliveryError(twilioVoice({ client, from }).send({ ...voiceMessage, appName: 'A'.repeat(4_000) }), [
      code,
      spokenCode,
      '<Say',
      'Response>',
      'ContentVariables',
      contentSid,
    ]);
    assert.equal(requests.length, 0);
    assert.equal(error.retryable, false);
    assert.match(error.message, /4000-character limit; shorten appName/);
  });
});

describe('twilioWhatsApp and twilioVoice options', () => {
  const { client } = twilioClientAnswering(201, {});
  const refusedWhatsApp: [string, unknown, RegExp][] = [
    ['no options', undefined, /expected an options object/],
    ['no from', { client, contentSid }, /"from" must be your WhatsApp sender number/],
    ['a from that is not E.164', { client, from: '4155550111', contentSid }, /"from"/],
    ['a prefixed from that is not E.164', { client, from: 'whatsapp:4155550111', contentSid }, /"from"/],
    ['no contentSid', { client, from }, /"contentSid" must be the Content SID/],
    ['a contentSid that is not one', { client, from, contentSid: 'MG0123456789abcdef0123456789abcdef' }, /"contentSid"/],
    ['a short contentSid', { client, from, contentSid: 'HX123' }, /"contentSid"/],
    ['no client and no credentials', { from, contentSid }, /"accountSid"/],
    ['a client and credentials', { client, accountSid: testAccountSid, authToken: testAuthToken, from, contentSid }, /not both/],
  ];
  for (const [what, options, expected] of refusedWhatsApp) {
    it(`twilioWhatsApp refuses ${what} with a TypeError`, () => {
      assert.throws(
        () => twilioWhatsApp(options as TwilioWhatsAppOptions),
        (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, /^twilioWhatsApp: /);
          assert.match(error.message, expected);
          return true;
        },
      );
    });
  }

  const refusedVoice: [string, unknown, RegExp][] = [
    ['no from', { client }, /"from" must be your calling number in E.164 form/],
    ['a from that is not E.164', { client, from: '(415) 555-0111' }, /"from"/],
    ['a language it has no wording for', { client, from, language: 'de-DE' }, /"language" must be one of "en-US", "fr-CA"/],
    ['a voice name with markup', { client, from, voice: 'Polly"/><Play>x' }, /"voice" must be a Twilio <Say> voice name/],
    ['a voice that is not a string or object', { client, from, voice: 42 }, /"voice" must be a voice name/],
    ['voices for an unknown language', { client, from, voice: { 'es-MX': 'Polly.Mia' } }, /"voice" has no language "es-MX"/],
    ['a bad voice for one language', { client, from, voice: { 'fr-CA': '' } }, /"voice.fr-CA" must be a Twilio <Say> voice name/],
    ['a missing authToken', { accountSid: testAccountSid, from }, /"authToken"/],
  ];
  for (const [what, options, expected] of refusedVoice) {
    it(`twilioVoice refuses ${what} with a TypeError`, () => {
      assert.throws(
        () => twilioVoice(options as TwilioVoiceOptions),
        (error: unknown) => {
          assert.ok(error instanceof TypeError);
          assert.match(error.message, /^twilioVoice: /);
          assert.match(error.message, expected);
          return true;
        },
      );
    });
  }
});
