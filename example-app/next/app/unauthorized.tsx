/** What a guarded page shows (with status 401) to a session that has not verified a code. */
export default function Unauthorized() {
  return (
    <main>
      <h1>Sign in first</h1>
      <p>
        This page needs a verified one-time passcode. <a href="/login">Sign in</a>
      </p>
    </main>
  );
}
