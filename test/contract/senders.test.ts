/**
 * The sender contract (test/helpers/sender-contract.ts) for SMS, WhatsApp and voice (the
 * Twilio senders, through the real `twilio` SDK against Prism mocking Twilio's own API
 * description; skipped with a note where that description is absent) and for email
 * (nodemailer against a local SMTP server). What only one sender does is in
 * test/integration/senders-*.test.ts.
 */
import assert from 'node:assert/strict';
import { after } from 'node:test';
import nodemailer from 'nodemailer';
import type { EmailMessage, SmsMessage, VoiceMessage, WhatsAppMessage } from '../../src/core/types.js';
import { nodemailerEmail, type NodemailerEmailOptions } from '../../src/senders/nodemailer.js';
import {
  twilioSms,
  twilioVoice,
  twilioWhatsApp,
  type TwilioSmsOptions,
  type TwilioVoiceOptions,
  type TwilioWhatsAppOptions,
} from '../../src/senders/twilio/index.js';
import {
  startPrism,
  testAccountSid,
  testAuthToken,
  twilioClientAnswering,
  twilioClientFor,
  twilioSpecPath,
  type PrismMock,
  type RecordedRequest,
} from '../helpers/prism.js';
import { describeSenderContract, type Provider, type SenderKit } from '../helpers/sender-contract.js';
import { startSmtpSink } from '../helpers/smtp.js';

const code = '493817';
const spokenCode = '4. 9. 3. 8. 1. 7.';
const phone = '+14155550100';
const from = '+14155550111';
const contentSid = 'HX0123456789abcdef0123456789abcdef';

// ---- Twilio: one Prism for the three senders -------------------------------------------------

let prism: Promise<PrismMock | null> | undefined;
const sharedPrism = () => (prism ??= startPrism());
after(async () => {
  await (await prism)?.stop();
});

type TwilioSender = { send(message: never): Promise<void> };

/**
 * A kit for one Twilio sender: `make(options)` builds it, `message` is what it sends, and
 * `carriesCode` reads the code out of the request the SDK made.
 */
