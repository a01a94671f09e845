/**
 * SMTP servers for tests: an in-process sink that parses and keeps every message, a port
 * nothing listens on, and a server that accepts connections but never says a word.
 */
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

export interface SmtpSink {
  port: number;
  /** `smtp://127.0.0.1:<port>` */
  url: string;
  messages: ParsedMail[];
  /** Resolves once `count` messages have arrived (rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<ParsedMail[]>;
  stop(): Promise<void>;
}

export interface SmtpSinkOptions {
  /** Refuse every recipient with this SMTP reply, e.g. `{ responseCode: 550, message: 'No such user' }`. */
  rejectRecipient?: { responseCode: number; message: string };
}

/** A plain-text SMTP server on a free loopback port, no TLS, no auth. */
export async function startSmtpSink(options: SmtpSinkOptions = {}): Promise<SmtpSink> {
  const messages: ParsedMail[] = [];
  const waiters = new Set<() => void>();
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(_address, _session, callback) {
      const reject = options.rejectRecipient;
      callback(reject ? Object.assign(new Error(reject.message), { responseCode: reject.responseCode }) : undefined);
    },
    onData(stream, _session, callback) {
      simpleParser(stream).then(
        (mail) => {
          messages.push(mail);
          for (const wake of waiters) wake();
          callback();
        },
        (error: Error) => callback(error),
      );
    },
  });
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  const { port } = server.server.address() as AddressInfo;

  const waitFor = (count: number, timeoutMs = 5_000): Promise<ParsedMail[]> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (messages.length < count) return;
        cleanup();
        resolve(messages.slice(0, count));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`expected ${count} message(s) within ${timeoutMs} ms, got ${messages.length}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const stop = (): Promise<void> => new Promise((resolve) => server.close(() => resolve()));
  return { port, url: `smtp://127.0.0.1:${port}`, messages, waitFor, stop };
}

/** A loopback port that was free a moment ago and has nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

export interface SilentServer {
  port: number;
  stop(): Promise<void>;
}

/** Accepts TCP connections and never answers: no greeting, no replies. */
export async function startSilentServer(): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const stop = async (): Promise<void> => {
    for (const socket of sockets) socket.destroy();
    server.close();
    await once(server, 'close');
  };
  return { port, stop };
}
