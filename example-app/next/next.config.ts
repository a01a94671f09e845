import type { NextConfig } from 'next';

const config: NextConfig = {
  // next dev would otherwise write an AGENTS.md into the example.
  agentRules: false,
  experimental: {
    // unauthorized() answers a guarded page with 401 and app/unauthorized.tsx.
    authInterrupts: true,
    agentUpgrade: false,
  },
};

export default config;
