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

/** Shaped as the spec wants: AC + 32 hex digits. */
export const testAccountSid = 'AC0123456789abcdef0123456789abcdef';
export const testAuthToken = 'test-auth-token';

export interface PrismMock {
  baseUrl: string;
  stop(): Promise<void>;
}

/** Starts `prism mock --errors` on a free loopback port; `null` when the spec is absent. */
export async function startPrism(startTimeoutMs = 60_000): Promise<PrismMock | null> {
  if (!existsSync(twilioSpecPath)) return null;
  const child = spawn(process.execPath, [prismBin, 'mock', '-h', '127.0.0.1', '-p', '0', '--errors', twilioSpecPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
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

export interface RecordedRequest {
  method: string;
  /** Path and query as the SDK asked for them, e.g. `/2010-04-01/Accounts/AC…/Messages.json`. */
  path: string;
  /** The form parameters the SDK sent (`To`, `From`, `Body`, …). */
  form: Record<string, string>;
  /** The HTTP status the server answered with. */
  status?: number;
}

export interface RecordingClient {
  client: twilio.Twilio;
  /** The HTTP layer alone, for `twilio(sid, token, { httpClient })`. */
  httpClient: twilio.RequestClient;
  requests: RecordedRequest[];
}

type RequestOptions<T = unknown> = RequestClient.RequestOptions<T>;
type Answer<T> = Awaited<ReturnType<RequestClient['request']>> & { body: T };

/** A real `twilio` client whose requests go to `baseUrl` instead of https://api.twilio.com. */
export function twilioClientFor(baseUrl: string, clientTimeoutMs?: number): RecordingClient {
  const requests: RecordedRequest[] = [];
  class RedirectingClient extends twilio.RequestClient {
    override async request<T>(opts: RequestOptions<T>): Promise<Answer<T>> {
      const target = new URL(opts.uri);
      const record = recordOf(opts, target);
      requests.push(record);
      const answer = await super.request<T>({ ...opts, uri: `${baseUrl}${target.pathname}${target.search}` });
      record.status = answer.statusCode;
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
  const form = Object.fromEntries(Object.entries(opts.data ?? {}).map(([key, value]) => [key, String(value)]));
  return { method: String(opts.method).toUpperCase(), path: `${target.pathname}${target.search}`, form };
}
