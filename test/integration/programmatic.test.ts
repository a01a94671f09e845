/** The programmatic API (the BlockID SDK's OTP.GenerateOTP / OTP.VerifyOTP) and the otp-provider facade. */
import assert from 'node:assert/strict';
import { after, before, describe, it, mock } from 'node:test';
import { createOtpService, OtpError, twilioSms, type OtpService } from '../../src/index.js';
import * as OTP from '../../src/otp-provider.js';
import { captureSenders } from '../helpers/capture.js';
import { SECRET } from '../helpers/apps.js';
import { startSmtpSink, type SmtpSink } from '../helpers/smtp.js';
import { startPrism, twilioClientFor, type PrismMock } from '../helpers/prism.js';

const otpError = (code: string) => (error: unknown) => error instanceof OtpError && error.code === code;

describe('createOtpService: generateOtp / verifyOtp', () => {
  const make = (overrides = {}) => {
    const capture = captureSenders();
    const service = createOtpService({ secret: SECRET, sms: capture.sms, email: capture.email, resendCooldownSeconds: 0, ...overrides });
    return { capture, service };
  };

  it('sends one code to SMS and email at once and reports both channels', async () => {
    const { capture, service } = make();
    const before = Date.now();
    const result = await service.generateOtp('john.smith', { smsTo: '(415) 555-0100', smsISDCode: '+1', emailTo: 'john.smith@example.com' });
    assert.deepEqual([...result.channels].sort(), ['email', 'sms']);
    assert.ok(result.expiresAt instanceof Date);
    assert.ok(Math.abs(result.expiresAt.getTime() - (before + 300_000)) < 2000);
    assert.equal(capture.messages.length, 2);
    const [first, second] = capture.messages;
    assert.equal(first?.code, second?.code);
    assert.deepEqual(capture.messages.map((m) => m.to).sort(), ['+14155550100', 'john.smith@example.com']);
    assert.deepEqual(await service.verifyOtp('john.smith', first?.code ?? ''), { ok: true });
    assert.deepEqual(await service.verifyOtp('john.smith', first?.code ?? ''), { ok: false, reason: 'invalid_code' });
  });

  it('writes messages that name the app, give the lifetime and warn not to share', async () => {
    const { capture, service } = make({ appName: 'Acme Bank', ttlSeconds: 120, webOtpDomain: 'bank.example' });
    await service.generateOtp('john.smith', { smsTo: '4155550100', emailTo: 'john@example.com' });
    const sms = capture.messages.find((m) => m.channel === 'sms');
    const email = capture.messages.find((m) => m.channel === 'email');
    assert.ok(sms?.channel === 'sms' && email?.channel === 'email');
    assert.match(sms.body, /Acme Bank/);
    assert.match(sms.body, /2 minutes/);
    assert.match(sms.body, /share/i);
    assert.ok(sms.body.endsWith(`@bank.example #${sms.code}`), sms.body.replaceAll(sms.code, '[code]'));
    assert.match(email.subject, /Acme Bank/);
    assert.ok(email.text.includes(email.code) && email.html.includes(email.code));
  });

  it('escapes the app name in HTML email and picks French (Canada) from the locale', async () => {
    const { capture, service } = make({ appName: '<Acme & Co>' });
    await service.generateOtp('marie', { emailTo: 'marie@example.ca', locale: 'fr-CA' });
    const email = capture.messages[0];
    assert.ok(email?.channel === 'email');
    assert.ok(email.html.includes('&#60;Acme &#38; Co&#62;'));
    assert.ok(!email.html.includes('<Acme'));
    assert.match(email.text, /code de vérification/);
  });

  it('counts wrong guesses and burns the code after maxAttempts', async () => {
    const { capture, service } = make({ maxAttempts: 2 });
    await service.generateOtp('john.smith', { emailTo: 'john@example.com' });
    const code = capture.lastCode('john.smith');
    const wrong = code === '000000' ? '111111' : '000000';
    assert.deepEqual(await service.verifyOtp('john.smith', wrong), { ok: false, reason: 'invalid_code' });
    assert.deepEqual(await service.verifyOtp('john.smith', wrong), { ok: false, reason: 'invalid_code' });
    assert.deepEqual(await service.verifyOtp('john.smith', code), { ok: false, reason: 'too_many_attempts' });
  });

  it('locks at maxConsecutiveFailures until unlock(), answering exactly the contract shape, and emits locked { username, permanent: true }', async () => {
    const { capture, service } = make({ limits: { failedVerifications: 90, maxConsecutiveFailures: 3 } });
    const locked: unknown[] = [];
    service.on('locked', (event) => locked.push(event));
    await service.generateOtp('ada', { emailTo: 'ada@example.com' });
    const code = capture.lastCode('ada');
    const wrong = `${(Number(code[0]) + 1) % 10}${code.slice(1)}`;
    for (let i = 0; i < 3; i++) assert.deepEqual(await service.verifyOtp('ada', wrong), { ok: false, reason: 'invalid_code' });
    assert.deepEqual(locked, [{ username: 'ada', permanent: true }]);
    await service.generateOtp('ada', { emailTo: 'ada@example.com' });
    const fresh = capture.lastCode('ada');
    assert.deepEqual(await service.verifyOtp('ada', fresh), { ok: false, reason: 'too_many_attempts' });
    await service.unlock('ada');
    assert.deepEqual(await service.verifyOtp('ada', fresh), { ok: true });
  });

  it('zero-pads codes and honours codeLength', async () => {
    const { capture, service } = make({ codeLength: 10 });
    for (let i = 0; i < 20; i++) await service.generateOtp(`user${i}`, { emailTo: `user${i}@example.com` });
    assert.ok(capture.messages.every((m) => /^\d{10}$/.test(m.code)));
  });

  const refusals: Array<[string, object, string]> = [
    ['an invalid number', { smsTo: '1234567890', smsISDCode: '1' }, 'INVALID_PHONE'],
    ['a Jamaican number', { smsTo: '876-555-0100' }, 'INVALID_PHONE'],
    ['a premium-rate number', { smsTo: '900-555-0100' }, 'INVALID_PHONE'],
    ['another ISD code', { smsTo: '4155550100', smsISDCode: '44' }, 'INVALID_PHONE'],
    ['a display-name email', { emailTo: 'John <john@example.com>' }, 'INVALID_EMAIL'],
    ['a list of emails', { emailTo: 'a@example.com,b@example.com' }, 'INVALID_EMAIL'],
    ['no destination', {}, 'NO_DESTINATION'],
  ];
  for (const [name, destinations, code] of refusals) {
    it(`rejects ${name} with ${code} and sends nothing`, async () => {
      const { capture, service } = make();
      await assert.rejects(service.generateOtp('john.smith', destinations), otpError(code));
      assert.equal(capture.messages.length, 0);
    });
  }

  it('rejects a channel that is not configured with CHANNEL_NOT_CONFIGURED', async () => {
    const capture = captureSenders();
    const service = createOtpService({ secret: SECRET, email: capture.email });
    await assert.rejects(service.generateOtp('john.smith', { smsTo: '4155550100', emailTo: 'a@example.com' }), otpError('CHANNEL_NOT_CONFIGURED'));
    assert.equal(capture.messages.length, 0);
  });

  it('rejects a second send inside the cooldown with RATE_LIMITED and retryAfterSeconds', async () => {
    const { service } = make({ resendCooldownSeconds: 30 });
    await service.generateOtp('john.smith', { emailTo: 'a@example.com' });
    await assert.rejects(service.generateOtp('john.smith', { emailTo: 'a@example.com' }), (error: unknown) => {
      return error instanceof OtpError && error.code === 'RATE_LIMITED' && error.status === 429 && (error.retryAfterSeconds ?? 0) >= 1;
    });
  });

  it('rejects with DELIVERY_FAILED, without the code, when no channel could deliver', async () => {
    const sent: string[] = [];
    const service: OtpService = createOtpService({
      secret: SECRET,
      deliveryRetries: 0,
      sms: {
        send: async (m) => {
          sent.push(m.code);
          throw new Error(`gateway down while sending ${m.body}`);
        },
      },
    });
    const failures: string[] = [];
    service.on('delivery_failed', (event) => failures.push(JSON.stringify(event)));
    await assert.rejects(service.generateOtp('john.smith', { smsTo: '4155550100' }), (error: unknown) => {
      assert.ok(error instanceof OtpError && error.code === 'DELIVERY_FAILED');
      assert.ok(!error.message.includes(sent[0] ?? 'x'));
      return true;
    });
    assert.equal(failures.length, 1);
    assert.ok(!failures[0]?.includes(sent[0] ?? 'x'), 'the event carries no code');
    assert.match(failures[0] ?? '', /\+1\*+0100/);
  });

  it('resolves when one of two channels delivered, naming that channel', async () => {
    const capture = captureSenders();
    const service = createOtpService({
      secret: SECRET,
      deliveryRetries: 0,
      email: capture.email,
      sms: {
        send: async () => {
          throw new Error('down');
        },
      },
    });
    const result = await service.generateOtp('john.smith', { smsTo: '4155550100', emailTo: 'a@example.com' });
    assert.deepEqual(result.channels, ['email']);
  });

  it('rejects invalid usernames with INVALID_REQUEST', async () => {
    const { service } = make();
    for (const username of ['', '   ', 'x'.repeat(257), 42, null]) {
      await assert.rejects(service.generateOtp(username as string, { emailTo: 'a@example.com' }), otpError('INVALID_REQUEST'));
    }
  });
});

