/**
 * A tiny strict XML reader for the TwiML tests: an optional `<?xml ...?>` declaration, one
 * root element, elements with quoted attributes, text and the five named or numeric entity
 * references. Anything else (a stray `<` or `&`, an unclosed or mismatched tag, a repeated
 * attribute, comments, CDATA, DOCTYPE) throws. Not a general XML parser: enough to prove
 * that what we send is well-formed and to read it back.
 */
export interface XmlElement {
  name: string;
  attributes: Record<string, string>;
  children: Array<XmlElement | string>;
}

const NAME = /[A-Za-z_][\w.-]*/y;
const SPACE = /[ \t\r\n]*/y;
const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

export function parseXml(source: string): XmlElement {
  let at = 0;
  const fail = (why: string): never => {
    throw new SyntaxError(`XML: ${why} at offset ${at}: ${JSON.stringify(source.slice(at, at + 30))}`);
  };
  const match = (pattern: RegExp): string => {
    pattern.lastIndex = at;
    const found = pattern.exec(source);
    if (found === null) return '';
    at += found[0].length;
    return found[0];
  };
  const expect = (text: string): void => {
    if (!source.startsWith(text, at)) fail(`expected ${JSON.stringify(text)}`);
    at += text.length;
  };
  const decode = (raw: string): string =>
    raw.replace(/&([^;]*);|[&<]/g, (whole, entity: string | undefined) => {
      if (entity === undefined) return fail(`a bare ${JSON.stringify(whole)}`);
      const numeric = /^#(?:x([0-9A-Fa-f]+)|(\d+))$/.exec(entity);
      if (numeric) return String.fromCodePoint(parseInt(numeric[1] ?? numeric[2] ?? '', numeric[1] ? 16 : 10));
      return ENTITIES[entity] ?? fail(`an unknown entity &${entity};`);
    });

  const element = (): XmlElement => {
    expect('<');
    const name = match(NAME) || fail('expected an element name');
    const attributes: Record<string, string> = {};
    for (;;) {
      const spaced = match(SPACE) !== '';
      if (source.startsWith('/>', at)) {
        at += 2;
        return { name, attributes, children: [] };
      }
      if (source.startsWith('>', at)) {
        at += 1;
        break;
      }
      if (!spaced) fail('expected a space before an attribute');
      const attribute = match(NAME) || fail('expected an attribute name');
      if (attribute in attributes) fail(`a repeated attribute ${attribute}`);
      match(SPACE);
      expect('=');
      match(SPACE);
      const quote = source[at];
      if (quote !== '"' && quote !== "'") fail('expected a quoted attribute value');
      const end = source.indexOf(quote as string, at + 1);
      if (end < 0) fail('an unterminated attribute value');
      attributes[attribute] = decode(source.slice(at + 1, end));
      at = end + 1;
    }
    const children: Array<XmlElement | string> = [];
    for (;;) {
      const next = source.indexOf('<', at);
      if (next < 0) fail(`an unclosed <${name}>`);
      if (next > at) children.push(decode(source.slice(at, next)));
      at = next;
      if (source.startsWith('</', at)) {
        at += 2;
        if (match(NAME) !== name) fail(`expected </${name}>`);
        match(SPACE);
        expect('>');
        return { name, attributes, children };
      }
      children.push(element());
    }
  };

  if (source.startsWith('<?xml')) {
    const end = source.indexOf('?>');
    if (end < 0 || !/^<\?xml version="1\.0"( encoding="UTF-8")?\s*\?>$/.test(source.slice(0, end + 2))) fail('a malformed XML declaration');
    at = end + 2;
  }
  match(SPACE);
  const root = element();
  match(SPACE);
  if (at !== source.length) fail('content after the root element');
  return root;
}

/** The text inside `element`, its children's included. */
export function textOf(element: XmlElement): string {
  return element.children.map((child) => (typeof child === 'string' ? child : textOf(child))).join('');
}
