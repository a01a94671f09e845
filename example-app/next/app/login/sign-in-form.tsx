'use client';
/** Two steps against the OTP endpoints: send a code to the username's email, then verify it. */
import { useState, type FormEvent } from 'react';

const postJson = (path: string, body: object) => fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });

export function SignInForm() {
  const [username, setUsername] = useState('');
  const [sent, setSent] = useState(false);
  const [message, setMessage] = useState('');

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    if (!sent) {
      const reply = await postJson('/otp/send', { username: String(form.get('username')) });
      const body = (await reply.json()) as { message?: string };
      if (reply.status === 202) {
        setUsername(String(form.get('username')));
        setSent(true);
        setMessage('If that user exists, a code is on its way.');
      } else setMessage(body.message ?? 'Something went wrong.');
      return;
    }
    const reply = await postJson('/otp/verify', { username, code: String(form.get('code')) });
    if (reply.ok) window.location.assign('/account');
    else setMessage(((await reply.json()) as { message?: string }).message ?? 'Something went wrong.');
  }

  return (
    <form onSubmit={submit}>
      {sent ? (
        <label>
          Code <input name="code" inputMode="numeric" autoComplete="one-time-code" required />
        </label>
      ) : (
        <label>
          Username <input name="username" autoComplete="username" required />
        </label>
      )}
      <button type="submit">{sent ? 'Verify' : 'Send code'}</button>
      <p role="status">{message}</p>
    </form>
  );
}
