// The XML layer's fast path (scanSubset) against the real parser (parseXmlFull), on seeded random
// documents: every document of the subset update_engine writes takes the fast path and reads exactly
// as the real parser reads it; documents outside it (comments, CDATA, namespaces, references in
// text...) and mutated ones (truncated, misnested, bad references, stray characters) read the same
// through parseXml as through the real parser, accepted alike or refused with the same error.
import { describe, expect, test } from "bun:test";
import { parseRequest } from "../../internal/omaha/index.ts";
import { parseXml, parseXmlFull, scanSubset, type XmlElement } from "../../internal/omaha/xml.ts";
import { Prng } from "../sim/prng.ts";

type Outcome = { ok: true; root: string } | { ok: false; error: string };

/** The element tree as JSON, attribute order included, or the error a reader threw (its class and message). */
function outcome(read: (s: string) => XmlElement, doc: string): Outcome {
  try {
    return { ok: true, root: JSON.stringify(read(doc)) };
  } catch (e) {
    return { ok: false, error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
  }
}

const WS = [" ", "  ", "\n", "\t", "\r\n", "\r", "\n    "];
const ws = (r: Prng, min: 0 | 1): string => (min === 0 && r.chance(0.5) ? "" : Array.from({ length: r.range(1, 2) }, () => r.pick(WS)).join(""));

// Value pieces: plain text, characters that are legal raw in a value, every kind of reference.
const VALUE_PARTS = ["4152.2.0", "stable", "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}", "x", " ", "\t", "\n", ">", "/", "=", "?", "Zürich", "🚀", "&amp;", "&lt;", "&gt;", "&quot;", "&apos;", "&#65;", "&#x1F680;", "&#xfc;", "&#13;", "&amp;#65;"];
const KNOWN_ATTRS = ["protocol", "version", "updaterversion", "installsource", "ismachine", "appid", "track", "bootid", "machineid", "eventtype", "eventresult", "errorcode", "previousversion", "active", "delta_okay"];
const NAME_START = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_";
const NAME_REST = `${NAME_START}0123456789.-`;
const KNOWN_ELEMENTS = ["os", "app", "ping", "updatecheck", "event", "urls", "url"];

function randomName(r: Prng): string {
  let n = r.pick([...NAME_START]);
  for (let i = r.int(8); i > 0; i--) n += r.pick([...NAME_REST]);
  return n;
}

function value(r: Prng, quote: string): string {
  const other = quote === '"' ? "'" : '"';
  let v = "";
  for (let i = r.int(5); i > 0; i--) v += r.chance(0.1) ? other : r.pick(VALUE_PARTS);
  return v;
}

function attrs(r: Prng): string {
  const names = new Set<string>();
  for (let i = r.int(6); i > 0; i--) names.add(r.chance(0.6) ? r.pick(KNOWN_ATTRS) : randomName(r));
  let out = "";
  for (const n of names) {
    const q = r.chance(0.7) ? '"' : "'";
    out += `${ws(r, 1)}${n}${ws(r, 0)}=${ws(r, 0)}${q}${value(r, q)}${q}`;
  }
  return out + ws(r, 0);
}

/** Text between tags: whitespace, or characters without references. */
const text = (r: Prng): string => (r.chance(0.7) ? ws(r, 0) : r.pick(["hello", " > ", "]]>", "a/b", "Zürich", `"q" 'a' x=y`, "\r\n"]));

/** An element of the subset: known or unknown name, self-closing or with children and text. */
function element(r: Prng, name: string, depth: number): string {
  const open = `<${name}${attrs(r)}`;
  if (depth > 3 || r.chance(0.3)) return `${open}/>`;
  let body = text(r);
  for (let i = depth === 0 ? r.range(1, 4) : r.int(4); i > 0; i--) {
    body += element(r, r.chance(0.6) ? r.pick(KNOWN_ELEMENTS) : randomName(r), depth + 1) + text(r);
  }
  return `${open}>${body}</${name}${ws(r, 0)}>`;
}

function subsetDocument(r: Prng): string {
  const q = r.chance(0.5) ? '"' : "'";
  const decl = r.chance(0.7) ? `<?xml version=${q}1.0${q}${r.chance(0.5) ? ` encoding=${q}UTF-8${q}` : ""}${ws(r, 0)}?>` : "";
  return `${decl}${ws(r, 0)}${element(r, "request", 0)}${ws(r, 0)}`;
}

// Well-formed (mostly) XML the fast path leaves to the real parser.
const FOREIGN = ["<!-- a comment -->", "<![CDATA[ <x> ]]>", "<?pi data?>", "text &amp; more", "&#65;", "<a:b/>", '<x a:b="1"/>', '<x v="a\rb"/>', '<x v="a<b"/>', "<constructor/>", '<x toString="1"/>', '<x prototype="1"/>', "<é/>"];

function foreignDocument(r: Prng): string {
  const doc = subsetDocument(r);
  const at = doc.indexOf("</request");
  if (r.chance(0.1)) return `\ufeff${doc}`;
  if (r.chance(0.1)) return `${r.pick(["<!DOCTYPE request>", '<!DOCTYPE request [<!ENTITY a "b">]>', "<!DOCTYPE request [<!ENTITY a>]>"])}${doc}`;
  if (r.chance(0.1)) return `${r.pick(['<?xml version="1.0?>" ?>', "<?xml version='>'?>", "<?xml-stylesheet href='a'?>", "<?xml?>", "<?xml version=1.0?>", " <?xml version='1.0'?>"])}${doc.replace(/^<\?xml[^>]*>/, "")}`;
  return at === -1 ? doc : doc.slice(0, at) + r.pick(FOREIGN) + doc.slice(at);
}

function mutate(r: Prng, doc: string): string {
  const at = r.int(doc.length + 1);
  switch (r.int(9)) {
    case 0:
      return doc.slice(0, at);
    case 1:
      return doc.slice(0, at) + doc.slice(at + 1);
    case 2:
      return doc.slice(0, at) + r.pick(["<", "&", '"', "'", ">", "/", "=", "<<", "&;", "</"]) + doc.slice(at);
    case 3:
      return doc.replace(/<\/(\w+)/, "</$1x");
    case 4:
      return doc.replace(/<(\w+)/, "<$1><z");
    case 5:
      return doc.replace(/(\w+)="/, '$1="" $1="');
    case 6:
      return doc.replace(/&(\w+|#x?\w+);/, r.pick(["&bogus;", "&#0;", "&#xZZ;", "&#;", "&$1", "&#x110000;"]));
    case 7:
      return `${doc}${r.pick(["<request/>", "x", "</request>", "<!-- c -->", "<?xml version='1.0'?>"])}`;
    default:
      return doc.replace(/(\w)="/, "$1 ");
  }
}

describe("XML fast path against the real parser", () => {
  test("every document of the subset takes the fast path and reads as the real parser reads it", () => {
    const r = new Prng(7);
    for (let n = 0; n < 3000; n++) {
      const doc = subsetDocument(r);
      const full = outcome(parseXmlFull, doc);
      if (!full.ok) throw new Error(`generator wrote a document the real parser refuses: ${full.error}\n${doc}`);
      const fast = scanSubset(doc);
      if (fast === undefined) throw new Error(`fast path declined a subset document:\n${doc}`);
      expect(JSON.stringify(fast)).toBe(full.root);
    }
  });

  test("documents outside the subset read the same through parseXml as through the real parser", () => {
    const r = new Prng(11);
    let declined = 0;
    for (let n = 0; n < 2000; n++) {
      const doc = foreignDocument(r);
      const full = outcome(parseXmlFull, doc);
      const fast = scanSubset(doc);
      if (fast === undefined) declined++;
      else expect(full).toEqual({ ok: true, root: JSON.stringify(fast) });
      expect(outcome(parseXml, doc)).toEqual(full);
    }
    expect(declined).toBeGreaterThan(1500);
  });

  test("mutated documents are refused by both or read identically, with the real parser's error", () => {
    const r = new Prng(13);
    const seen = { refused: 0, accepted: 0, fast: 0 };
    for (let n = 0; n < 6000; n++) {
      const doc = mutate(r, subsetDocument(r));
      const full = outcome(parseXmlFull, doc);
      const fast = scanSubset(doc);
      if (fast !== undefined) {
        seen.fast++;
        expect(full).toEqual({ ok: true, root: JSON.stringify(fast) });
      }
      expect(outcome(parseXml, doc)).toEqual(full);
      seen[full.ok ? "accepted" : "refused"]++;
    }
    // The mutations exercise both sides: many refusals, and acceptances through the fast path.
    expect(seen.refused).toBeGreaterThan(2000);
    expect(seen.fast).toBeGreaterThan(500);
  });

  test.each([
    '<request protocol="3.0"><app appid="x"><constructor/></app></request>',
    '<request protocol="3.0" __proto__="1"><app appid="x"/></request>',
    '<request protocol="3.0"><app appid="x" prototype=""/></request>',
    '<!DOCTYPE request [<!ENTITY a>]><request protocol="3.0"><app appid="x"/></request>',
    '<!DOCTYPE request [<!ELEMENT>]><request protocol="3.0"><app appid="x"/></request>',
  ])("what the real parser cannot represent is a refusal, not a crash: %p", (doc) => {
    // The validator passes these; fast-xml-parser then throws a plain Error (a server's 500).
    expect(scanSubset(doc)).toBeUndefined();
    const r = parseRequest(doc);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(/^malformed XML: (\[SECURITY\] Invalid name|Invalid (entity|element) name)/);
  });

  test("deep nesting: the real parser's limit decides, a refusal past it", () => {
    const results = new Set<string>();
    for (let depth = 1; depth <= 120; depth++) {
      for (const leaf of ["", "<b/>"]) {
        const doc = `<request protocol="3.0"><app appid="x"/>${"<a>".repeat(depth)}${leaf}${"</a>".repeat(depth)}</request>`;
        const full = outcome(parseXmlFull, doc);
        expect(outcome(parseXml, doc)).toEqual(full);
        results.add(full.ok ? "ok" : full.error);
      }
    }
    expect([...results]).toEqual(["ok", "XmlSyntaxError: Maximum nested tags exceeded"]);
  });

  test("request documents: parseRequest reads the fast path's tree as the real parser's", () => {
    const r = new Prng(17);
    for (let n = 0; n < 300; n++) {
      const q = () => (r.chance(0.5) ? '"' : "'");
      const a = q();
      const doc = `<request protocol=${a}3.0${a}${ws(r, 1)}version="${r.pick(["1&amp;2", "v", ""])}"><os platform='CoreOS'/>${ws(r, 0)}<app appid="{x}" machinealias="${r.pick(["Z&#xFC;rich", "a&lt;b", "db-1"])}" delta_okay=${a}${r.pick(["true", "false"])}${a}><ping active="1"></ping><event eventtype="3" eventresult="${r.pick(["0", "2", "-5", "x"])}"/></app></request>`;
      expect(scanSubset(doc)).toBeDefined();
      expect(JSON.stringify(parseXml(doc))).toBe(JSON.stringify(parseXmlFull(doc)));
      const p = parseRequest(doc);
      if (doc.includes('eventresult="x"')) expect(p).toEqual({ ok: false, error: "app[0]/event[0]@eventresult: must be a decimal integer" });
      else expect(p.ok).toBe(true);
    }
  });
});
