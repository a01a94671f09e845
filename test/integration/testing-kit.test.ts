import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { captureSenders } from '../../src/testing.js';

const sms = (to: string, code: string, username: string) => ({ to, body: `Your code is ${code}`, code, username });
const email = (to: string, code: string, username: string) => ({ to, subject: 'Your code', text: code, html: `<b>${code}</b>`, code, username });

describe('captureSenders (blockid-otp/testing)', () => {
  it('keeps every message as the sender got it, with its channel, in send order', async () => {
    const capture = captureSenders();
    const first = sms('+14155550100', '111111', 'ada');
    await capture.sms.send(first);
    await capture.email.send(email('ada@example.com', '111111', 'ada'));
    await capture.whatsapp.send({ to: '+14155550100', code: '222222', username: 'ada', locale: 'en' });
    await capture.voice.send({ to: '+16135550100', code: '333333', username: 'grace', locale: 'fr-CA', appName: 'Acme' });
    assert.deepEqual(
      capture.outbox.map((m) => m.channel),
      ['sms', 'email', 'whatsapp', 'voice'],
    );
    assert.deepEqual(capture.outbox[0], { channel: 'sms', ...first });
    assert.deepEqual(capture.outbox[3], { channel: 'voice', to: '+16135550100', code: '333333', username: 'grace', locale: 'fr-CA', appName: 'Acme' });
    assert.equal(await capture.sms.send(sms('+14155550100', '444444', 'ada')), undefined, 'send resolves with nothing');
  });

  it('lastCode finds the newest code by username or by destination in any phone writing', async () => {
    const capture = captureSenders();
    await capture.sms.send(sms('+14155550100', '111111', 'john.smith'));
    await capture.email.send(email('John@Example.com', '111111', 'john.smith'));
    await capture.sms.send(sms('+16135550100', '222222', 'grace'));
    await capture.sms.send(sms('+14155550100', '333333', 'john.smith'));
    assert.equal(capture.lastCode('john.smith'), '333333');
    assert.equal(capture.lastCode(' John.Smith '), '333333', 'the default username normalization');
    for (const writing of ['+14155550100', '4155550100', '(415) 555-0100', '415-555-0100', '415.555.0100', '+1 415 555 0100', '1 (415) 555-0100']) {
      assert.equal(capture.lastCode(writing), '333333', writing);
    }
    assert.equal(capture.lastCode('613-555-0100'), '222222');
    assert.equal(capture.lastCode('John@example.COM'), '111111', 'the domain is compared case-insensitively');
    assert.throws(() => capture.lastCode('john@example.com'), /no code was sent to "john@example.com"/, 'the local part is exact');
  });

  it('lastCode throws a clear error that names what was captured, never a code', async () => {
    const capture = captureSenders();
    assert.throws(() => capture.lastCode('ada'), { message: /no code was sent to "ada" \(nothing was captured\)/ });
    await capture.sms.send(sms('+14155550100', '987654', 'john.smith'));
    assert.throws(
      () => capture.lastCode('ada'),
      (error: Error) => {
        assert.match(error.message, /1 message captured, for: john\.smith \(sms \+14155550100\)/);
        assert.ok(!error.message.includes('987654'));
        return true;
      },
    );
    assert.throws(() => capture.lastCode('4155550199'), /no code was sent/);
  });

  it('messagesTo lists the messages for a username or destination, oldest first', async () => {
    const capture = captureSenders();
    await capture.sms.send(sms('+14155550100', '111111', 'john.smith'));
    await capture.email.send(email('ada@example.com', '222222', 'ada'));
    await capture.whatsapp.send({ to: '+14155550100', code: '333333', username: 'john.smith', locale: 'en' });
    assert.deepEqual(
      capture.messagesTo('(415) 555-0100').map((m) => m.code),
      ['111111', '333333'],
    );
    assert.deepEqual(
      capture.messagesTo('ada').map((m) => m.channel),
      ['email'],
    );
    assert.deepEqual(capture.messagesTo('nobody'), []);
  });

  it('waitForCode resolves with a code captured before the call', async () => {
    const capture = captureSenders();
    await capture.sms.send(sms('+14155550100', '111111', 'ada'));
    await capture.sms.send(sms('+14155550100', '222222', 'ada'));
    assert.equal(await capture.waitForCode('ada'), '222222');
    assert.equal(await capture.waitForCode('+1 (415) 555-0100', { timeoutMs: 0 }), '222222');
  });

  it('waitForCode waits for a code captured after the call, ignoring other users', async () => {
    const capture = captureSenders();
    const waiting = capture.waitForCode('ada@example.com');
    setTimeout(() => void capture.sms.send(sms('+14155550100', '999999', 'john.smith')), 5);
    setTimeout(() => void capture.email.send(email('ada@EXAMPLE.com', '123456', 'ada')), 15);
    assert.equal(await waiting, '123456');
  });

  it('nextCode ignores codes captured before the call', async () => {
    const capture = captureSenders();
    await capture.sms.send(sms('+14155550100', '111111', 'ada'));
    const next = capture.nextCode('ada');
    await capture.sms.send(sms('+14155550100', '222222', 'ada'));
    assert.equal(await next, '222222');
    await assert.rejects(capture.nextCode('ada', { timeoutMs: 20 }), /no new code was sent to "ada" within 20 ms/);
  });

  it('waitForCode rejects after timeoutMs, within bounds, with a clear error', async () => {
    const capture = captureSenders();
    await capture.email.send(email('ada@example.com', '555555', 'ada'));
    const started = performance.now();
    await assert.rejects(capture.waitForCode('grace', { timeoutMs: 50 }), (error: Error) => {
      assert.match(error.message, /^captureSenders: no code was sent to "grace" within 50 ms \(1 message captured, for: ada \(email ada@example\.com\)\)\.$/);
      assert.ok(!error.message.includes('555555'));
      return true;
    });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 45 && elapsed < 1000, `rejected after ${elapsed} ms`);
  });

  it('refuses a bad timeoutMs with a TypeError (as a rejection)', async () => {
    const capture = captureSenders();
    for (const timeoutMs of [-1, Number.NaN, Infinity, 2 ** 31, '10' as unknown as number]) {
      await assert.rejects(capture.waitForCode('ada', { timeoutMs }), { name: 'TypeError', message: /timeoutMs/ });
    }
  });

  it('waitForMessage resolves with a matching message, old or new', async () => {
    const capture = captureSenders();
    await capture.sms.send(sms('+14155550100', '111111', 'ada'));
    assert.equal((await capture.waitForMessage((m) => m.channel === 'sms')).code, '111111');
    const voice = capture.waitForMessage((m) => m.channel === 'voice', { timeoutMs: 1000 });
    await capture.voice.send({ to: '+14155550100', code: '222222', username: 'ada', locale: 'en', appName: 'Acme' });
    const message = await voice;
    assert.ok(message.channel === 'voice' && message.appName === 'Acme');
    await assert.rejects(
      capture.waitForMessage(() => false, { timeoutMs: 10 }),
      /no matching message was sent within 10 ms/,
    );
  });

  it('clear empties the outbox in place, and pending waits still see new messages', async () => {
    const capture = captureSenders();
    const kept = capture.outbox;
    await capture.sms.send(sms('+14155550100', '111111', 'ada'));
    capture.clear();
    assert.equal(capture.outbox, kept);
    assert.equal(kept.length, 0);
    assert.throws(() => capture.lastCode('ada'), /no code was sent/);
    const waiting = capture.waitForCode('ada');
    capture.clear();
    await capture.sms.send(sms('+14155550100', '222222', 'ada'));
    assert.equal(await waiting, '222222');
    assert.deepEqual(
      kept.map((m) => m.code),
      ['222222'],
    );
  });

  it('keeps captures apart', async () => {
    const one = captureSenders();
    const two = captureSenders();
    await one.sms.send(sms('+14155550100', '111111', 'ada'));
    assert.equal(two.outbox.length, 0);
    assert.throws(() => two.lastCode('ada'));
  });

  it('leaves no timer behind: a script that waited with a long timeout exits promptly', () => {
    const kit = fileURLToPath(new URL('../../src/testing.ts', import.meta.url));
    const script = `
      const { captureSenders } = await import(${JSON.stringify(kit)});
      const capture = captureSenders();
      const waiting = capture.waitForCode('ada', { timeoutMs: 60000 });
      const next = capture.nextCode('4155550100', { timeoutMs: 60000 });
      await capture.sms.send({ to: '+14155550100', body: 'x', code: '123456', username: 'ada' });
      console.log(await waiting, await next);
    `;
    const started = Date.now();
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.equal(child.stdout.trim(), '123456 123456');
    assert.ok(Date.now() - started < 15_000, 'exited long before the 60 s timeouts');
  });
});
