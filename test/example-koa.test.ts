/** The Koa example app (example-app/koa.ts): password, code from the dev outbox, guarded route. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, describe, it } from 'node:test';
import { createKoaExample } from '../example-app/koa.js';
import { ConfigError } from '../example-app/config.js';
import { Client } from './helpers/client.js';
import { closeServer, listen } from './helpers/apps.js';

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
});

async function start() {
  const example = createKoaExample({ NODE_ENV: 'test', OTP_SECRET: 'koa-example-test-secret-0123456789abcdef' });
  const server = createServer(example.app.callback());
  const url = await listen(server);
  closers.push(async () => {
    await closeServer(server);
    await example.close();
  });
  return { example, client: new Client(url), url };
}

describe('example-app/koa.ts', () => {
  it('signs in with password and code, guards /account, and forgets the session at logout', async () => {
    const { client } = await start();
    assert.equal((await client.get('/account')).status, 401);
    const wrong = await client.post('/login', { username: 'john.smith', password: 'nope' });
    assert.equal(wrong.status, 401);
    const login = await client.post('/login', { username: 'john.smith', password: 'blockid-demo' });
    assert.equal(login.status, 200, login.text);
    assert.deepEqual(login.body.channels, ['sms', 'whatsapp', 'voice', 'email']);
    assert.equal((await client.post('/otp/send', { username: 'john.smith', channel: 'sms' })).status, 202);
    let outbox = (await client.get('/dev/outbox')).body as Array<{ channel: string; to: string; text: string }>;
    for (let i = 0; outbox.length === 0 && i < 50; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      outbox = (await client.get('/dev/outbox')).body;
    }
    assert.equal(outbox.length, 1);
    assert.equal(outbox[0]?.to, '+14155550100');
    const code = /\b(\d{6})\b/.exec(outbox[0]?.text ?? '')?.[1];
    assert.ok(code, 'the outbox shows the SMS text with its code');
    const verified = await client.post('/otp/verify', { username: 'john.smith', code });
    assert.equal(verified.status, 200, verified.text);
    const account = await client.get('/account');
    assert.equal(account.status, 200);
    assert.equal(account.body.displayName, 'John Smith');
    assert.equal((await client.post('/logout', {})).status, 204);
    assert.equal((await client.get('/account')).status, 401);
  });

  it('sends nothing for a user who did not pass the password step in this session', async () => {
    const { client, example } = await start();
    assert.equal((await client.post('/otp/send', { username: 'john.smith' })).status, 202);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(example.outbox?.entries().length, 0);
  });

  it('refuses non-JSON logins and has no dev outbox in production', async () => {
    const { client } = await start();
    const form = await client.request('POST', '/login', { raw: 'username=john.smith&password=blockid-demo', contentType: 'application/x-www-form-urlencoded' });
    assert.equal(form.status, 415);
    assert.equal(form.body.error, 'unsupported_media_type');
    assert.throws(() => createKoaExample({ NODE_ENV: 'production' }), ConfigError);
    const production = createKoaExample({
      NODE_ENV: 'production',
      OTP_SECRET: 'p'.repeat(40),
      SESSION_SECRET: 's'.repeat(40),
      SMTP_URL: 'smtp://127.0.0.1:1',
      OTP_EMAIL_FROM: 'Demo <no-reply@example.com>',
    });
    closers.push(() => production.close());
    assert.equal(production.outbox, undefined);
  });
});
