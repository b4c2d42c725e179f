/**
 * Text from the audit trail or the cluster, made safe to print on an operator's terminal. A project
 * path, ref or reason can carry what a GitLab payload carried, and a table printed as is lets the
 * text drive the terminal: `\x1b[2J` clears the screen, colours and titles change, a right-to-left
 * override (U+202E) shows a name backwards. Each such character is printed as its escape instead,
 * visible and never obeyed. `--json` prints through printableJson: JSON.stringify escapes C0 but
 * leaves DEL, C1 (U+009B is CSI) and the bidi controls raw.
 */
const UNSAFE = /[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu;

/**
 * @example
 * printable("mike/\u001b[2Jdiaspora"); // "mike/\\x1b[2Jdiaspora"
 */
export function printable(text: string): string {
  return text.replace(UNSAFE, (char) => {
    const code = char.codePointAt(0) ?? 0;
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/**
 * JSON.stringify's text with what it leaves raw (DEL, C1, bidi controls) as `\u` escapes: the same
 * JSON once parsed, and never obeyed by the terminal it is printed on.
 *
 * @example
 * printableJson({ instance: "https://gitlab.example.com\u009b2J" }); // '{"instance":"https://gitlab.example.com\\u009b2J"}'
 */
export function printableJson(value: unknown): string {
  return JSON.stringify(value).replace(
    UNSAFE,
    (char) => `\\u${(char.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
  );
}
