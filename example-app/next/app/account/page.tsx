/** A guarded page: a server component that reads the session from the request's cookie. */
import { headers } from 'next/headers';
import { unauthorized } from 'next/navigation';
import { otp } from '../../lib/otp';

export default async function AccountPage() {
  const session = await otp.readSession(new Request('http://localhost/account', { headers: await headers() }));
  if (!session) unauthorized(); // 401, rendered by app/unauthorized.tsx
  return (
    <main>
      <h1>Account</h1>
      <p>
        Signed in as <strong>{session.username}</strong> (verified by {session.method} at {new Date(session.verifiedAt).toISOString()}).
      </p>
      <form method="post" action="/signout">
        <button type="submit">Sign out</button>
      </form>
    </main>
  );
}
