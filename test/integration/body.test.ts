/**
 * The JSON body reader (core/http/body.ts) on a real HTTP server fed through raw sockets: a body
 * that has fully arrived is taken in one synchronous read, one still arriving is streamed;
 * both give the same results, limits and errors, and the connection stays usable.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { BodyError, readJsonBody } from '../../src/core/http/body.js';

const LIMIT = 64;
type Outcome = { complete: boolean; value?: unknown; error?: { kind?: string; code?: string; message: string } };

let server: Server;
let port = 0;
const outcomes: Outcome[] = [];
let nextOutcome: ((outcome: Outcome) => void) | undefined;

const record = (outcome: Outcome) => {
  outcomes.push(outcome);
  nextOutcome?.(outcome);
};

before(async () => {
  server = createServer((req: IncomingMessage, res) => {
    // As after an asynchronous session load: the parser has had its chance to push the body.
    setImmediate(async () => {
      const complete = req.complete;
      try {
        const value = await readJsonBody(req, undefined, LIMIT);
        record({ complete, value });
        res.end(JSON.stringify(value));
      } catch (error) {
        const e = error as Error & { kind?: string; code?: string };
        record({ complete, error: { kind: e instanceof BodyError ? e.kind : undefined, code: e.code, message: e.message } });
        res.statusCode = e instanceof BodyError && e.kind === 'too_large' ? 413 : 400;
        res.end('{}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as { port: number }).port;
});
after(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Writes `parts` with `gapMs` between them on one socket; resolves with the outcome and what the socket received. */
function exchange(parts: string[], { gapMs = 0, hangUp = false } = {}): Promise<{ outcome: Outcome; received: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    let outcome: Outcome | undefined;
    const finish = () => outcome !== undefined && resolve({ outcome, received });
    nextOutcome = (o) => {
      outcome = o;
      nextOutcome = undefined;
      if (hangUp) finish();
    };
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n\r\n')) {
        socket.end();
      }
    });
    socket.on('close', () => (outcome ? finish() : setTimeout(finish, 50)));
    socket.on('error', reject);
    (async () => {
      for (const [i, part] of parts.entries()) {
        if (i > 0 && gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
        socket.write(part);
      }
      if (hangUp) setTimeout(() => socket.destroy(), gapMs);
    })();
  });
}

const head = (body: string, headers = `Content-Length: ${Buffer.byteLength(body)}`) =>
  `POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${headers}\r\n\r\n`;

describe('readJsonBody', () => {
  it('takes a body that arrived with the headers in one synchronous read', async () => {
    const body = '{"username":"jöhn","n":1}';
    const { outcome, received } = await exchange([head(body) + body]);
    assert.equal(outcome.complete, true, 'the whole body was there before the read');
    assert.deepEqual(outcome.value, { username: 'jöhn', n: 1 });
    assert.match(received, /^HTTP\/1\.1 200/);
  });

  it('streams a body that is still arriving, with the same result', async () => {
    const body = '{"username":"jöhn","n":1}';
    const { outcome } = await exchange([head(body) + body.slice(0, 9), body.slice(9)], { gapMs: 40 });
    assert.equal(outcome.complete, false, 'the body was not all there yet');
    assert.deepEqual(outcome.value, { username: 'jöhn', n: 1 });
  });

  for (const [name, gapMs, complete] of [
    ['arrived', 0, true],
    ['arriving', 40, false],
  ] as const) {
    it(`refuses a chunked body over the limit that gives no length (${name})`, async () => {
      const big = `{"a":"${'x'.repeat(LIMIT)}"}`;
      const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
      const { outcome, received } = await exchange([head('', 'Transfer-Encoding: chunked') + chunk(big.slice(0, 20)), `${chunk(big.slice(20))}0\r\n\r\n`], {
        gapMs,
      });
      assert.equal(outcome.complete, complete);
      assert.equal(outcome.error?.kind, 'too_large', JSON.stringify(outcome));
      assert.match(received, /^HTTP\/1\.1 413/);
    });

    it(`calls an empty or broken body malformed (${name})`, async () => {
      for (const body of ['', '{"username":']) {
        const parts = gapMs === 0 || body === '' ? [head(body) + body] : [head(body) + body.slice(0, 3), body.slice(3)];
        const { outcome } = await exchange(parts, { gapMs });
        assert.equal(outcome.error?.kind, 'malformed', JSON.stringify(outcome));
        assert.equal(outcome.error?.message, 'The request body is not valid JSON.');
      }
    });
  }

  it('reports a client that hangs up in the middle of its body', async () => {
    const body = '{"username":"john.smith"}';
    const { outcome } = await exchange([head(body) + body.slice(0, 5)], { gapMs: 40, hangUp: true });
    assert.equal(outcome.complete, false);
    // Node reports the reset as the request's 'error' (ECONNRESET, "aborted") or as a bare 'close'.
    assert.ok(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE'].includes(outcome.error?.code ?? ''), JSON.stringify(outcome));
    assert.equal(outcome.error?.kind, undefined, 'not a body error: the request is gone');
  });

  it('leaves a keep-alive connection ready for the next request after a synchronous read', async () => {
    const first = '{"n":1}';
    const second = '{"n":2}';
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    const seen = outcomes.length;
    socket.write(head(first) + first);
    await new Promise((r) => setTimeout(r, 60));
    socket.write(head(second) + second);
    for (let i = 0; i < 50 && (received.match(/HTTP\/1\.1 200/g) ?? []).length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    socket.destroy();
    assert.deepEqual(
      outcomes.slice(seen).map((o) => [o.complete, o.value]),
      [
        [true, { n: 1 }],
        [true, { n: 2 }],
      ],
    );
    assert.equal((received.match(/HTTP\/1\.1 200/g) ?? []).length, 2, received);
  });
});
