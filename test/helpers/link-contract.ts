/**
 * The sign-in link's HTTP contract, run once per framework and store: scanners' GETs change
 * nothing, only the session that asked signs in (once), other sessions and cross-site posts
 * sign nothing in, and a wrong token spends the code's attempt budget.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AppFactory, TestApp } from './apps.js';
import { Client, type Reply } from './client.js';

export const LINK_URL = 'http://localhost/otp/link';

/** The token of the sign-in link in an email's text. */
export function tokenIn(text: string): string {
  const match = /\?t=([A-Za-z0-9_-]+)/.exec(text);
  assert.ok(match, 'the email carries a sign-in link');
  return match[1]!;
}

/** Throws when `token` appears in a reply anywhere but the confirmation form's hidden field. */
function assertTokenOnlyInForm(reply: Reply, token: string): void {
  const headers = [...reply.headers].map(([name, value]) => `${name}: ${value}`).join('\n');
  assert.ok(!headers.includes(token), 'no token in a response header');
  assert.ok(!reply.text.split(`name="t" value="${token}"`).join('').includes(token), 'no token in the page but in its form field');
}

/** A form post of the confirmation page, with the headers a browser (or an attacker) sends. */
export function postLink(
  client: Client,
  fields: Record<string, string>,
  headers: Record<string, string> = { 'sec-fetch-site': 'same-origin' },
): Promise<Reply> {
  return client.request('POST', '/otp/link', { raw: new URLSearchParams(fields).toString(), contentType: 'application/x-www-form-urlencoded', headers });
}

/** Asks a code for ada.lovelace (email only) from `client`; returns the code and the link's token. */
export async function askCode(app: TestApp, client: Client, username = 'ada.lovelace'): Promise<{ code: string; token: string }> {
  const before = app.capture.messages.length;
  assert.equal((await client.post('/otp/send', { username, channel: 'email' })).status, 202);
  const [message] = (await app.capture.waitFor(before + 1)).slice(before);
  assert.equal(message?.channel, 'email');
  const email = message as { text: string; html: string; code: string };
  const token = tokenIn(email.text);
  assert.ok(email.text.includes(email.code) && email.html.includes(email.code), 'the email carries the code');
  assert.ok(email.html.includes(`${LINK_URL}?t=${token}`), 'the HTML email carries the link');
  return { code: email.code, token };
}

const status = async (client: Client) => (await client.get('/otp/status')).body as { verified: boolean; method?: string; username?: string };

