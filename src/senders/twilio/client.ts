/**
 * The Twilio client every Twilio part uses: the caller's own (`{ client }`, accepted as is,
 * e.g. one with a custom `httpClient`), or one built from `{ accountSid, authToken }` once,
 * on first use. The SDK is an optional peer dependency, imported only then.
 */
import { OtpError, configError } from '../../core/errors.js';
import { assertPeerInstalled } from '../../core/peer.js';
import { checkOptions } from '../../core/validate.js';

/** Options for the client built from credentials, passed to `twilio(sid, token, opts)`. */
export interface TwilioClientOptions {
  /** Request timeout in milliseconds (the SDK's default is 30 000). */
  timeout?: number | undefined;
  region?: string | undefined;
  edge?: string | undefined;
  [option: string]: unknown;
}

/** Either a client from `twilio(...)` or the credentials to build one. */
export type TwilioCredentials<Client> =
  | { client: Client; accountSid?: never; authToken?: never; clientOptions?: never }
  | { accountSid: string; authToken: string; clientOptions?: TwilioClientOptions | undefined; client?: never };

export const credentialOptions = ['client', 'accountSid', 'authToken', 'clientOptions'] as const;

/** A TypeError for anything but an options object whose every key is in `known` (with a "did you mean"). */
export function checkOptionNames(factory: string, options: unknown, known: readonly string[]): Record<string, unknown> {
  return checkOptions(factory, options, known, `${factory}({ client, ... })`);
}

/**
 * Checks `client` (it must pass `fits`) or `accountSid`/`authToken`/`clientOptions`, and
 * returns the getter of the client. A failed build (no `twilio` package) is retried on the
 * next call.
 */
// biome-ignore lint/suspicious/noExplicitAny: `fits` probes a client the caller handed in, whose shape is what it checks
export function twilioClient<Client>(factory: string, options: Record<string, unknown>, fits: (client: any) => boolean): () => Promise<Client> {
  const { client, accountSid, authToken, clientOptions } = options;
  if (client !== undefined) {
    if (accountSid !== undefined || authToken !== undefined) {
      throw configError(`${factory}: pass either "client" or "accountSid" and "authToken", not both`, 'invalid-sender-options');
    }
    if (typeof client !== 'object' || client === null || !fits(client)) {
      throw configError(`${factory}: option "client" must be a twilio client (twilio(accountSid, authToken))`, 'invalid-sender-options');
    }
  } else {
    if (typeof accountSid !== 'string' || !accountSid.startsWith('AC')) {
      throw configError(`${factory}: option "accountSid" must be your Account SID (starts with "AC"), or pass "client"`, 'invalid-sender-options');
    }
    if (typeof authToken !== 'string' || authToken === '')
      throw configError(`${factory}: option "authToken" must be a non-empty string`, 'invalid-sender-options');
    assertPeerInstalled('twilio', factory, '"accountSid" and "authToken"');
  }
  if (clientOptions !== undefined && (client !== undefined || typeof clientOptions !== 'object' || clientOptions === null)) {
    throw configError(`${factory}: option "clientOptions" must be an object, and goes with "accountSid" and "authToken"`, 'invalid-sender-options');
  }

  let ready: Promise<Client> | undefined = client === undefined ? undefined : Promise.resolve(client as Client);
  return () =>
    (ready ??= buildClient<Client>(factory, accountSid as string, authToken as string, clientOptions as TwilioClientOptions | undefined).catch(
      (error: unknown) => {
        ready = undefined;
        throw error;
      },
    ));
}

async function buildClient<Client>(factory: string, accountSid: string, authToken: string, clientOptions?: TwilioClientOptions): Promise<Client> {
  let sdk: { default?: unknown };
  try {
    sdk = await import('twilio');
  } catch (cause) {
    throw new OtpError('DELIVERY_FAILED', `${factory}: "accountSid"/"authToken" need the optional "twilio" package (npm install twilio)`, {
      retryable: false,
      cause,
    });
  }
  // ESM import of the CommonJS SDK gives { default: twilio }; some bundlers give twilio itself.
  const create = (sdk.default ?? sdk) as typeof import('twilio');
  return create(accountSid, authToken, clientOptions) as Client;
}
