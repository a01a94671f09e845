/**
 * The committed API report (etc/api/, one file per entry of package.json `exports`) against
 * the built package: a change to the public surface fails here until `npm run api-report`
 * rewrites the report, so the change shows in review. Also: every type a public signature
 * uses is exported from some entry, and each entry's .d.cts exports what its .d.ts does.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildReports, compareReports, entriesOf, refreshCommand } from '../../scripts/api-report.js';
import { manifest, packedPackage, repo } from '../helpers/packed.js';

/** The reports of the built package, made once for this file. */
let built: Promise<ReturnType<typeof buildReports>> | undefined;
const builtReports = () => (built ??= packedPackage().then(({ packageDir }) => buildReports(packageDir)));

describe('the public API report', () => {
  it('takes its entries from package.json exports, and the comparison catches a changed, missing or extra report', () => {
    const entries = entriesOf(manifest as Parameters<typeof entriesOf>[0]).map((e) => e.entry);
    assert.ok(entries.includes('index') && entries.includes('koa') && entries.includes('store'));
    const committed = Object.fromEntries(entries.map((entry) => [entry, readFileSync(join(repo, 'etc', 'api', `${entry}.api.md`), 'utf8')]));
    assert.deepEqual(compareReports(committed), []);
    const [first, ...rest] = entries as [string, ...string[]];
    assert.deepEqual(compareReports({ ...committed, [first]: `${committed[first]}\nchanged` }), [`etc/api/${first}.api.md differs from the build`]);
    assert.deepEqual(compareReports({ ...committed, extra: 'x' }), ['etc/api/extra.api.md is missing']);
    assert.deepEqual(compareReports(Object.fromEntries(rest.map((e) => [e, committed[e] ?? '']))), [
      `etc/api/${first}.api.md is for no entry of package.json exports`,
    ]);
  });

  it('matches the built package, names no unexported type, and the CommonJS types export the same names', { timeout: 300_000 }, async () => {
    const { reports, unexported, mismatches } = await builtReports();
    assert.deepEqual(unexported, [], 'every type in a public signature is exported from some entry');
    assert.deepEqual(mismatches, []);
    const problems = compareReports(reports);
    assert.deepEqual(problems, [], `The public surface changed: run \`${refreshCommand}\` and commit etc/api/.`);
  });

  it('keeps the store protocol out of the main entry, and the service out of every middleware type', async () => {
    const { reports } = await builtReports();
    assert.doesNotMatch(reports.index ?? '', /### `OtpStore`|### `SendPlan`/);
    assert.match(reports.store ?? '', /### `OtpStore`/);
    assert.doesNotMatch(reports.index ?? '', /ResolvedOptions|readonly service|readonly options/);
  });
});
