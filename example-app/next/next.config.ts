import type { NextConfig } from 'next';

const config: NextConfig = {
  // unauthorized() answers a guarded page with 401 and app/unauthorized.tsx.
  experimental: { authInterrupts: true },
};

export default config;
