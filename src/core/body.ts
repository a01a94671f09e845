import type { IncomingMessage } from 'node:http';

/** Why a body could not be read: `too_large` (413) or `malformed` (400). */
export class BodyError extends Error {
  constructor(readonly kind: 'too_large' | 'malformed', message: string) {
    super(message);
  }
}

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
    throw new BodyError('too_large', `The request body is larger than ${limitBytes} bytes.`);
  }
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limitBytes) {
        cleanup();
        req.resume();
        reject(new BodyError('too_large', `The request body is larger than ${limitBytes} bytes.`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve();
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    // A client that hangs up before the end: the same failure `for await` reports.
    const onClose = () => onError(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    throw new BodyError('malformed', 'The request body is not valid JSON.');
  }
}
