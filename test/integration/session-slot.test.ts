/**
 * A session that already exists (the app stored something in it, e.g. at a password step)
 * but has never sent a code: parallel first sends must agree on one code slot, so the
 * per-session cooldown admits one of them, not one per request.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import express from 'express';
import session from 'express-session';
import { blockidOtp } from '../../src/index.js';
import { baseOptions, closeServer, expressApp, users } from '../helpers/apps.js';
import { captureSenders } from '../helpers/capture.js';
import { Client } from '../helpers/client.js';

describe('parallel first sends from one existing session (express-session)', () => {
  it('admit exactly one: the slot comes from the session id, not a nonce per request', async () => {
    const capture = captureSenders();
    const app = express();
    app.use(session({ secret: 'session-secret-for-tests', resave: false, saveUninitialized: false, name: 'sid' }));
    app.post('/password', (req, res) => {
      (req.session as unknown as Record<string, unknown>).passwordOk = true;
      res.json({ ok: true });
    });
    app.use(
      blockidOtp(
        baseOptions(capture, { limits: { sendsPerUsername: { points: 100, windowSeconds: 3600 }, sendsPerDestination: { points: 100, windowSeconds: 3600 } } }),
      ),
    );
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const browser = new Client(url);
      assert.equal((await browser.post('/password', {})).status, 200);
      assert.ok(browser.cookie, 'the session exists before any send');
      const replies = await Promise.all(
        Array.from({ length: 30 }, () => {
          const twin = new Client(url);
          twin.cookie = browser.cookie;
          return twin.post('/otp/send', { username: 'john.smith' });
        }),
      );
      const statuses = replies.map((r) => r.status);
      console.log(
        `# 30 parallel first sends from one existing session: ${statuses.filter((s) => s === 202).length} × 202, ${statuses.filter((s) => s === 429).length} × 429`,
      );
      assert.equal(statuses.filter((s) => s === 202).length, 1);
      assert.equal(statuses.filter((s) => s === 429).length, 29);
      await capture.waitFor(2);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(
        capture.messages.length,
        Object.keys(users['john.smith'] ?? {}).filter((k) => k === 'smsTo' || k === 'emailTo').length,
        'one message per channel',
      );
      const verified = await browser.post('/otp/verify', { username: 'john.smith', code: capture.lastCode('john.smith') });
      assert.equal(verified.status, 200, verified.text);
    } finally {
      await closeServer(server);
    }
  });
});

describe('an unbound generateOtp() code and HTTP sessions', () => {
  it('is never verified, burned or counted from POST /otp/verify; verifyOtp() still takes it', async () => {
    const app = await expressApp({ otp: { limits: { failedVerifications: 3, maxConsecutiveFailures: 3 } } });
    try {
      await app.service.generateOtp('ada.lovelace', { emailTo: 'ada@example.com' });
      const code = app.capture.lastCode('ada.lovelace');
      const stranger = new Client(app.url);
      const right = await stranger.post('/otp/verify', { username: 'ada.lovelace', code });
      assert.equal(right.status, 401, 'the right code from a session that never sent');
      const wrong = `${(Number(code[0]) + 1) % 10}${code.slice(1)}`;
      const statuses = [];
      for (let i = 0; i < 20; i++) statuses.push((await new Client(app.url).post('/otp/verify', { username: 'ada.lovelace', code: wrong })).status);
      console.log(`# 21 HTTP guesses at an unbound code from sessions without one: ${statuses.filter((s) => s === 401).length + 1} × 401`);
      assert.ok(
        statuses.every((status) => status === 401),
        statuses.join(','),
      );
      assert.deepEqual(await app.service.verifyOtp('ada.lovelace', code), { ok: true }, 'no attempt spent, no lock');
    } finally {
      await app.close();
    }
  });
});
