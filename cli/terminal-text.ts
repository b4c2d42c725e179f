/**
 * Text from the audit trail or the cluster, made safe to print on an operator's terminal. A project
 * path, ref or reason can carry what a GitLab payload carried, and a table printed as is lets the
 * text drive the terminal: `\x1b[2J` clears the screen, colours and titles change, a right-to-left
 * override (U+202E) shows a name backwards. Each such character is printed as its escape instead,
 * visible and never obeyed. `--json` needs none of this: JSON escapes them.
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
