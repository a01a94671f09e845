import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

/**
 * One entry per subpath of package.json `exports` (`./dist/koa.js` is built from `src/koa.ts`),
 * so adding a subpath there is all it takes to build it.
 */
const manifest = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8')) as {
  exports: Record<string, string | { import?: { default?: string } }>;
};
const entry = Object.fromEntries(
  Object.values(manifest.exports).flatMap((conditions) => {
    const built = typeof conditions === 'string' ? undefined : conditions.import?.default;
    const name = built?.match(/^\.\/dist\/(.+)\.js$/)?.[1];
    return name === undefined ? [] : [[name, `src/${name}.ts`]];
  }),
);

export default defineConfig({
  entry,
  // @oslojs/otp ships ESM only: bundled, so the CommonJS build works on every Node 20 (require(esm) needs 20.19).
  noExternal: [/^@oslojs\//],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  // No source maps: they would point to src/, which the package does not ship.
  sourcemap: false,
  target: 'node20',
  splitting: true,
  // import.meta.url in the CommonJS build (src/core/peer.ts resolves optional peers from where the package is).
  shims: true,
  // The CommonJS build rewrites classes with fields as `(_class = class ...)`: without this, OtpError would print as `_class [OtpError]`.
  keepNames: true,
});
