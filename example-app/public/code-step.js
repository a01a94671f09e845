// The code step: asks blockid-otp to send a code (POST {basePath}/send), counts down to the
// next allowed resend, fills the code from the SMS with WebOTP where the browser supports
// it, and checks the code (POST {basePath}/verify). Users who have an authenticator app or
// recovery codes can switch to them; the same Code field then posts with `method: 'totp'`
// or `'recovery'`. Served as a file: the CSP allows no inline script.

const root = document.getElementById('otp');
if (root) setUp(root);

/** @param {HTMLElement} root */
function setUp(root) {
  const username = root.dataset.username ?? '';
  const basePath = root.dataset.basePath ?? '/otp';
  const codeLength = Number(root.dataset.codeLength ?? '6');
  const next = root.dataset.next ?? '/account';

  const channels = /** @type {HTMLElement | null} */ (root.querySelector('#channels'));
  const channelButtons = /** @type {HTMLButtonElement[]} */ ([...root.querySelectorAll('button[data-channel]')]);
  const resendRow = /** @type {HTMLElement | null} */ (root.querySelector('#resend-row'));
  const resendButton = /** @type {HTMLButtonElement | null} */ (root.querySelector('#resend'));
  const otherWayButton = /** @type {HTMLButtonElement | null} */ (root.querySelector('#other-way'));
  const otherWayGroup = /** @type {HTMLElement | null} */ (root.querySelector('#other-way-group'));
  const form = /** @type {HTMLFormElement} */ (root.querySelector('#verify-form'));
  const codeInput = /** @type {HTMLInputElement} */ (form.querySelector('#code'));
  const verifyButton = /** @type {HTMLButtonElement} */ (form.querySelector('#verify'));
  const status = /** @type {HTMLElement} */ (root.querySelector('#status'));
  const feedback = /** @type {HTMLElement} */ (root.querySelector('#feedback'));
  const codeLabel = /** @type {HTMLElement} */ (form.querySelector('#code-label'));
  const codeHint = /** @type {HTMLElement} */ (form.querySelector('#code-hint'));
  const methodButtons = /** @type {HTMLButtonElement[]} */ ([...root.querySelectorAll('button[data-method]')]);
  const heading = /** @type {HTMLElement | null} */ (root.querySelector('#code-title'));
  const lead = /** @type {HTMLElement | null} */ (root.querySelector('#code-lead'));

  /** How this page verifies: 'code' (sent by a channel), 'totp' or 'recovery'. */
  let method = root.dataset.method ?? 'code';

  /** @type {string | null} */
  let lastChannel = null;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  let countdown;
  let cooldownEndsAt = 0;
  let sending = false;
  /** @type {AbortController | null} */
  let webOtp = null;

  // ---- messages -------------------------------------------------------------------------

  /** @param {string} text */
  function say(text) {
    status.textContent = text;
  }

  /**
   * The server's messages end with a pointer for developers, "(see docs/errors.md#…)": the
   * person at the keyboard gets the sentence without it.
   * @param {unknown} message
   */
  function forPeople(message) {
    return typeof message === 'string' ? message.replace(/\s*\(see docs\/errors\.md#[a-z0-9-]+\)$/, '') : '';
  }

  /** @param {string} text */
  function showError(text) {
    feedback.textContent = text;
    feedback.classList.add('is-error');
  }

  function clearError() {
    feedback.textContent = '';
    feedback.classList.remove('is-error');
    codeInput.removeAttribute('aria-invalid');
  }

  /** @param {number} seconds */
  function minutes(seconds) {
    const m = Math.round(seconds / 60);
    return m >= 1 ? `${m} minute${m === 1 ? '' : 's'}` : `${seconds} seconds`;
  }

  /** @param {string} channel */
  function where(channel) {
    const spoken = (/** @type {string} */ name) => channelButtons.find((b) => b.dataset.channel === name)?.dataset.spoken ?? '';
    if (channel === 'sms') return `by text message to ${spoken('sms')}`;
    if (channel === 'whatsapp') return `by WhatsApp to ${spoken('whatsapp')}`;
    if (channel === 'voice') return `by a voice call to ${spoken('voice')}: answer it to hear the code`;
    if (channel === 'email') return `by email to ${spoken('email')}`;
    return `by text message to ${spoken('sms')} and by email to ${spoken('email')}`;
  }

  // ---- HTTP -----------------------------------------------------------------------------

  /**
   * @param {string} path
   * @param {Record<string, string>} body
   * @returns {Promise<{ status: number, data: any }>}
   */
  async function postJson(path, body) {
    const response = await fetch(basePath + path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(body),
    });
    let data = {};
    try {
      data = await response.json();
    } catch {
      // Not JSON (a proxy error page, say): the status code is enough.
    }
    return { status: response.status, data };
  }

  // ---- resend countdown -----------------------------------------------------------------

  /** @param {number} seconds */
  function startCooldown(seconds) {
    cooldownEndsAt = Date.now() + Math.max(0, seconds) * 1000;
    clearInterval(countdown);
    tick();
    countdown = setInterval(tick, 250);
  }

  function tick() {
    const left = Math.ceil((cooldownEndsAt - Date.now()) / 1000);
    const waiting = left > 0;
    for (const button of channelButtons) button.disabled = waiting || sending;
    if (resendButton) {
      resendButton.disabled = waiting || sending;
      resendButton.textContent = waiting ? `Resend code in ${left} s` : 'Resend code';
    }
    if (!waiting) clearInterval(countdown);
  }

  // ---- sending --------------------------------------------------------------------------

  /** @param {string} channel */
  async function send(channel) {
    if (sending) return;
    sending = true;
    tick();
    say('Sending your code…');
    clearError();
    try {
      const { status: code, data } = await postJson('/send', { username, channel });
      if (code === 202) {
        lastChannel = channel;
        say(`We sent a code ${where(channel)}. It expires in ${minutes(Number(data.expiresIn) || 300)}.`);
        showResendRow();
        startCooldown(Number(data.resendIn) || 0);
        codeInput.focus();
        if (channel === 'sms' || channel === 'both') listenForSmsCode();
      } else if (code === 429) {
        const wait = Number(data.retryAfter) || 30;
        say('');
        showError(`Please wait ${wait} seconds before asking for another code.`);
        startCooldown(wait);
      } else if (code === 503) {
        say('');
        showError('Sending codes is unavailable right now. Try again in a minute.');
      } else {
        say('');
        showError(forPeople(data.message) || 'We could not send a code. Reload the page and try again.');
      }
    } catch {
      say('');
      showError('We could not reach the server. Check your connection and try again.');
    } finally {
      sending = false;
      tick();
      // The button that was pressed is disabled meanwhile: focus must not fall back to <body>.
      if (document.activeElement === null || document.activeElement === document.body) codeInput.focus();
    }
  }

  function showResendRow() {
    if (channels) channels.hidden = true;
    if (resendRow) resendRow.hidden = false;
    if (otherWayGroup) otherWayGroup.hidden = channelButtons.length < 2;
  }

  // ---- other ways to sign in: an authenticator app, a recovery code ---------------------

  /** @param {string} next */
  function useMethod(next) {
    const button = methodButtons.find((b) => b.dataset.method === next);
    if (!button) return;
    method = next;
    form.dataset.method = next;
    root.dataset.method = next;
    codeLabel.textContent = button.dataset.label ?? 'Code';
    codeHint.textContent = button.dataset.hint ?? '';
    codeInput.inputMode = button.dataset.inputmode ?? 'text';
    codeInput.autocomplete = /** @type {AutoFill} */ (button.dataset.autocomplete ?? 'off');
    codeInput.maxLength = Number(button.dataset.maxlength ?? '20');
    codeInput.pattern = button.dataset.pattern ?? '';
    if (lead) lead.textContent = button.dataset.lead ?? '';
    codeInput.value = '';
    for (const other of methodButtons) other.hidden = other.dataset.method === next;
    webOtp?.abort();
    say('');
    clearError();
    const sendsCode = next === 'code';
    if (channels) channels.hidden = !sendsCode || lastChannel !== null;
    if (resendRow) resendRow.hidden = !sendsCode || lastChannel === null;
    codeInput.focus();
  }

  for (const button of methodButtons) {
    button.addEventListener('click', () => useMethod(button.dataset.method ?? 'code'));
  }

  for (const button of channelButtons) {
    button.addEventListener('click', () => send(button.dataset.channel ?? 'both'));
  }
  resendButton?.addEventListener('click', () => send(lastChannel ?? 'both'));
  otherWayButton?.addEventListener('click', () => {
    // The channel buttons come back; the countdown stays in view while they are disabled.
    if (channels) channels.hidden = false;
    if (otherWayGroup) otherWayGroup.hidden = true;
    (channelButtons.find((b) => !b.disabled) ?? codeInput).focus();
  });

  // ---- WebOTP: read the code from the SMS ("@example.com #123456") ----------------------

  function listenForSmsCode() {
    if (!('OTPCredential' in window) || !navigator.credentials) return;
    webOtp?.abort();
    webOtp = new AbortController();
    /** @type {any} */ (navigator.credentials)
      .get({ otp: { transport: ['sms'] }, signal: webOtp.signal })
      .then((/** @type {any} */ credential) => {
        if (credential && typeof credential.code === 'string') {
          codeInput.value = credential.code;
          form.requestSubmit();
        }
      })
      .catch(() => {
        // Aborted, dismissed or not allowed: the user types the code instead.
      });
  }

  // ---- verifying ------------------------------------------------------------------------

  /** The candidate as the server wants it, or an error message for a malformed one. */
  function candidate() {
    const raw = codeInput.value.trim();
    if (method === 'recovery') {
      const compact = raw.replace(/[\s-]/g, '');
      return /^[0-9A-Za-z]{12}$/.test(compact) ? { code: raw } : { error: 'Enter one of your recovery codes: 12 letters and digits, like 7KQM-3DWX-9HBT.' };
    }
    const digits = raw.replace(/[\s-]/g, '');
    const length = method === 'totp' ? 6 : codeLength;
    if (new RegExp(`^\\d{${length}}$`).test(digits)) return { code: digits };
    return {
      error: method === 'totp' ? 'Enter the 6-digit code from your authenticator app.' : `Enter the ${codeLength}-digit code from your message.`,
    };
  }

  /** @param {number} status @param {any} data */
  function failureMessage(status, data) {
    const wait = Number(data.retryAfter) || 0;
    if (status === 401) {
      if (method === 'totp') return 'That code is not right. Enter the code your authenticator app shows now; each code works only once.';
      if (method === 'recovery') return 'That recovery code is not right, or it has been used already.';
      return 'That code is not right, or it has expired. Check it and try again, or send a new code.';
    }
    if (status === 429) {
      if (method !== 'code' || wait > 0) {
        return `Too many wrong tries. Wait ${wait > 0 ? minutes(wait) : 'a few minutes'} before you try again.`;
      }
      codeInput.value = '';
      return 'Too many wrong tries: that code no longer works. Send a new code to continue.';
    }
    if (status === 503) return 'Checking codes is unavailable right now. Try again in a minute.';
    return forPeople(data.message) || 'We could not check that code. Try again.';
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (verifyButton.disabled) return;
    const checked = candidate();
    if (checked.error !== undefined) {
      showError(checked.error);
      codeInput.setAttribute('aria-invalid', 'true');
      codeInput.focus();
      return;
    }
    webOtp?.abort();
    clearError();
    verifyButton.disabled = true;
    form.setAttribute('aria-busy', 'true');
    say('Checking your code…');
    try {
      const { status: code_, data } = await postJson('/verify', { username, code: checked.code, method });
      if (code_ === 200) {
        say('Verified. Taking you to your account…');
        window.location.assign(next);
        return;
      }
      say('');
      codeInput.setAttribute('aria-invalid', 'true');
      showError(failureMessage(code_, data));
      codeInput.focus();
      codeInput.select();
    } catch {
      say('');
      showError('We could not reach the server. Check your connection and try again.');
    } finally {
      verifyButton.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });

  codeInput.addEventListener('input', () => {
    if (feedback.textContent) clearError();
    // Codes are digits: letters never get in, and a pasted "123 456" or "123-456" becomes "123456".
    if (method !== 'recovery') {
      const digits = codeInput.value.replace(/\D/g, '').slice(0, method === 'totp' ? 6 : codeLength);
      if (digits !== codeInput.value) codeInput.value = digits;
    }
  });

  // On arrival, focus goes where the step starts: the code field, or the heading while a code
  // still has to be asked for (never left on <body>, where a screen reader starts from the top).
  if (method === 'code') heading?.focus();
  else codeInput.focus();
}
