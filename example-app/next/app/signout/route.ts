/** Sign-out: a Set-Cookie that ends the session, then back to the sign-in page. */
import { otp } from '../../lib/otp';

export function POST() {
  return new Response(null, { status: 303, headers: { Location: '/login', 'Set-Cookie': otp.clearSession() } });
}