export function describeLinkContract(name: string, makeApp: AppFactory): void {
  describe(`sign-in link on ${name}`, () => {
    let app: TestApp;
    before(async () => {
      app = await makeApp({ otp: { link: { url: LINK_URL, redirectTo: '/account' } } });
    });
    after(() => app?.close());

    it('50 GETs and HEADs, from any session or none, leave the link and the code working', async () => {
      const asker = new Client(app.url);
      const { code, token } = await askCode(app, asker);
      const scanner = new Client(app.url);
      for (let i = 0; i < 25; i += 1) {
        for (const client of [asker, scanner, new Client(app.url)]) {
          const page = await client.request(i % 2 === 0 ? 'GET' : 'HEAD', `/otp/link?t=${token}`);
          assert.equal(page.status, 200);
          assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
          assert.equal(page.headers.get('cache-control'), 'no-store');
          assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
          assert.doesNotMatch(page.headers.get('content-security-policy') ?? '', /script|unsafe-inline/);
          assertTokenOnlyInForm(page, token);
        }
      }
      const page = await asker.get(`/otp/link?t=${token}`);
      assert.match(page.text, /<form method="post" action="link">/);
      assert.match(page.text, /<button type="submit">Sign in<\/button>/);
      assert.doesNotMatch(page.text, /<script/i);
      // The code still works after all that (and it ends the link).
      assert.equal((await asker.post('/otp/verify', { username: 'ada.lovelace', code })).status, 200);
      const used = await postLink(asker, { t: token });
      assert.equal(used.status, 200);
      assert.match(used.text, /cannot be used/);
    });

    it('the session that asked signs in once (303, method link); a second POST and the code get the "used" answers', async () => {
      const asker = new Client(app.url);
      const { code, token } = await askCode(app, asker);
      for (let i = 0; i < 5; i += 1) await asker.request('HEAD', `/otp/link?t=${token}`);
      const signedIn = await postLink(asker, { t: token });
      assert.equal(signedIn.status, 303);
      assert.equal(signedIn.headers.get('location'), '/account');
      assertTokenOnlyInForm(signedIn, token);
      const flag = await status(asker);
      assert.deepEqual([flag.verified, flag.method, flag.username], [true, 'link', 'ada.lovelace']);
      assert.equal((await asker.get('/account', 'application/json')).status, 200);
      const again = await postLink(asker, { t: token });
      assert.equal(again.status, 200);
      assert.match(again.text, /cannot be used/);
      assert.equal((await asker.post('/otp/verify', { username: 'ada.lovelace', code })).status, 401);
      // One page for unknown, used and expired tokens.
      const unknown = await postLink(new Client(app.url), { t: token.replace(/^./, token[0] === 'A' ? 'B' : 'A') });
      assert.equal(unknown.text, again.text);
    });

    it("another session's POST signs nothing in and spends nothing of the real session's code", async () => {
      const asker = new Client(app.url);
      const { token } = await askCode(app, asker);
      const otherDevice = new Client(app.url);
      await otherDevice.get(`/otp/link?t=${token}`);
      for (let i = 0; i < 8; i += 1) {
        const reply = await postLink(otherDevice, { t: token });
        assert.equal(reply.status, 200);
        assert.match(reply.text, /Type the code from the email on the device where you asked for it/);
        assertTokenOnlyInForm(reply, token);
      }
      assert.equal((await status(otherDevice)).verified, false);
      // An attacker who also asked a code of their own for that username gets the same page.
      const attacker = new Client(app.url);
      await askCode(app, attacker);
      assert.match((await postLink(attacker, { t: token })).text, /Type the code/);
      assert.equal((await status(attacker)).verified, false);
      assert.equal((await postLink(asker, { t: token })).status, 303);
    });

    it('a cross-site POST gets 403 (Origin, Sec-Fetch-Site, or neither without the page field) and changes nothing', async () => {
      const asker = new Client(app.url);
      const { token } = await askCode(app, asker);
      const refusals: Array<[Record<string, string>, Record<string, string>]> = [
        [{ t: token }, { origin: 'https://evil.example' }],
        [{ t: token }, { origin: 'https://evil.example', 'sec-fetch-site': 'same-origin' }],
        [{ t: token }, { 'sec-fetch-site': 'cross-site' }],
        [{ t: token }, { 'sec-fetch-site': 'same-site' }],
        [{ t: token }, {}],
        [{ t: token, c: '1.forged' }, {}],
        [{ t: token }, { origin: 'null' }],
      ];
      for (const [fields, headers] of refusals) {
        const reply = await postLink(asker, fields, headers);
        assert.equal(reply.status, 403, JSON.stringify(headers));
        assert.match(reply.headers.get('content-type') ?? '', /^text\/html/);
      }
      assert.equal((await status(asker)).verified, false);
      // The page's own field lets a browser that sends neither header through; so does the request's own Origin.
      const page = await asker.get(`/otp/link?t=${token}`);
      const field = /name="c" value="([^"]+)"/.exec(page.text)?.[1];
      assert.ok(field);
      // Another session's field does not pass for this one.
      const foreign = /name="c" value="([^"]+)"/.exec((await new Client(app.url).get(`/otp/link?t=${token}`)).text)?.[1];
      assert.equal((await postLink(asker, { t: token, c: foreign! }, {})).status, 403);
      assert.equal((await postLink(asker, { t: token, c: field }, {})).status, 303);
      assert.equal((await status(asker)).method, 'link');
    });

    it("a wrong token counts as a wrong guess of the session's code: the budget burns it", async () => {
      const asker = new Client(app.url);
      const { code, token } = await askCode(app, asker);
      const maxAttempts = app.service.options.maxAttempts;
      for (let i = 0; i < maxAttempts; i += 1) {
        const wrong = `${i}${token.slice(1, 21)}x${token.slice(22)}`; // the random part changed, the reference kept
        const reply = await postLink(asker, { t: wrong });
        assert.equal(reply.status, 200);
        assert.match(reply.text, /cannot be used/);
      }
      const burned = await postLink(asker, { t: token });
      assert.equal(burned.status, 429);
      assert.equal((await asker.post('/otp/verify', { username: 'ada.lovelace', code })).status, 429);
      assert.equal((await status(asker)).verified, false);
    });

    it('a garbage token from the session that asked spends its budget too', async () => {
      const asker = new Client(app.url);
      const { code } = await askCode(app, asker);
      const stranger = new Client(app.url);
      for (let i = 0; i < 10; i += 1) assert.match((await postLink(stranger, { t: `garbage-${i}` })).text, /cannot be used/);
      for (let i = 0; i < app.service.options.maxAttempts; i += 1) await postLink(asker, { t: 'garbage' });
      assert.equal((await asker.post('/otp/verify', { username: 'ada.lovelace', code })).status, 429);
    });

    it('pages are localized (fr-CA) and a JSON POST is refused with 415', async () => {
      const asker = new Client(app.url);
      const { token } = await askCode(app, asker);
      const page = await asker.request('GET', `/otp/link?t=${token}`, { headers: { 'accept-language': 'fr-CA,fr;q=0.9' } });
      assert.match(page.text, /<html lang="fr-CA">/);
      assert.match(page.text, /Se connecter/);
      const json = await asker.request('POST', '/otp/link', { json: { t: token } });
      assert.equal(json.status, 415);
      assert.equal(json.body.error, 'unsupported_media_type');
    });
  });
}
