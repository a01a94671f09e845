// Browser-test helpers: the system Chromium driven by playwright-core (no browser is ever
// downloaded), and an app started on 127.0.0.1 at a free port.
import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { chromium, type Browser } from 'playwright-core';

const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * Launches the system Chromium (Playwright gives it a fresh temporary profile). Fails with
 * a message that says what to install when the binary is missing.
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium was not found at ${CHROMIUM_PATH}. The browser tests drive the system Chromium with playwright-core ` +
        '(they never download a browser): install it (Debian/Ubuntu: `apt-get install chromium`) or set CHROMIUM_PATH ' +
        'to a Chromium or Chrome binary.',
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true, timeout: 30_000 });
}

export interface Listening {
  url: string;
  server: Server;
  /** Stops accepting connections and drops the open ones. */
  stop(): Promise<void>;
}

/** Starts `app` on 127.0.0.1 at a port the OS picks. */
export function listen(app: { listen(port: number, host: string, callback: () => void): Server }): Promise<Listening> {
  return new Promise((resolve, reject) => {
    const server = app.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        server,
        stop: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
    server.once('error', reject);
  });
}
