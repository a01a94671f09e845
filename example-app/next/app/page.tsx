export default function Home() {
  return (
    <main>
      <h1>blockid-otp on Next.js</h1>
      <p>
        <a href="/login">Sign in</a> · <a href="/account">Account</a> (guarded) · <a href="/dev/outbox">Dev outbox</a>
      </p>
    </main>
  );
}
