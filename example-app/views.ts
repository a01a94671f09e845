// Server-rendered pages. No inline scripts or styles: the CSP allows only files from 'self'.
import { html, type SafeHtml } from './html.js';
import { DEMO_PASSWORD, type DemoUser, type UserFactors } from './users.js';

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
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
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
  <p>Two-step sign-in with <code>blockid-otp</code>: a password, then a one-time code by SMS, WhatsApp, a call or email, or from an authenticator app.</p>
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
        (user) =>
          html`<tr><td><code>${user.username}</code></td><td>${[user.phone ? `SMS to ${user.phone}` : '', user.email ? `email to ${user.email}` : '']
            .filter(Boolean)
            .join(' and ')}</td></tr>`,
      )}
    </tbody>
  </table>
</aside>`;
}

export interface ChannelChoice {
  channel: 'sms' | 'email' | 'both' | 'whatsapp' | 'voice';
  /** Visible button text, e.g. "Send by SMS". */
  label: string;
  /** Where the code goes, masked for the screen: "(•••) •••-0100". */
  detail: string;
  /** The same for assistive technology: "the phone number ending in 0100". */
  spoken: string;
  /** The button's accessible name: "Send by SMS to the phone number ending in 0100". */
  name: string;
}

export interface CodeStepView {
  user: DemoUser;
  choices: ChannelChoice[];
  /** The user has an authenticator app set up. */
  hasTotp: boolean;
  /** The user has unused recovery codes. */
  hasRecoveryCodes: boolean;
  basePath: string;
  codeLength: number;
  ttlSeconds: number;
  appName: string;
  devOutbox: boolean;
}

type Method = 'code' | 'totp' | 'recovery';

/** How the Code field reads for each way of signing in; the page script switches between them. */
function methodField(method: Method, view: CodeStepView) {
  switch (method) {
    case 'code':
      return {
        switchTo: 'Get a code sent to you instead',
        label: 'Code',
        hint: `${view.codeLength} digits. Codes expire after ${Math.round(view.ttlSeconds / 60)} minutes.`,
        inputmode: 'numeric',
        autocomplete: 'one-time-code',
        pattern: '[0-9]*',
        maxlength: view.codeLength + 4,
        lead: `we send you a ${view.codeLength}-digit code to finish signing in.`,
      };
    case 'totp':
      return {
        switchTo: 'Use your authenticator app',
        label: 'Authenticator code',
        hint: `The 6-digit code your authenticator app shows for ${view.appName} right now.`,
        inputmode: 'numeric',
        autocomplete: 'one-time-code',
        pattern: '[0-9]*',
        maxlength: 8,
        lead: 'enter the code from your authenticator app to finish signing in.',
      };
    case 'recovery':
      return {
        switchTo: 'Use a recovery code',
        label: 'Recovery code',
        hint: 'One of the recovery codes you saved, like 7KQM-3DWX-9HBT. Each one works once.',
        inputmode: 'text',
        autocomplete: 'off',
        pattern: '[0-9A-Za-z \\-]*',
        maxlength: 20,
        lead: 'enter one of the recovery codes you saved to finish signing in.',
      };
  }
}

export function codeStepPage(view: CodeStepView): SafeHtml {
  const { user, choices } = view;
  const methods: Method[] = [
    ...(view.hasTotp ? (['totp'] as const) : []),
    ...(choices.length > 0 ? (['code'] as const) : []),
    ...(view.hasRecoveryCodes ? (['recovery'] as const) : []),
  ];
  // The strongest method the user has comes first: an authenticator app needs no message.
  const initial: Method = methods[0] ?? 'code';
  const field = methodField(initial, view);
  return html`<section class="card" aria-labelledby="code-title" id="otp"
  data-username="${user.username}" data-base-path="${view.basePath}" data-code-length="${view.codeLength}"
  data-ttl-seconds="${view.ttlSeconds}" data-next="/account" data-method="${initial}">
  <h1 id="code-title" tabindex="-1">Enter your code</h1>
  <p class="lead">Step 2 of 2. Hello ${user.displayName}: <span id="code-lead">${field.lead}</span></p>
  ${
    choices.length === 0
      ? methods.length === 0
        ? html`<p class="alert" role="alert">We have no way to send you a code. Contact support to add a phone number or an email address.</p>`
        : ''
      : html`<div id="channels" class="channels" role="group" aria-label="Send the code" ${initial === 'code' ? '' : html`hidden`}>
    ${choices.map(
      (choice) => html`<button type="button" class="button channel" data-channel="${choice.channel}"
      data-spoken="${choice.spoken}" aria-label="${choice.name}">
      <span class="channel-label">${choice.label}</span><span class="channel-detail">${choice.detail}</span></button>`,
    )}
  </div>`
  }
  <p id="status" class="status" role="status" aria-live="polite" aria-atomic="true"></p>
  <form id="verify-form" class="stack verify" novalidate data-method="${initial}">
    <div class="field">
      <label for="code" id="code-label">${field.label}</label>
      <input id="code" name="code" type="text" inputmode="${field.inputmode}" autocomplete="${field.autocomplete}" pattern="${field.pattern}"
        maxlength="${field.maxlength}" required spellcheck="false" autocapitalize="off" aria-describedby="code-hint feedback"
        ${initial === 'code' ? '' : html`autofocus`}>
      <p id="code-hint" class="hint">${field.hint}</p>
    </div>
    <p id="feedback" class="feedback" aria-live="assertive" aria-atomic="true"></p>
    <button type="submit" class="button primary" id="verify">Verify</button>
  </form>
  <p id="resend-row" class="resend-row" hidden>
    <button type="button" id="resend" class="button link" disabled>Resend code</button>
    <span id="other-way-group" class="other-way"><span aria-hidden="true">·</span>
    <button type="button" id="other-way" class="button link">Send another way</button></span>
  </p>
  ${
    methods.length > 1
      ? html`<div id="methods" class="methods" role="group" aria-labelledby="methods-title">
    <p id="methods-title" class="methods-title">Other ways to sign in</p>
    ${methods.map((method) => {
      const other = methodField(method, view);
      return html`<button type="button" class="button link" data-method="${method}" data-label="${other.label}" data-hint="${other.hint}"
      data-inputmode="${other.inputmode}" data-autocomplete="${other.autocomplete}" data-maxlength="${other.maxlength}"
      data-pattern="${other.pattern}" data-lead="${other.lead}"
      ${method === initial ? html`hidden` : ''}>${other.switchTo}</button>`;
    })}
  </div>`
      : ''
  }
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
  /** How this session passed the code step. */
  method: 'code' | 'totp' | 'recovery' | 'link';
  factors: UserFactors;
  csrfToken: string;
  notice?: string;
}