describe('blockid-otp/otp-provider: the BlockID SDK facade, configured from the environment', () => {
  let smtp: SmtpSink;
  const saved = { ...process.env };
  before(async () => {
    smtp = await startSmtpSink();
  });
  after(async () => {
    process.env = saved;
    await OTP.reset();
    await smtp.stop();
  });

  it('GenerateOTP({ emailTo }) sends through SMTP_URL and VerifyOTP accepts that code once', async () => {
    process.env = { ...saved, OTP_SECRET: SECRET, SMTP_URL: smtp.url, OTP_EMAIL_FROM: 'BlockID <no-reply@example.com>', OTP_APP_NAME: 'BlockID' };
    await OTP.reset();
    const result = await OTP.GenerateOTP('john.smith', { emailTo: 'john.smith@example.com' });
    assert.deepEqual(result.channels, ['email']);
    const [mail] = await smtp.waitFor(1);
    const code = /(\d{6})/.exec(mail?.text ?? '')?.[1];
    assert.ok(code, 'the email carries a 6-digit code');
    assert.equal(mail?.to && 'text' in mail.to ? mail.to.text : '', 'john.smith@example.com');
    assert.match(mail?.subject ?? '', /BlockID/);
    assert.deepEqual(await OTP.VerifyOTP('john.smith', code), { ok: true });
    assert.deepEqual(await OTP.VerifyOTP('john.smith', code), { ok: false, reason: 'invalid_code' });
  });

  it('GenerateOTP({ smsTo }) without Twilio configured is a clear CHANNEL_NOT_CONFIGURED OtpError', async () => {
    process.env = { ...saved, OTP_SECRET: SECRET, SMTP_URL: smtp.url, OTP_EMAIL_FROM: 'no-reply@example.com' };
    await OTP.reset();
    await assert.rejects(OTP.GenerateOTP('john.smith', { smsTo: '4155550100', smsISDCode: '1' }), (error: unknown) => {
      return error instanceof OtpError && error.code === 'CHANNEL_NOT_CONFIGURED' && /TWILIO|sms/i.test(error.message);
    });
  });

  it('refuses to run without OTP_SECRET, saying which variable to set', async () => {
    process.env = { ...saved, OTP_SECRET: '' };
    await OTP.reset();
    await assert.rejects(OTP.GenerateOTP('john.smith', { emailTo: 'a@example.com' }), /OTP_SECRET/);
  });

  it('keeps codes in Redis when REDIS_URL is set', async () => {
    process.env = { ...saved, OTP_SECRET: SECRET, SMTP_URL: smtp.url, OTP_EMAIL_FROM: 'no-reply@example.com', REDIS_URL: 'redis://127.0.0.1:6379' };
    await OTP.reset();
    const before = smtp.messages.length;
    await OTP.GenerateOTP(`redis.user.${Date.now()}`, { emailTo: 'r@example.com' });
    const mails = await smtp.waitFor(before + 1);
    const code = /(\d{6})/.exec(mails.at(-1)?.text ?? '')?.[1] ?? '';
    assert.equal((await OTP.VerifyOTP('nobody', code)).ok, false);
  });
});

