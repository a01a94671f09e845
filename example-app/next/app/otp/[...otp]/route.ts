/** The OTP endpoints: POST /otp/send, POST /otp/verify, GET /otp/status. */
import { after } from 'next/server';
import { otp } from '../../../lib/otp';

// The handler as is: Next.js passes `{ params }` as the second argument, which otp.fetch ignores.
export const GET = otp.fetch;

// A send delivers the code after the response; after() keeps that work alive once the response is out.
export const POST = (request: Request) => otp.fetch(request, { waitUntil: after });
