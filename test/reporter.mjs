// Node's TAP reporter, with one addition: just before the closing summary (`# tests N`,
// `# pass N`, `# fail N`), a `# failed:` line for each failing test, with its full name, file
// and first line of error, so that the end of a long log says what went wrong.
import { relative } from 'node:path';
import { tap } from 'node:test/reporters';

export default async function* reporter(source) {
  const names = [];
  const failures = [];
  async function* events() {
    for await (const event of source) {
      const { data } = event;
      if (event.type === 'test:start') names[data.nesting] = data.name;
      if (event.type === 'test:fail' && data.details?.type !== 'suite') failures.push(describeFailure(data, names));
      if (event.type === 'test:diagnostic' && data.nesting === 0 && /^tests \d+$/.test(data.message)) {
        for (const message of failures) yield { type: 'test:diagnostic', data: { nesting: 0, message } };
      }
      yield event;
    }
  }
  yield* tap(events());
}

function describeFailure(data, names) {
  const path = [...names.slice(0, data.nesting), data.name].join(' › ');
  const where = data.file ? ` (${relative(process.cwd(), data.file)})` : '';
  const error = data.details?.error;
  const cause = error?.cause ?? error;
  const reason = String(cause?.message ?? cause ?? '')
    .split('\n')[0]
    .slice(0, 300);
  return `failed: ${path}${where}${reason ? ` — ${reason}` : ''}`;
}
