// Server-rendered pages. No inline scripts or styles: the CSP allows only files from 'self'.
import { html, type SafeHtml } from './html.js';
import { DEMO_PASSWORD, type DemoUser } from './users.js';

interface LayoutOptions {
  appName: string;
  title: string;
  body: SafeHtml;
  scripts?: string[];
  /** Shows the dev-outbox link in the footer. */
  devOutbox?: boolean;
}

export function layout({ appName, title, body, scripts = [], devOutbox = false }: LayoutOptions): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>${title} · ${appName}</title>
<link rel="stylesheet" href="/assets/app.css">
${scripts.map((src) => html`<script type="module" src="${src}"></script>\n`)}
</head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<header class="site-header">
  <a class="brand" href="/"><span class="brand-mark" aria-hidden="true"></span>${appName}</a>
</header>
<main id="main" class="page" tabindex="-1">
${body}
</main>
<footer class="site-footer">
  <p>Two-step sign-in with <code>blockid-otp</code>: a password, then a one-time code by text message or email.</p>
  ${devOutbox ? html`<p><a href="/dev/outbox">Dev outbox</a>: messages the app would have sent (development only).</p>` : ''}
</footer>
</body>
</html>
`.value;
}

function hiddenCsrf(token: string): SafeHtml {
  return html`<input type="hidden" name="_csrf" value="${token}">`;
}

export interface SignInView {
  csrfToken: string;
  username?: string;
  error?: string;
  notice?: string;
  users: readonly DemoUser[];
}

export function signInPage(view: SignInView): SafeHtml {
  return html`<section class="card" aria-labelledby="sign-in-title">
  <h1 id="sign-in-title">Sign in</h1>
  <p class="lead">Step 1 of 2: your password. Then we send you a one-time code.</p>
  ${view.notice ? html`<p class="notice" role="status">${view.notice}</p>` : ''}
  ${view.error ? html`<p class="alert" role="alert" id="sign-in-error">${view.error}</p>` : ''}
  <form method="post" action="/login" class="stack" ${view.error ? html`aria-describedby="sign-in-error"` : ''}>
    ${hiddenCsrf(view.csrfToken)}
    <div class="field">
      <label for="username">Username</label>
      <input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="256" value="${view.username ?? ''}" ${view.username ? '' : html`autofocus`}>
    </div>
    <div class="field">
      <label for="password">Password</label>
      <input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024" ${view.username ? html`autofocus` : ''}>
    </div>
    <button type="submit" class="button primary">Continue</button>
  </form>
</section>
<aside class="card demo" aria-labelledby="demo-title">
  <h2 id="demo-title">Demo accounts</h2>
  <p>Every demo account uses the password <kbd>${DEMO_PASSWORD}</kbd>.</p>
  <table>
    <thead><tr><th scope="col">Username</th><th scope="col">Gets codes by</th></tr></thead>
    <tbody>
      ${view.users.map(
        (user) => html`<tr><td><code>${user.username}</code></td><td>${[
          user.phone ? `SMS to ${user.phone}` : '',
          user.email ? `email to ${user.email}` : '',
        ]
          .filter(Boolean)
          .join(' and ')}</td></tr>`,
      )}
    </tbody>
  </table>
</aside>`;
}

export interface ChannelChoice {
  channel: 'sms' | 'email' | 'both';
  /** Visible button text, e.g. "Send by SMS". */
  label: string;
  /** Where the code goes, masked for the screen: "(•••) •••-0100". */
  detail: string;
  /** The same for assistive technology: "the phone number ending in 0100". */
  spoken: string;
}

export interface CodeStepView {
  user: DemoUser;
  choices: ChannelChoice[];
  basePath: string;
  codeLength: number;
  ttlSeconds: number;
  devOutbox: boolean;
}

export function codeStepPage(view: CodeStepView): SafeHtml {
  const { user, choices } = view;
  return html`<section class="card" aria-labelledby="code-title" id="otp"
  data-username="${user.username}" data-base-path="${view.basePath}" data-code-length="${view.codeLength}"
  data-ttl-seconds="${view.ttlSeconds}" data-next="/account">
  <h1 id="code-title">Enter your code</h1>
  <p class="lead">Step 2 of 2. Hello ${user.displayName}: we send you a ${view.codeLength}-digit code to finish signing in.</p>
  ${
    choices.length === 0
      ? html`<p class="alert" role="alert">We have no way to send you a code. Contact support to add a phone number or an email address.</p>`
      : html`<div id="channels" class="channels" role="group" aria-label="Send the code">
    ${choices.map(
      (choice) => html`<button type="button" class="button channel" data-channel="${choice.channel}"
      data-spoken="${choice.spoken}" aria-label="${choice.label} to ${choice.spoken}">
      <span class="channel-label">${choice.label}</span><span class="channel-detail">${choice.detail}</span></button>`,
    )}
  </div>`
  }
  <p id="status" class="status" role="status" aria-live="polite" aria-atomic="true"></p>
  <form id="verify-form" class="stack verify" novalidate>
    <div class="field">
      <label for="code">Code</label>
      <input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code"
        pattern="[0-9]*" maxlength="${view.codeLength + 4}" required spellcheck="false" aria-describedby="code-hint feedback">
      <p id="code-hint" class="hint">${view.codeLength} digits. Codes expire after ${Math.round(view.ttlSeconds / 60)} minutes.</p>
    </div>
    <p id="feedback" class="feedback" aria-live="assertive" aria-atomic="true"></p>
    <button type="submit" class="button primary" id="verify">Verify</button>
  </form>
  <p id="resend-row" class="resend-row" hidden>
    <button type="button" id="resend" class="button link" disabled>Resend code</button>
    <span id="other-way-group" class="other-way"><span aria-hidden="true">·</span>
    <button type="button" id="other-way" class="button link">Send another way</button></span>
  </p>
  <p class="aside-links"><a href="/login">Not ${user.username}? Sign in as someone else</a>
  ${view.devOutbox ? html`<a href="/dev/outbox" target="_blank" rel="noopener">Open the dev outbox</a>` : ''}</p>
  <noscript><p class="alert">This step needs JavaScript to send and check your code.</p></noscript>