const methodNames = {
  code: 'a code we sent you',
  totp: 'your authenticator app',
  recovery: 'a recovery code',
  link: 'the link in the email we sent you',
} as const;

export function accountPage({ user, verifiedAt, method, factors, csrfToken, notice }: AccountView): SafeHtml {
  const left = factors.recoveryCodes.length;
  return html`<section class="card" aria-labelledby="account-title">
  <p class="badge">Verified</p>
  <h1 id="account-title">Hello, ${user.displayName}</h1>
  <p class="lead">You are signed in as <strong class="username">${user.username}</strong>.</p>
  ${notice ? html`<p class="notice" role="status">${notice}</p>` : ''}
  <dl class="facts">
    <dt>Verified</dt><dd><time datetime="${verifiedAt.toISOString()}">${formatTime(verifiedAt)}</time></dd>
    <dt>Signed in with</dt><dd id="verified-method" data-method="${method}">${methodNames[method]}</dd>
    ${user.phone ? html`<dt>Phone</dt><dd>${formatPhone(user.phone)}</dd>` : ''}
    ${user.email ? html`<dt>Email</dt><dd>${user.email}</dd>` : ''}
  </dl>
  <section class="factor" aria-labelledby="totp-title">
    <h2 id="totp-title">Authenticator app</h2>
    ${
      factors.totp
        ? html`<p class="factor-state on" id="totp-state">On since <time datetime="${factors.totpAddedAt?.toISOString() ?? ''}">${factors.totpAddedAt ? formatTime(factors.totpAddedAt) : 'earlier'}</time>. The code step asks for its code first.</p>
    <form method="post" action="/account/totp/remove">
      ${hiddenCsrf(csrfToken)}
      <button type="submit" class="button secondary">Remove the authenticator app</button>
    </form>`
        : html`<p class="factor-state" id="totp-state">Codes from an app on your phone (Google Authenticator, Microsoft Authenticator, 1Password, …): no text message or email to wait for, and nothing to intercept on the way.</p>
    <form method="post" action="/account/totp">
      ${hiddenCsrf(csrfToken)}
      <button type="submit" class="button secondary">Set up an authenticator app</button>
    </form>`
    }
  </section>
  <section class="factor" aria-labelledby="recovery-title">
    <h2 id="recovery-title">Recovery codes</h2>
    <p class="factor-state${left > 0 ? ' on' : ''}" id="recovery-state">${
      left > 0
        ? `You have ${left} unused recovery code${left === 1 ? '' : 's'}. Each one signs you in once when your phone is not at hand.`
        : 'One-time codes to keep somewhere safe, for when your phone is lost or out of reach.'
    }</p>
    <form method="post" action="/account/recovery-codes">
      ${hiddenCsrf(csrfToken)}
      <button type="submit" class="button secondary" ${left > 0 ? html`aria-describedby="recovery-replace"` : ''}>${left > 0 ? 'Generate new recovery codes' : 'Generate recovery codes'}</button>
      ${left > 0 ? html`<p class="hint" id="recovery-replace">The codes you have now stop working.</p>` : ''}
    </form>
  </section>
  <form method="post" action="/logout" class="sign-out">
    ${hiddenCsrf(csrfToken)}
    <button type="submit" class="button secondary">Sign out</button>
  </form>
</section>`;
}

export interface TotpSetupView {
  user: DemoUser;
  appName: string;
  /** The key in base32, grouped by four for typing. */
  key: string;
  /** The otpauth:// URI (the QR code's content). */
  uri: string;
  csrfToken: string;
  error?: string;
}

