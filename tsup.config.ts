import { defineConfig } from 'tsup';

export default defineConfig({
  entry: { index: 'src/index.ts', koa: 'src/koa.ts', 'otp-provider': 'src/otp-provider.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  splitting: true,
  shims: false,
});