</section>`;
}

const timeFormat = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });

function formatTime(date: Date): string {
  return `${timeFormat.format(date)} UTC`;
}

/** `4155550100` → `(415) 555-0100`; anything else as given. */
function formatPhone(phone: string): string {
  const digits = phone.replace(/\D/g, '').replace(/^1(?=\d{10}$)/, '');
  return digits.length === 10 ? `(${digits.slice(0, 3)}) ${digits.slice(3, 6)}-${digits.slice(6)}` : phone;
}

export interface AccountView {
  user: DemoUser;
  verifiedAt: Date;
  csrfToken: string;
}

export function accountPage({ user, verifiedAt, csrfToken }: AccountView): SafeHtml {
  return html`<section class="card" aria-labelledby="account-title">
  <p class="badge">Verified</p>
  <h1 id="account-title">Hello, ${user.displayName}</h1>
  <p class="lead">You are signed in as <strong class="username">${user.username}</strong>.</p>
  <dl class="facts">
    <dt>Verified</dt><dd><time datetime="${verifiedAt.toISOString()}">${formatTime(verifiedAt)}</time>, by one-time code</dd>
    ${user.phone ? html`<dt>Phone</dt><dd>${formatPhone(user.phone)}</dd>` : ''}
    ${user.email ? html`<dt>Email</dt><dd>${user.email}</dd>` : ''}
  </dl>
  <form method="post" action="/logout">
    ${hiddenCsrf(csrfToken)}
    <button type="submit" class="button secondary">Sign out</button>
  </form>
</section>`;
}

export interface OutboxEntryView {
  channel: 'sms' | 'email' | 'whatsapp' | 'voice';
  to: string;
  subject?: string;
  text: string;
  at: Date;
}

export function outboxPage(entries: OutboxEntryView[], channelsInUse: string[]): SafeHtml {
  return html`<section class="card wide" aria-labelledby="outbox-title">
  <h1 id="outbox-title">Dev outbox</h1>
  <p class="lead">Text messages and emails the app sent while running without real senders, newest first.
  Development only: this page does not exist when <code>NODE_ENV=production</code>.</p>
  <p class="hint">In use for: ${channelsInUse.length > 0 ? channelsInUse.join(' and ') : 'nothing (real senders are configured)'}.
  <a href="/dev/outbox">Refresh</a></p>
  ${
    entries.length === 0
      ? html`<p class="empty">Nothing sent yet.</p>`
      : html`<ol class="outbox" reversed>
    ${entries.map(
      (entry) => html`<li class="message" data-channel="${entry.channel}" data-to="${entry.to}">
      <p class="message-meta"><span class="pill ${entry.channel}">${entry.channel === 'sms' ? 'SMS' : 'Email'}</span>
        to <strong class="message-to">${entry.to}</strong>
        <time datetime="${entry.at.toISOString()}">${entry.at.toISOString().replace('T', ' ').slice(0, 19)} UTC</time></p>
      ${entry.subject ? html`<p class="message-subject">${entry.subject}</p>` : ''}
      <pre class="message-text">${entry.text}</pre>
    </li>`,
    )}
  </ol>`
  }
</section>`;
}

export function problemPage(title: string, message: string, link = { href: '/login', text: 'Back to sign-in' }): SafeHtml {
  return html`<section class="card" aria-labelledby="problem-title">
  <h1 id="problem-title">${title}</h1>
  <p class="lead">${message}</p>
  <p><a class="button secondary" href="${link.href}">${link.text}</a></p>
</section>`;
}