function twilioKit(spec: {
  name: 'twilioSms' | 'twilioWhatsApp' | 'twilioVoice';
  make: (options: Record<string, unknown>) => TwilioSender;
  options: Record<string, unknown>;
  message: SmsMessage | WhatsAppMessage | VoiceMessage;
  receivedTo: string;
  carriesCode: (request: RecordedRequest) => boolean;
  refused: string;
  twilioErrors: Array<{ status: number; twilioCode: number; retryable: boolean; text: string }>;
  secrets: string[];
  refusedOptions: SenderKit['refusedOptions'];
}): SenderKit {
  const send = (sender: TwilioSender) => sender.send(spec.message as never);
  return {
    name: spec.name,
    to: phone,
    receivedTo: spec.receivedTo,
    secrets: spec.secrets,
    async startProvider() {
      const mock = await sharedPrism();
      if (!mock) return `Twilio OpenAPI spec not found at ${twilioSpecPath}`;
      const { client, httpClient, requests } = twilioClientFor(mock.baseUrl);
      const fromCredentials = spec.make({ ...spec.options, accountSid: testAccountSid, authToken: testAuthToken, clientOptions: { httpClient } });
      return {
        send: () => send(spec.make({ ...spec.options, client })),
        sendFromCredentials: () => send(fromCredentials),
        async received(count) {
          const request = requests[count - 1];
          assert.ok(request, `request ${count} was made`);
          return { to: request.form.To ?? '', accepted: request.status === 201, carriesCode: spec.carriesCode(request) };
        },
        stop: async () => {},
      } satisfies Provider;
    },
    refusals: spec.twilioErrors.map(({ status, twilioCode, retryable, text }) => ({
      name: `HTTP ${status} (Twilio error ${twilioCode})`,
      retryable,
      message: `Twilio refused ${spec.refused} (error ${twilioCode}, HTTP ${status}) (see docs/errors.md#delivery-failed)`,
      cause: { provider: 'twilio', status, code: twilioCode },
      async start() {
        const body = { code: twilioCode, message: text, more_info: `https://www.twilio.com/docs/errors/${twilioCode}`, status };
        const { client, requests } = twilioClientAnswering(status, body);
        return {
          send: () => send(spec.make({ ...spec.options, client })),
          stop: async () => assert.ok(requests[0] && spec.carriesCode(requests[0]), 'the real SDK made the request'),
        };
      },
    })),
    sendToClosedPort: (port) => send(spec.make({ ...spec.options, client: twilioClientFor(`http://127.0.0.1:${port}`).client })),
    unreachableMessage: 'Twilio could not be reached (ECONNREFUSED) (see docs/errors.md#delivery-failed)',
    sendToSilentServer: (port) => send(spec.make({ ...spec.options, client: twilioClientFor(`http://127.0.0.1:${port}`, 300).client })),
    timeoutMessage: /^Twilio could not be reached \((ECONNABORTED|ETIMEDOUT)\) \(see docs\/errors\.md#delivery-failed\)$/,
    timeoutWithinMs: [0, 5_000],
    refusedOptions: spec.refusedOptions,
  };
}

const commonTwilioErrors = [
  { status: 429, twilioCode: 20429, retryable: true, text: 'Too Many Requests' },
  { status: 500, twilioCode: 20500, retryable: true, text: 'Internal Server Error' },
  { status: 503, twilioCode: 20503, retryable: true, text: 'Service Unavailable' },
];
const whatsAppAndVoiceSecrets = [code, spokenCode, '<Say', 'Response>', 'ContentVariables', contentSid];
const { client: anyClient } = twilioClientAnswering(201, {});

describeSenderContract(
  twilioKit({
    name: 'twilioSms',
    make: (options) => twilioSms(options as unknown as TwilioSmsOptions),
    options: { from },
    message: { to: phone, body: `Your blockid code is ${code}`, code, username: 'john.smith' },
    receivedTo: phone,
    carriesCode: (request) => request.form.Body === `Your blockid code is ${code}`,
    refused: 'the message',
    twilioErrors: [
      { status: 400, twilioCode: 21211, retryable: false, text: "The 'To' number +1415555010 is not a valid phone number." },
      ...commonTwilioErrors,
    ],
    secrets: [code, 'Your blockid code'],
    refusedOptions: [
      ['something that is not a client', () => twilioSms({ client: {}, from } as unknown as TwilioSmsOptions), /"client" must be a twilio client/],
      ['an unknown option', () => twilioSms({ client: anyClient, form: from } as unknown as TwilioSmsOptions), /unknown option "form"/],
    ],
  }),
);

describeSenderContract(
  twilioKit({
    name: 'twilioWhatsApp',
    make: (options) => twilioWhatsApp(options as unknown as TwilioWhatsAppOptions),
    options: { from, contentSid },
    message: { to: phone, code, username: 'john.smith', locale: 'en' },
    receivedTo: `whatsapp:${phone}`,
    carriesCode: (request) => request.form.ContentVariables === `{"1":"${code}"}`,
    refused: 'the message',
    twilioErrors: [
      { status: 400, twilioCode: 63016, retryable: false, text: 'Failed to send freeform message because you are outside the allowed window.' },
      ...commonTwilioErrors,
    ],
    secrets: whatsAppAndVoiceSecrets,
    refusedOptions: [
      [
        'something that is not a client',
        () => twilioWhatsApp({ client: { calls: {} }, from, contentSid } as unknown as TwilioWhatsAppOptions),
        /"client" must be a twilio client/,
      ],
      [
        'an unknown option',
        () => twilioWhatsApp({ client: anyClient, from, contentSid, body: 'x' } as unknown as TwilioWhatsAppOptions),
        /unknown option "body"/,
      ],
    ],
  }),
);

describeSenderContract(
  twilioKit({
    name: 'twilioVoice',
    make: (options) => twilioVoice(options as unknown as TwilioVoiceOptions),
    options: { from },
    message: { to: phone, code, username: 'john.smith', locale: 'en', appName: 'Acme' },
    receivedTo: phone,
    carriesCode: (request) => request.form.Twiml?.includes(spokenCode) ?? false,
    refused: 'the call',
    twilioErrors: [
      { status: 400, twilioCode: 63016, retryable: false, text: 'Failed to send freeform message because you are outside the allowed window.' },
      ...commonTwilioErrors,
    ],
    secrets: whatsAppAndVoiceSecrets,
    refusedOptions: [
      [
        'something that is not a client',
        () => twilioVoice({ client: { messages: { create() {} } }, from } as unknown as TwilioVoiceOptions),
        /"client" must be a twilio client/,
      ],
      ['an unknown option', () => twilioVoice({ client: anyClient, from, twiml: '<Response/>' } as unknown as TwilioVoiceOptions), /unknown option "twiml"/],
    ],
  }),
);

// ---- email: nodemailer to a local SMTP server -------------------------------------------------

const mailFrom = 'Acme Sign-in <no-reply@acme.test>';
const email: EmailMessage = {
  to: 'john.smith@example.com',
  subject: 'Your Acme sign-in code',
  text: `Your code is ${code}. It expires in 5 minutes.`,
  html: `<p>Your code is <strong>${code}</strong>. It expires in 5 minutes.</p>`,
  code,
  username: 'john.smith',
};

describeSenderContract({
  name: 'nodemailerEmail',
  to: email.to,
  receivedTo: email.to,
  secrets: [code],
  async startProvider() {
    const sink = await startSmtpSink();
    const transporter = nodemailer.createTransport({ host: '127.0.0.1', port: sink.port, secure: false, ignoreTLS: true });
    const fromCredentials = nodemailerEmail({ smtpUrl: sink.url, from: mailFrom });
    return {
      send: () => nodemailerEmail({ transporter, from: mailFrom }).send(email),
      sendFromCredentials: () => fromCredentials.send(email),
      async received(count) {
        const mail = (await sink.waitFor(count))[count - 1];
        assert.ok(mail, `message ${count} arrived`);
        const to = (Array.isArray(mail.to) ? mail.to : [mail.to]).flatMap((address) => address?.value.map((a) => a.address));
        assert.equal(to.length, 1);
        return { to: to[0] ?? '', accepted: true, carriesCode: Boolean(mail.text?.includes(code)) };
      },
      stop: () => sink.stop(),
    };
  },
  refusals: (
    [
      [451, true],
      [550, false],
    ] as const
  ).map(([responseCode, retryable]) => ({
    name: `SMTP reply ${responseCode} to RCPT TO`,
    retryable,
    message: `SMTP server refused the message (reply ${responseCode} to RCPT TO) (see docs/errors.md#delivery-failed)`,
    cause: { provider: 'smtp', responseCode, command: 'RCPT TO', errorCode: 'EENVELOPE' },
    async start() {
      const sink = await startSmtpSink({ rejectRecipient: { responseCode, message: 'Recipient refused' } });
      return {
        send: () => nodemailerEmail({ smtpUrl: sink.url, from: mailFrom }).send(email),
        stop: async () => {
          assert.equal(sink.messages.length, 0);
          await sink.stop();
        },
      };
    },
  })),
  sendToClosedPort: (port) => nodemailerEmail({ smtpUrl: `smtp://127.0.0.1:${port}`, from: mailFrom }).send(email),
  unreachableMessage: 'SMTP server could not be reached (ECONNREFUSED) (see docs/errors.md#delivery-failed)',
  sendToSilentServer: (port) =>
    nodemailerEmail({
      smtpUrl: `smtp://127.0.0.1:${port}`,
      from: mailFrom,
      transportOptions: { connectionTimeout: 500, greetingTimeout: 300, socketTimeout: 500 },
    }).send(email),
  timeoutMessage: /^SMTP server could not be reached \(ETIMEDOUT\) \(see docs\/errors\.md#delivery-failed\)$/,
  timeoutWithinMs: [250, 3_000],
  refusedOptions: [
    [
      'something that is not a transporter',
      () => nodemailerEmail({ transporter: {}, from: mailFrom } as unknown as NodemailerEmailOptions),
      /"transporter" must be a nodemailer transporter/,
    ],
    [
      'an unknown option',
      () => nodemailerEmail({ smtpUrl: 'smtp://127.0.0.1:25', from: mailFrom, timeout: 5 } as unknown as NodemailerEmailOptions),
      /unknown option "timeout"/,
    ],
  ],
});
