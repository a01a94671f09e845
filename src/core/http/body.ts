import type { IncomingMessage } from 'node:http';

/** Why a body could not be read: `too_large` (413) or `malformed` (400). */
export class BodyError extends Error {
  constructor(
    readonly kind: 'too_large' | 'malformed',
    message: string,
  ) {
    super(message);
  }
}

const tooLarge = (limitBytes: number) => new BodyError('too_large', `The request body is larger than ${limitBytes} bytes.`);

/** True for `application/json` with or without parameters such as `charset`. */
export function isJsonContentType(contentType: string | undefined): boolean {
  return (contentType ?? '').split(';')[0]?.trim().toLowerCase() === 'application/json';
}

/**
 * Reads and parses a JSON request body of at most `limitBytes`, unless a body parser
 * (express.json, koa-bodyparser) already did: then its result is used as is.
 */
export async function readJsonBody(req: IncomingMessage, alreadyParsed: unknown, limitBytes: number): Promise<unknown> {
  if (alreadyParsed !== undefined) return alreadyParsed;
  // An earlier middleware read the stream but left no req.body: waiting for data would hang.
  if (req.readableEnded || req.destroyed || (req as { readableDidRead?: boolean }).readableDidRead === true) {
    throw new BodyError(
      'malformed',
      'The request body was already read by an earlier middleware that did not set req.body: mount express.json() (or nothing) before blockid-otp.',
    );
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) {
    req.resume();
    throw tooLarge(limitBytes);
  }
  const text = req.complete ? readBuffered(req, limitBytes) : await readStream(req, limitBytes);
  try {
    return JSON.parse(text);
  } catch {
    throw new BodyError('malformed', 'The request body is not valid JSON.');
  }
}

/**
 * The raw body as text (a form post), at most `limitBytes`. Read from the stream when nothing
 * has read it yet (a JSON parser that skipped it may still have left `req.body = {}`); else a
 * body parser's result: a string as is, a parsed form (express.urlencoded, koa-bodyparser)
 * written back as `a=1&b=2`.
 */
export async function readTextBody(req: IncomingMessage, alreadyParsed: unknown, limitBytes: number): Promise<string> {
  const read = req.readableEnded || req.destroyed || (req as { readableDidRead?: boolean }).readableDidRead === true;
  if (read) {
    if (typeof alreadyParsed === 'string') return alreadyParsed;
    if (alreadyParsed !== null && typeof alreadyParsed === 'object') {
      return new URLSearchParams(Object.entries(alreadyParsed).filter((entry): entry is [string, string] => typeof entry[1] === 'string')).toString();
    }
    throw new BodyError(
      'malformed',
      'The request body was already read by an earlier middleware that did not set req.body: mount nothing that reads bodies before blockid-otp.',
    );
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limitBytes) {
    req.resume();
    throw tooLarge(limitBytes);
  }
  return req.complete ? readBuffered(req, limitBytes) : readStream(req, limitBytes);
}

/**
 * The whole body has already arrived (`complete`: small bodies come in the packet of the
 * headers) and sits unread in the stream's buffer: one synchronous read takes it all.
 */
function readBuffered(req: IncomingMessage, limitBytes: number): string {
  // A string only if an earlier middleware called req.setEncoding().
  const data: Buffer | string | null = req.read();
  if (data === null) return '';
  if ((typeof data === 'string' ? Buffer.byteLength(data) : data.length) > limitBytes) throw tooLarge(limitBytes);
  return typeof data === 'string' ? data : data.toString('utf8');
}

function readStream(req: IncomingMessage, limitBytes: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    // Settled once; the listeners stay on the finished request (no removal work on every call),
    // and a late 'close' or 'data' finds `settled` and does nothing.
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      reject(error);
    };
    req.on('data', (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      // The listener stays, so the rest of the body keeps flowing past it and is dropped.
      if (size > limitBytes) return fail(tooLarge(limitBytes));
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (settled) return;
      settled = true;
      resolve((chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8'));
    });
    req.on('error', fail);
    // A client that hangs up before the end: the same failure `for await` reports.
    req.on('close', () => {
      if (!settled) fail(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    });
  });
}
