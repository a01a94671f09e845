/**
 * Twilio's own API description as a mock server (Stoplight Prism), and real `twilio`
 * clients whose HTTP layer points at it and records what the SDK sent.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import twilio from 'twilio';
import type RequestClient from 'twilio/lib/base/RequestClient.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const prismBin = resolve(repoRoot, 'node_modules/.bin/prism');

/** Twilio's OpenAPI spec, kept beside the repository (never copied into it). */
export const twilioSpecPath = process.env.TWILIO_OAI_SPEC ?? resolve(repoRoot, '../shared/twilio-oai/twilio_api_v2010.json');
/** Twilio Lookup v2's OpenAPI spec (lookups.twilio.com), beside the other one. */
export const twilioLookupSpecPath = process.env.TWILIO_LOOKUP_OAI_SPEC ?? resolve(repoRoot, '../shared/twilio-oai/twilio_lookups_v2.json');

/** Shaped as the spec wants: AC + 32 hex digits. */
export const testAccountSid = 'AC0123456789abcdef0123456789abcdef';
export const testAuthToken = 'test-auth-token';

export interface PrismMock {
  baseUrl: string;
  stop(): Promise<void>;
}

export interface StartPrismOptions {
  /** The OpenAPI file to mock; default the Messages/Calls spec (`twilioSpecPath`). */
  spec?: string;
  /** `--errors`: answer a request (or a response) that breaks the spec with an error. Default true. */
  errors?: boolean;
  startTimeoutMs?: number;
}

