import { defineConfig } from 'tsup';

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    koa: 'src/koa.ts',
    'otp-provider': 'src/otp-provider.ts',
    testing: 'src/testing.ts',
    metrics: 'src/metrics.ts',
    postgres: 'src/postgres.ts',
  },
  // @oslojs/otp ships ESM only: bundled, so the CommonJS build works on every Node 20 (require(esm) needs 20.19).
  noExternal: [/^@oslojs\//],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  splitting: true,
  // import.meta.url in the CommonJS build (src/core/peer.ts resolves optional peers from where the package is).
  shims: true,
});
