import { isMap, isNode, isScalar, LineCounter, parseDocument, type Document } from 'yaml';

export type PathSegment = string | number;

export interface Position {
  line: number;
  col: number;
}

export interface YamlSyntaxProblem extends Position {
  message: string;
}

/** A parsed YAML document that can say where a key or a value is. */
export class YamlSource {
  readonly doc: Document;
  readonly errors: readonly YamlSyntaxProblem[];
  readonly #lines: LineCounter;

  constructor(text: string) {
    this.#lines = new LineCounter();
    this.doc = parseDocument(text, { lineCounter: this.#lines, prettyErrors: false });
    this.errors = this.doc.errors.map((e) => ({
      message: e.message.split('\n')[0] ?? e.message,
      ...this.#lines.linePos(e.pos[0]),
    }));
  }

  toJS(): unknown {
    return this.doc.toJS();
  }

  /** Where the value at `path` starts; for a missing one, where its nearest existing parent starts. */
  valueAt(path: readonly PathSegment[]): Position | undefined {
    for (let n = path.length; n >= 0; n--) {
      const node: unknown = n === 0 ? this.doc.contents : this.doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) return this.#lines.linePos(node.range[0]);
    }
    return undefined;
  }

  /** Where the key that ends `path` is written (for unknown keys); falls back to the value. */
  keyAt(path: readonly PathSegment[]): Position | undefined {
    const parent: unknown = path.length === 1 ? this.doc.contents : this.doc.getIn(path.slice(0, -1), true);
    const last = path[path.length - 1];
    if (isMap(parent)) {
      for (const pair of parent.items) {
        const key = pair.key;
        if (isScalar(key) && key.value === last && key.range) return this.#lines.linePos(key.range[0]);
      }
    }
    return this.valueAt(path);
  }
}