export function totpSetupPage(view: TotpSetupView): SafeHtml {
  return html`<section class="card" aria-labelledby="totp-setup-title">
  <h1 id="totp-setup-title">Set up an authenticator app</h1>
  <p class="lead">Two steps: add ${view.appName} to the app, then type the code it shows to turn it on.</p>
  <ol class="setup-steps">
    <li>
      <h2>Scan this QR code with the app</h2>
      <img class="qr" src="/account/totp/qr.svg" width="220" height="220"
        alt="QR code that adds ${view.appName} to an authenticator app. The same key is written out below.">
      <p>Cannot scan it? Choose to enter a key in the app, pick <em>time-based</em>, and type:</p>
      <p class="key-box"><code id="totp-key" class="key" aria-label="Key: ${view.key.split(' ').join(', ')}">${view.key}</code></p>
      <p class="hint">On this phone? <a href="${view.uri}">Open it in your authenticator app</a>.</p>
    </li>
    <li>
      <h2>Enter the code the app shows</h2>
      <form method="post" action="/account/totp/confirm" class="stack" novalidate>
        ${hiddenCsrf(view.csrfToken)}
        <div class="field">
          <label for="totp-code">Code from the app</label>
          <input id="totp-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="8"
            required spellcheck="false" aria-describedby="totp-code-hint${view.error ? ' totp-error' : ''}"
            ${view.error ? html`aria-invalid="true" autofocus` : ''}>
          <p id="totp-code-hint" class="hint">6 digits; a new one every 30 seconds.</p>
        </div>
        ${view.error ? html`<p class="alert" role="alert" id="totp-error">${view.error}</p>` : ''}
        <button type="submit" class="button primary">Turn on the authenticator app</button>
      </form>
    </li>
  </ol>
  <p class="aside-links"><a href="/account">Cancel and go back to your account</a></p>
</section>`;
}

export interface RecoveryCodesView {
  user: DemoUser;
  appName: string;
  codes: string[];
}

export function recoveryCodesPage(view: RecoveryCodesView): SafeHtml {
  return html`<section class="card" aria-labelledby="recovery-codes-title">
  <h1 id="recovery-codes-title">Your recovery codes</h1>
  <p class="lead">Save these now: this is the only time they are shown. Each code signs ${view.user.username} in to ${view.appName} once,
  instead of a code by SMS, email or your authenticator app.</p>
  <ol class="recovery-codes" id="recovery-codes">
    ${view.codes.map((code) => html`<li><code>${code}</code></li>`)}
  </ol>
  <p class="hint">Keep them in a password manager or print this page. Codes you generated before no longer work.</p>
  <p><a class="button primary" href="/account">I have saved them</a></p>
</section>`;
}

export interface OutboxEntryView {
  channel: 'sms' | 'email' | 'whatsapp' | 'voice';
  to: string;
  subject?: string;
  text: string;
  at: Date;
}

const channelLabels = { sms: 'SMS', email: 'Email', whatsapp: 'WhatsApp', voice: 'Voice call' } as const;

/**
 * An email's sign-in link as a button that opens it on this server (path and query only), so
 * it works whatever host and port the app's PUBLIC_URL names.
 */
function signInLink(text: string): SafeHtml | string {
  const match = /https?:\/\/\S+\?t=[A-Za-z0-9_-]+/.exec(text);
  if (!match) return '';
  const url = new URL(match[0]);
  return html`<p><a class="button secondary sign-in-link" href="${url.pathname + url.search}">Open the sign-in link</a></p>`;
}

/** `channelsInUse`: e.g. "SMS, WhatsApp and voice calls". */
export function outboxPage(entries: OutboxEntryView[], channelsInUse: string): SafeHtml {
  return html`<section class="card wide" aria-labelledby="outbox-title">
  <h1 id="outbox-title">Dev outbox</h1>
  <p class="lead">What the app would have sent on the channels that have no real sender, newest first.
  Codes sent through Twilio or SMTP never appear here.
  Development only: this page does not exist when <code>NODE_ENV=production</code>.</p>
  <p class="hint" id="outbox-channels">In use for: ${channelsInUse.length > 0 ? channelsInUse : 'nothing (every channel has a real sender)'}.
  <a href="/dev/outbox">Refresh</a></p>
  ${
    entries.length === 0
      ? html`<p class="empty">Nothing sent yet.</p>`
      : html`<ol class="outbox" reversed>
    ${entries.map(
      (entry) => html`<li class="message" data-channel="${entry.channel}" data-to="${entry.to}">
      <p class="message-meta"><span class="pill ${entry.channel}">${channelLabels[entry.channel]}</span>
        to <strong class="message-to">${entry.to}</strong>
        <time datetime="${entry.at.toISOString()}">${entry.at.toISOString().replace('T', ' ').slice(0, 19)} UTC</time></p>
      ${entry.subject ? html`<p class="message-subject">${entry.subject}</p>` : ''}
      <pre class="message-text">${entry.text}</pre>
      ${signInLink(entry.text)}
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