/** Starts `prism mock [--errors]` on a free loopback port; `null` when the spec is absent. */
export async function startPrism(options: StartPrismOptions | number = {}): Promise<PrismMock | null> {
  const { spec = twilioSpecPath, errors = true, startTimeoutMs = 60_000 } = typeof options === 'number' ? { startTimeoutMs: options } : options;
  if (!existsSync(spec)) return null;
  const args = [prismBin, 'mock', '-h', '127.0.0.1', '-p', '0', ...(errors ? ['--errors'] : []), spec];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const forced = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(forced);
  };

  const baseUrl = await new Promise<string>((listening, reject) => {
    const timer = setTimeout(() => reject(new Error(`Prism did not listen within ${startTimeoutMs} ms:\n${output}`)), startTimeoutMs);
    const onData = (chunk: Buffer): void => {
      // Keep draining the pipes for Prism's whole life, but remember only the tail.
      output = (output + chunk.toString()).slice(-8_000);
      const match = /Prism is listening on (http:\/\/[\d.]+:\d+)/.exec(output.replace(/\x1b\[[\d;]*m/g, ''));
      if (match?.[1]) {
        clearTimeout(timer);
        listening(match[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Prism exited (${code}) before listening:\n${output}`));
    });
  }).catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  return { baseUrl, stop };
}

/**
 * The Lookup v2 mock. Its spec's own examples break its response schema, so it runs without
 * `--errors`: request validation is read from the `sl-violations` header (`requestViolations`).
 */
export function startLookupPrism(startTimeoutMs?: number): Promise<PrismMock | null> {
  return startPrism({ spec: twilioLookupSpecPath, errors: false, ...(startTimeoutMs === undefined ? {} : { startTimeoutMs }) });
}

/** One entry of Prism's `sl-violations` header. */
export interface PrismViolation {
  location: string[];
  severity: string;
  code?: string;
  message: string;
}

export interface RecordedRequest {
  method: string;
  /** Path and query as the SDK asked for them, e.g. `/2010-04-01/Accounts/AC…/Messages.json`. */
  path: string;
  /** The form parameters the SDK sent (`To`, `From`, `Body`, …). */
  form: Record<string, string>;
  /** The HTTP status the server answered with. */
  status?: number;
  /** The query parameters (`Fields`, …), when the SDK sent any. */
  query?: Record<string, string>;
  /** Prism's `sl-violations` header, when it sent one (only without `--errors`). */
  violations?: PrismViolation[];
}

/** The violations Prism found in the request itself (not in its own answer). */
export function requestViolations(record: RecordedRequest | undefined): PrismViolation[] {
  return (record?.violations ?? []).filter((violation) => violation.location[0] === 'request');
}

export interface RecordingClient {
  client: twilio.Twilio;
  /** The HTTP layer alone, for `twilio(sid, token, { httpClient })`. */
  httpClient: twilio.RequestClient;
  requests: RecordedRequest[];
}

type RequestOptions<T = unknown> = RequestClient.RequestOptions<T>;
type Answer<T> = Awaited<ReturnType<RequestClient['request']>> & { body: T };

/** Mock base URLs by Twilio host: `api` for api.twilio.com, `lookups` for lookups.twilio.com. */
export interface TwilioMockRoutes {
  api?: string;
  lookups?: string;
}

export interface RedirectOptions {
  /** Headers added to every request, e.g. `{ Prefer: 'example=fetchLineTypeIntelligence' }` for Prism. */
  headers?: Record<string, string>;
}

/**
 * A real `twilio` client whose requests go to a mock instead of Twilio: `routes` is one base
 * URL for every host, or one per host (a request to a host without a mock fails).
 */
export function twilioClientFor(routes: string | TwilioMockRoutes, clientTimeoutMs?: number, options: RedirectOptions = {}): RecordingClient {
  const requests: RecordedRequest[] = [];
  const baseUrlOf = (host: string): string => {
    if (typeof routes === 'string') return routes;
    const baseUrl = routes[host.split('.')[0] as keyof TwilioMockRoutes];
    if (baseUrl === undefined) throw new Error(`twilioClientFor: no mock for ${host}`);
    return baseUrl;
  };
  class RedirectingClient extends twilio.RequestClient {
    override async request<T>(opts: RequestOptions<T>): Promise<Answer<T>> {
      const target = new URL(opts.uri);
      const record = recordOf(opts, target);
      requests.push(record);
      const headers = { ...opts.headers, ...options.headers };
      const answer = await super.request<T>({ ...opts, headers, uri: `${baseUrlOf(target.hostname)}${target.pathname}${target.search}` });
      record.status = answer.statusCode;
      const violations = headerOf(answer.headers, 'sl-violations');
      if (violations !== undefined) record.violations = JSON.parse(violations) as PrismViolation[];
      return answer;
    }
  }
  const httpClient = new RedirectingClient(clientTimeoutMs === undefined ? {} : { timeout: clientTimeoutMs });
  return { client: twilio(testAccountSid, testAuthToken, { httpClient }), httpClient, requests };
}

/** A real `twilio` client whose HTTP layer answers every request with `status` and `body`. */
export function twilioClientAnswering(status: number, body: unknown): RecordingClient {
  const requests: RecordedRequest[] = [];
  class CannedClient extends twilio.RequestClient {
    override async request<T>(opts: RequestOptions<T>): Promise<Answer<T>> {
      requests.push({ ...recordOf(opts, new URL(opts.uri)), status });
      return { statusCode: status, body: JSON.stringify(body) as T, headers: { 'content-type': 'application/json' } };
    }
  }
  const httpClient = new CannedClient();
  return { client: twilio(testAccountSid, testAuthToken, { httpClient }), httpClient, requests };
}

function recordOf(opts: RequestOptions<unknown>, target: URL): RecordedRequest {
  const strings = (fields: unknown): Record<string, string> =>
    Object.fromEntries(Object.entries((fields ?? {}) as object).map(([key, value]) => [key, String(value)]));
  const record: RecordedRequest = { method: String(opts.method).toUpperCase(), path: `${target.pathname}${target.search}`, form: strings(opts.data) };
  const query = strings(opts.params);
  if (Object.keys(query).length > 0) record.query = query;
  return record;
}

function headerOf(headers: unknown, name: string): string | undefined {
  if (typeof headers !== 'object' || headers === null) return undefined;
  const entry = Object.entries(headers).find(([key]) => key.toLowerCase() === name);
  return typeof entry?.[1] === 'string' ? entry[1] : undefined;
}
