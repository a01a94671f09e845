/** A guarded route handler: 401 { "error": "otp_required" } until the session is verified. */
import { otp } from '../../../lib/otp';

export async function GET(request: Request) {
  const refusal = await otp.requireOtp(request);
  if (refusal) return refusal;
  const session = await otp.readSession(request);
  return Response.json({ username: session?.username, verifiedAt: session?.verifiedAt });
}
