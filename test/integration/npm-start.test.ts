/**
 * The repository's first command, as a newcomer types it: `npm start` with no credentials at
 * all serves the example app's login page (memory store, dev outbox), and says where.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(import.meta.dirname, '..', '..');

describe('npm start', () => {
  it('serves the login page with no credentials, and prints its address and the dev outbox', { timeout: 120_000 }, async () => {
    // Only what a fresh shell has: no OTP_SECRET, no Twilio or SMTP settings, port 0 for a free one.
    const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: '0' };
    const child = spawn('npm', ['start', '--silent'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => void (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => void (output += chunk.toString()));
    try {
      const url = await new Promise<string>((resolveUrl, reject) => {
        const timer = setTimeout(() => reject(new Error(`no address printed within 90 s:\n${output}`)), 90_000);
        const check = () => {
          const found = /is running at (http:\/\/localhost:\d+)/.exec(output)?.[1];
          if (found) {
            clearTimeout(timer);
            resolveUrl(found);
          }
        };
        child.stdout.on('data', check);
        child.once('exit', (code) => reject(new Error(`npm start exited with ${code}:\n${output}`)));
      });
      assert.match(output, /\/dev\/outbox/, 'the banner says where the codes are');
      const page = await fetch(`${url}/`, { headers: { accept: 'text/html' }, redirect: 'follow' });
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type') ?? '', /text\/html/);
      const html = await page.text();
      assert.match(html, /<form[^>]*>/i, 'a sign-in form');
      assert.match(html, /name="password"|type="password"/i, 'the first factor: a password field');
    } finally {
      // npm runs tsx, which runs the server: end the whole group.
      try {
        process.kill(-child.pid!, 'SIGINT');
      } catch {}
    }
  });
});