describe('blockid-otp/otp-provider: OTP_TEST_DESTINATIONS and OTP_TEST_DESTINATIONS_EXPIRE_AT', () => {
  let smtp: SmtpSink;
  const saved = { ...process.env };
  const DAY_MS = 24 * 60 * 60 * 1000;
  /** Twilio credentials of the right shape: the SDK builds a client but no request may leave (there is no such account). */
  const fakeTwilio = { TWILIO_ACCOUNT_SID: `AC${'0'.repeat(32)}`, TWILIO_AUTH_TOKEN: 'not-a-real-token', TWILIO_FROM: '+15005550006' };
  const configure = (extra: NodeJS.ProcessEnv) => {
    process.env = { ...saved, NODE_ENV: 'test', OTP_SECRET: SECRET, SMTP_URL: smtp.url, OTP_EMAIL_FROM: 'no-reply@example.com', ...fakeTwilio, ...extra };
    delete process.env.REDIS_URL;
    return OTP.reset();
  };
  /** A TypeError that names `name` and repeats none of the fixed codes. */
  const refused = (name: RegExp) => (error: unknown) => {
    assert.ok(error instanceof TypeError, String(error));
    assert.match(error.message, /^blockid-otp\/otp-provider: /);
    assert.match(error.message, name);
    for (const code of ['123456', '000000', '12345']) assert.ok(!error.message.includes(code), `the message holds a code: ${error.message}`);
    return true;
  };
  before(async () => {
    smtp = await startSmtpSink();
  });
  after(async () => {
    process.env = saved;
    await OTP.reset();
    await smtp.stop();
  });

  it('a test number and a test address get their fixed code, once each, and nothing is delivered', async () => {
    await configure({ OTP_TEST_DESTINATIONS: ' +14155550123=123456 , qa@example.com=000000 ' });
    const warned = mock.method(console, 'warn', () => undefined);
    try {
      assert.deepEqual((await OTP.GenerateOTP('reviewer', { smsTo: '(415) 555-0123', smsISDCode: '1' })).channels, ['sms']);
      assert.deepEqual((await OTP.GenerateOTP('qa', { emailTo: 'qa@EXAMPLE.com' })).channels, ['email']);
      assert.equal(warned.mock.callCount(), 1, 'one start-up warning');
      assert.match(String(warned.mock.calls[0]?.arguments[0]), /test destinations are on/);
    } finally {
      warned.mock.restore();
    }
    assert.deepEqual(await OTP.VerifyOTP('reviewer', '123456'), { ok: true });
    assert.deepEqual(await OTP.VerifyOTP('reviewer', '123456'), { ok: false, reason: 'invalid_code' });
    assert.deepEqual(await OTP.VerifyOTP('qa', '123456'), { ok: false, reason: 'invalid_code' }, 'each destination has its own code');
    assert.deepEqual(await OTP.VerifyOTP('qa', '000000'), { ok: true });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(smtp.messages.length, 0, 'no mail was sent');
  });

  it('a destination not in OTP_TEST_DESTINATIONS is an ordinary send', async () => {
    await configure({ OTP_TEST_DESTINATIONS: 'qa@example.com=000000' });
    const warned = mock.method(console, 'warn', () => undefined);
    const before = smtp.messages.length;
    try {
      await OTP.GenerateOTP('someone', { emailTo: 'someone@example.com' });
    } finally {
      warned.mock.restore();
    }
    const mails = await smtp.waitFor(before + 1);
    const code = /(\d{6})/.exec(mails.at(-1)?.text ?? '')?.[1] ?? '';
    assert.deepEqual(await OTP.VerifyOTP('someone', '000000'), { ok: false, reason: 'invalid_code' });
    assert.deepEqual(await OTP.VerifyOTP('someone', code), { ok: true });
  });

  it('refuses a malformed OTP_TEST_DESTINATIONS, naming the variable and never a code', async () => {
    for (const value of [
      '+14155550123',
      '+14155550123=',
      '=123456',
      '+14155550123=123456,+14155550123=123456',
      '+14155550123=12345',
      '+18765550123=123456',
      'a@b=123456',
    ]) {
      await configure({ OTP_TEST_DESTINATIONS: value });
      await assert.rejects(OTP.GenerateOTP('qa', { emailTo: 'qa@example.com' }), refused(/OTP_TEST_DESTINATIONS\b/), value);
    }
  });

  it('an empty OTP_TEST_DESTINATIONS is no test mode', async () => {
    await configure({ OTP_TEST_DESTINATIONS: '' });
    const before = smtp.messages.length;
    await OTP.GenerateOTP('qa', { emailTo: 'qa@example.com' });
    await smtp.waitFor(before + 1);
  });

  it('under NODE_ENV=production, refuses OTP_TEST_DESTINATIONS without OTP_TEST_DESTINATIONS_EXPIRE_AT or with one over 30 days ahead', async () => {
    await configure({ NODE_ENV: 'production', OTP_TEST_DESTINATIONS: 'qa@example.com=000000' });
    await assert.rejects(
      OTP.GenerateOTP('qa', { emailTo: 'qa@example.com' }),
      refused(/OTP_TEST_DESTINATIONS is refused without OTP_TEST_DESTINATIONS_EXPIRE_AT unless NODE_ENV is "development" or "test"/),
    );
    await configure({
      NODE_ENV: 'production',
      OTP_TEST_DESTINATIONS: 'qa@example.com=000000',
      OTP_TEST_DESTINATIONS_EXPIRE_AT: new Date(Date.now() + 31 * DAY_MS).toISOString(),
    });
    await assert.rejects(OTP.GenerateOTP('qa', { emailTo: 'qa@example.com' }), refused(/OTP_TEST_DESTINATIONS_EXPIRE_AT more than 30 days ahead/));
    await configure({ NODE_ENV: 'production', OTP_TEST_DESTINATIONS: 'qa@example.com=000000', OTP_TEST_DESTINATIONS_EXPIRE_AT: 'next week' });
    await assert.rejects(OTP.GenerateOTP('qa', { emailTo: 'qa@example.com' }), refused(/OTP_TEST_DESTINATIONS_EXPIRE_AT must be a Date or an ISO 8601 string/));

    await configure({
      NODE_ENV: 'production',
      OTP_TEST_DESTINATIONS: 'qa@example.com=000000',
      OTP_TEST_DESTINATIONS_EXPIRE_AT: new Date(Date.now() + 7 * DAY_MS).toISOString(),
    });
    const warned = mock.method(console, 'warn', () => undefined);
    try {
      assert.deepEqual((await OTP.GenerateOTP('qa', { emailTo: 'qa@example.com' })).channels, ['email']);
    } finally {
      warned.mock.restore();
    }
    assert.deepEqual(await OTP.VerifyOTP('qa', '000000'), { ok: true });
  });

  it('after OTP_TEST_DESTINATIONS_EXPIRE_AT the fixed code is refused and a real code is delivered', async () => {
    await configure({ OTP_TEST_DESTINATIONS: 'qa@example.com=000000', OTP_TEST_DESTINATIONS_EXPIRE_AT: '2020-01-31' });
    const warned = mock.method(console, 'warn', () => undefined);
    const before = smtp.messages.length;
    try {
      await OTP.GenerateOTP('qa', { emailTo: 'qa@example.com' });
    } finally {
      warned.mock.restore();
    }
    const mails = await smtp.waitFor(before + 1);
    const code = /(\d{6})/.exec(mails.at(-1)?.text ?? '')?.[1] ?? '';
    assert.notEqual(code, '000000');
    assert.deepEqual(await OTP.VerifyOTP('qa', '000000'), { ok: false, reason: 'invalid_code' });
    assert.deepEqual(await OTP.VerifyOTP('qa', code), { ok: true });
  });
});

describe('twilioSms through the Prism mock, via the programmatic API', () => {
  let prism: PrismMock | null = null;
  before(async () => {
    prism = await startPrism();
  });
  after(async () => {
    await prism?.stop();
  });

  it('sends the BlockID SDK doc example to +14155550100 with the code in the body', async (t) => {
    if (prism === null) return t.skip('Twilio OpenAPI spec not found beside the repository (../shared/twilio-oai)');
    const recording = twilioClientFor(prism.baseUrl);
    const service = createOtpService({ secret: SECRET, sms: twilioSms({ client: recording.client, from: '+15005550006' }), appName: 'BlockID' });
    const result = await service.generateOtp('john.smith', { smsTo: '4155550100', smsISDCode: '1' });
    assert.deepEqual(result.channels, ['sms']);
    const request = recording.requests.at(-1);
    assert.equal(request?.form.To, '+14155550100');
    assert.equal(request?.form.From, '+15005550006');
    assert.match(request?.form.Body ?? '', /^\d{6} is your BlockID verification code/);
  });
});
