/** The codes the dev outbox kept (development only: without SMTP_URL, and never in production). */
import { notFound } from 'next/navigation';
import { outbox } from '../../../lib/otp';

export const dynamic = 'force-dynamic';

export default function OutboxPage() {
  if (!outbox) notFound();
  const entries = outbox.entries().slice().reverse();
  return (
    <main>
      <h1>Dev outbox</h1>
      {entries.length === 0 ? <p>Nothing sent yet.</p> : null}
      <ul>
        {entries.map((entry) => (
          <li key={`${entry.at.getTime()}-${entry.to}`}>
            <strong>{entry.username}</strong> → {entry.to}: {entry.text}
          </li>
        ))}
      </ul>
    </main>
  );
}
