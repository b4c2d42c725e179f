/**
 * EventBridge event patterns: validation and matching, with EventBridge's content-filter semantics.
 *
 * Semantics follow the AWS user guide ("Amazon EventBridge event patterns", "Content filtering in
 * Amazon EventBridge event patterns", "Comparison operators") and, where the guide is silent, the
 * rule compiler EventBridge is built on (github.com/aws/event-ruler, JsonRuleCompiler / ByteMachine /
 * CIDR) plus LocalStack's pattern fixtures, which were recorded against real EventBridge:
 *
 * - A pattern is flattened like Ruler does: nested keys are joined with ".", `$or` expands into
 *   alternative branches, and a field is "present" only where the event has a leaf value (string,
 *   number, boolean or null) at that path. So `exists` only sees leaves, an empty array has no
 *   values, and `{"a.b": [...]}` also matches `{"a": {"b": ...}}` (Ruler's dot-joining).
 * - Event arrays match if any element matches; two fields of one branch must come from the same
 *   element of any array they share (Ruler's "array-consistent" matching). `exists: false` asks
 *   that the path has no leaf value anywhere in the event.
 * - `anything-but` needs a present value; it matches every value it does not exclude, including
 *   values of another type (so `{"anything-but": {"prefix": "x"}}` matches the number 5 and null).
 */

/**
 * One element of a field's value list: a literal, or an operator object.
 *
 * @example
 * const values: PatternValue[] = ["Build Finished", { prefix: "Deploy" }, null];
 */
export type PatternValue = string | number | boolean | null | { readonly [operator: string]: unknown };

/**
 * A JSON event pattern, as written in an EventBridge rule.
 *
 * @example
 * const pattern: EventPattern = { source: ["kubler"], detail: { status: [{ "anything-but": "failed" }] } };
 */
export type EventPattern = { readonly [field: string]: readonly PatternValue[] | EventPattern };

/**
 * Why a pattern was refused; the message names the pattern path, e.g.
 * `detail.status: "prefix" must be a string`.
 *
 * @example
 * try { validatePattern({ source: "kubler" }); } catch (e) { if (e instanceof InvalidPatternError) e.path; }
 */
export class InvalidPatternError extends Error {
  override readonly name = "InvalidPatternError";
  /** Where in the pattern, e.g. `$or[1].detail.status`; `pattern` for the whole pattern. */
  readonly path: string;
  /** The problem, without the path. */
  readonly reason: string;

  constructor(message: string, path = "pattern", reason = message) {
    super(message);
    this.path = path;
    this.reason = reason;
  }

  /** @example throw InvalidPatternError.at("detail.status", '"exists" must be true or false'); */
  static at(path: string, reason: string): InvalidPatternError {
    return new InvalidPatternError(`${path}: ${reason}`, path, reason);
  }
}

/**
 * A pattern checked and turned into matchers once, to match many events.
 *
 * @example
 * const compiled: CompiledPattern = compilePattern({ source: ["kubler"] });
 */
export interface CompiledPattern {
  readonly pattern: EventPattern;
  matches(event: unknown): boolean;
}

// Ruler's ComparableNumber range and precision (JsonRuleCompiler refuses operands beyond them); older
// revisions of the AWS guide quoted +/-1e9 and "six digits to the right of the decimal point".
const NUMERIC_LIMIT = 5e9;
const NUMERIC_MAX_DECIMALS = 6;
// Our guards (AWS documents no such numbers): keep compile time and recursion bounded.
const MAX_DEPTH = 32;
const MAX_BRANCHES = 1024;

const OR_KEY = "$or";
const NUMERIC_OPERATORS = new Set(["=", "<", "<=", ">", ">="]);
// Ruler refuses these as field names inside $or so they can never be mistaken for operators.
const RESERVED_IN_OR = new Set([
  "exactly",
  "equals-ignore-case",
  "prefix",
  "suffix",
  "anything-but",
  "exists",
  "wildcard",
  "numeric",
  "cidr",
  ...NUMERIC_OPERATORS,
  "regex",
  "not-wildcard",
  "not-equals-ignore-case",
  "date-after",
  "date-on-or-after",
  "date-before",
  "date-on-or-before",
  "in-date-range",
  "ip-address-in-range",
  "ip-address-not-in-range",
]);

type Leaf = string | number | boolean | null;
type ValueMatcher = (value: Leaf) => boolean;

interface FieldSpec {
  readonly path: string;
  readonly accepts: ValueMatcher;
  /** True when the list holds `{"exists": false}`: an absent field satisfies it. */
  readonly matchesAbsent: boolean;
}

type Branch = Map<string, FieldSpec>;

interface Walk {
  /** Path for error messages, with `$or[i]` steps. */
  readonly display: string;
  /** Flattened event path the fields below live at ("" at the root). */
  readonly prefix: string;
  readonly depth: number;
  readonly insideOr: boolean;
}

const compiledCache = new WeakMap<object, CompiledPattern>();

/**
 * Checks a pattern against EventBridge's rules and returns it typed; throws InvalidPatternError naming
 * the path and the problem. The compiled form is cached, so matching the returned pattern is cheap.
 *
 * @example
 * const pattern = validatePattern(JSON.parse('{"detail": {"n": [{"numeric": [">", 0]}]}}'));
 */
export function validatePattern(pattern: unknown): EventPattern {
  return compilePattern(pattern).pattern;
}

/**
 * Whether an event matches a pattern. Compiles (and validates) the pattern on first use and reuses
 * that for the same pattern object; patterns are treated as immutable. Throws InvalidPatternError for
 * an invalid pattern rather than quietly matching nothing.
 *
 * @example
 * matchesPattern({ source: ["kubler"] }, { source: "kubler", detail: {} }); // true
 */
export function matchesPattern(pattern: EventPattern, event: unknown): boolean {
  return compilePattern(pattern).matches(event);
}

/**
 * Validates a pattern and builds its matcher once; `matches` then only walks the event paths the
 * pattern names.
 *
 * @example
 * const deploys = compilePattern({ "detail-type": [{ prefix: "Deploy" }] });
 * deploys.matches({ "detail-type": "Deploy Requested" }); // true
 */
export function compilePattern(pattern: unknown): CompiledPattern {
  if (isPlainObject(pattern)) {
    const cached = compiledCache.get(pattern);
    if (cached) return cached;
  } else {
    throw InvalidPatternError.at("pattern", `must be a JSON object, got ${describe(pattern)}`);
  }
  const branches = compileObject(pattern, { display: "", prefix: "", depth: 0, insideOr: false }, [
    new Map(),
  ]);
  const compiled = buildMatcher(pattern as EventPattern, branches);
  compiledCache.set(pattern, compiled);
  return compiled;
}

// ---------------------------------------------------------------------------------------------
// Compiling: objects, $or and field lists

function compileObject(node: Record<string, unknown>, walk: Walk, branches: Branch[]): Branch[] {
  const keys = Object.keys(node);
  if (keys.length === 0) fail(walk.display, "empty objects are not allowed");
  if (walk.depth >= MAX_DEPTH) fail(walk.display, `nesting is deeper than ${MAX_DEPTH} levels`);
  let current = branches;
  for (const key of keys) {
    current = compileEntry(key, node[key], walk, current);
  }
  return current;
}

function compileEntry(key: string, value: unknown, walk: Walk, branches: Branch[]): Branch[] {
  const display = joinDisplay(walk.display, key);
  if (key === OR_KEY) return compileOr(value, display, walk, branches);
  if (walk.insideOr && RESERVED_IN_OR.has(key)) {
    fail(display, `"${key}" is a reserved word and cannot be a field name inside $or`);
  }
  const path = walk.prefix === "" ? key : `${walk.prefix}.${key}`;
  if (Array.isArray(value)) {
    const spec = compileFieldList(value, path, display);
    // Ruler keeps the last definition of a path (AWS: "the last reference will be the one used").
    for (const branch of branches) branch.set(path, spec);
    return branches;
  }
  if (isPlainObject(value)) {
    return compileObject(value, { ...walk, display, prefix: path, depth: walk.depth + 1 }, branches);
  }
  return fail(display, `must be an array of match values or a nested object, got ${describe(value)}`);
}

function compileOr(value: unknown, display: string, walk: Walk, branches: Branch[]): Branch[] {
  if (!Array.isArray(value)) fail(display, `must be an array of at least 2 objects, got ${describe(value)}`);
  if (value.length < 2) fail(display, `must have at least 2 alternatives, got ${value.length}`);
  const expanded: Branch[] = [];
  value.forEach((alternative: unknown, index) => {
    const altDisplay = `${display}[${index}]`;
    if (!isPlainObject(alternative)) fail(altDisplay, `must be an object, got ${describe(alternative)}`);
    const copies = branches.map((branch) => new Map(branch));
    const altWalk = { display: altDisplay, prefix: walk.prefix, depth: walk.depth + 1, insideOr: true };
    expanded.push(...compileObject(alternative, altWalk, copies));
    if (expanded.length > MAX_BRANCHES) fail(display, `expands into more than ${MAX_BRANCHES} combinations`);
  });
  return expanded;
}

function compileFieldList(values: readonly unknown[], path: string, display: string): FieldSpec {
  if (values.length === 0) fail(display, "empty arrays are not allowed");
  const matchers: ValueMatcher[] = [];
  let matchesAbsent = false;
  for (const value of values) {
    const compiled = compileValue(value, display);
    if (compiled === "absent") matchesAbsent = true;
    else matchers.push(compiled);
  }
  const accepts: ValueMatcher =
    matchers.length === 1 && matchers[0] ? matchers[0] : (leaf) => matchers.some((matcher) => matcher(leaf));
  return { path, accepts, matchesAbsent };
}

function compileValue(value: unknown, display: string): ValueMatcher | "absent" {
  if (typeof value === "string") return exactString(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) fail(display, `match values must be finite numbers, got ${value}`);
    return (leaf) => leaf === value;
  }
  if (typeof value === "boolean" || value === null) return (leaf) => leaf === value;
  if (isPlainObject(value)) return compileOperator(value, display);
  return fail(
    display,
    `match values must be strings, numbers, booleans, null or operator objects, got ${describe(value)}`,
  );
}

// Ruler turns a literal that parses as an IP address into a one-address range, so "10.0.0.1" also
// matches "010.0.0.1" and IPv6 literals match regardless of zero compression or case.
function exactString(expected: string): ValueMatcher {
  const ip = parseIp(expected);
  if (!ip) return (leaf) => leaf === expected;
  return (leaf) => typeof leaf === "string" && (leaf === expected || sameBytes(parseIp(leaf), ip));
}

// ---------------------------------------------------------------------------------------------
// Compiling: operator objects

function compileOperator(expression: Record<string, unknown>, display: string): ValueMatcher | "absent" {
  const operator = singleKey(expression, display, "a match expression");
  const operand = expression[operator];
  switch (operator) {
    case "prefix":
      return compileAffix("prefix", operand, display);
    case "suffix":
      return compileAffix("suffix", operand, display);
    case "equals-ignore-case": {
      const expected = requireString(operand, display, '"equals-ignore-case"').toLowerCase();
      return ignoringCase((value) => value === expected);
    }
    case "wildcard":
      return onStrings(wildcardMatcher(requireString(operand, display, '"wildcard"'), display, '"wildcard"'));
    case "anything-but":
      return compileAnythingBut(operand, display);
    case "numeric":
      return compileNumeric(operand, display);
    case "exists":
      if (typeof operand !== "boolean")
        fail(display, `"exists" must be true or false, got ${describe(operand)}`);
      return operand ? () => true : "absent";
    case "cidr":
      return compileCidr(operand, display);
    default:
      return fail(display, `unrecognized match type "${operator}"`);
  }
}

function compileAffix(kind: "prefix" | "suffix", operand: unknown, display: string): ValueMatcher {
  const test = kind === "prefix" ? startsWith : endsWith;
  if (typeof operand === "string") return onStrings((value) => test(value, operand));
  if (!isPlainObject(operand)) fail(display, `"${kind}" must be a string, got ${describe(operand)}`);
  const inner = singleKey(operand, display, `"${kind}"`);
  if (inner !== "equals-ignore-case") {
    fail(display, `"${kind}" only supports "equals-ignore-case" inside it, got "${inner}"`);
  }
  const affix = requireString(operand[inner], display, `"${kind}"."equals-ignore-case"`).toLowerCase();
  return ignoringCase((value) => test(value, affix));
}

function compileNumeric(operand: unknown, display: string): ValueMatcher {
  if (!Array.isArray(operand)) fail(display, `"numeric" must be an array, got ${describe(operand)}`);
  const terms: readonly unknown[] = operand;
  const [operator, bound, upperOperator, upperBound, ...extra] = terms;
  const first = numericTerm(operator, bound, display);
  if (terms.length === 2) return numericRange(first.operator, first.value);
  if (first.operator === "=") fail(display, `"numeric" with "=" takes exactly one number, e.g. ["=", 3]`);
  if (first.operator !== ">" && first.operator !== ">=") {
    fail(display, `"numeric" range must start with its lower bound (">" or ">="), e.g. [">", 0, "<=", 5]`);
  }
  const second = numericTerm(upperOperator, upperBound, display);
  if (second.operator !== "<" && second.operator !== "<=") {
    fail(display, `"numeric" upper bound must use "<" or "<=", got "${second.operator}"`);
  }
  if (extra.length > 0) fail(display, `"numeric" has too many elements, at most 4 are allowed`);
  if (first.value >= second.value)
    fail(display, `"numeric" range is empty: ${first.value} is not below ${second.value}`);
  const lower = numericRange(first.operator, first.value);
  const upper = numericRange(second.operator, second.value);
  return (leaf) => lower(leaf) && upper(leaf);
}

function numericTerm(
  operator: unknown,
  value: unknown,
  display: string,
): { operator: string; value: number } {
  if (typeof operator !== "string" || !NUMERIC_OPERATORS.has(operator)) {
    fail(
      display,
      `"numeric" operator must be one of =, <, <=, >, >=, got ${JSON.stringify(operator) ?? "nothing"}`,
    );
  }
  if (typeof value !== "number")
    fail(display, `"numeric" value after "${operator}" must be a number, got ${describe(value)}`);
  checkNumericLimits(value, display, '"numeric"');
  return { operator, value };
}

function numericRange(operator: string, bound: number): ValueMatcher {
  const compare = {
    "=": (n: number) => n === bound,
    "<": (n: number) => n < bound,
    "<=": (n: number) => n <= bound,
    ">": (n: number) => n > bound,
    ">=": (n: number) => n >= bound,
  }[operator as "=" | "<" | "<=" | ">" | ">="];
  return (leaf) => isComparableNumber(leaf) && compare(leaf);
}

// Ruler only treats an event value as a number when ComparableNumber.generate accepts it: inside the
// range and with at most 6 decimals (it throws otherwise, and ByteMachine then matches the value as
// text only). So 5.0000001 is neither above nor equal to 5: numeric operators never see it.
function isComparableNumber(leaf: Leaf): leaf is number {
  return (
    typeof leaf === "number" && Math.abs(leaf) <= NUMERIC_LIMIT && decimalPlaces(leaf) <= NUMERIC_MAX_DECIMALS
  );
}

function checkNumericLimits(value: number, display: string, what: string): void {
  if (!Number.isFinite(value) || Math.abs(value) > NUMERIC_LIMIT) {
    fail(display, `${what} values must be between -5e9 and 5e9, got ${value}`);
  }
  if (decimalPlaces(value) > NUMERIC_MAX_DECIMALS) {
    fail(display, `${what} values may have at most ${NUMERIC_MAX_DECIMALS} decimal places, got ${value}`);
  }
}

function compileAnythingBut(operand: unknown, display: string): ValueMatcher {
  if (typeof operand === "string") return (leaf) => leaf !== operand;
  if (typeof operand === "number") {
    checkNumericLimits(operand, display, '"anything-but"');
    return (leaf) => leaf !== operand;
  }
  if (Array.isArray(operand)) return anythingButList(operand, display);
  if (isPlainObject(operand)) return anythingButOperator(operand, display);
  return fail(
    display,
    `"anything-but" must be a string, a number, a list of either, or an object with "prefix", "suffix", ` +
      `"equals-ignore-case" or "wildcard", got ${describe(operand)}`,
  );
}

function anythingButList(values: readonly unknown[], display: string): ValueMatcher {
  if (values.length === 0) fail(display, `"anything-but" list must not be empty`);
  for (const value of values) {
    if (typeof value === "number") checkNumericLimits(value, display, '"anything-but"');
    else if (typeof value !== "string") {
      fail(display, `"anything-but" list may only hold strings or numbers, got ${describe(value)}`);
    }
  }
  const kinds = new Set(values.map((value) => typeof value));
  if (kinds.size > 1) fail(display, `"anything-but" list must be all strings or all numbers, not both`);
  const excluded = new Set(values as readonly Leaf[]);
  return (leaf) => !excluded.has(leaf);
}

function anythingButOperator(operand: Record<string, unknown>, display: string): ValueMatcher {
  const inner = singleKey(operand, display, '"anything-but"');
  const what = `"anything-but"."${inner}"`;
  const tests: Record<string, (operands: readonly string[]) => (value: string) => boolean> = {
    prefix: (affixes) => (value) => affixes.some((affix) => startsWith(value, affix)),
    suffix: (affixes) => (value) => affixes.some((affix) => endsWith(value, affix)),
    "equals-ignore-case": (words) => {
      const lowered = new Set(words.map((word) => word.toLowerCase()));
      return (value) => lowered.has(value.toLowerCase());
    },
    wildcard: (globs) => {
      const matchers = globs.map((glob) => wildcardMatcher(glob, display, what));
      return (value) => matchers.some((matcher) => matcher(value));
    },
  };
  const build = tests[inner];
  if (!build) {
    fail(
      display,
      `"anything-but" does not support "${inner}" (use "prefix", "suffix", "equals-ignore-case" or "wildcard")`,
    );
  }
  const operands = stringOrStrings(operand[inner], display, what);
  if ((inner === "prefix" || inner === "suffix") && operands.includes(""))
    fail(display, `${what} must not be empty`);
  const excluded = build(operands);
  // Non-strings are never excluded: Ruler (and EventBridge) match 12 and null against these.
  return (leaf) => typeof leaf !== "string" || !excluded(leaf);
}

function stringOrStrings(operand: unknown, display: string, what: string): readonly string[] {
  if (typeof operand === "string") return [operand];
  if (!Array.isArray(operand) || operand.length === 0 || !operand.every((item) => typeof item === "string")) {
    return fail(display, `${what} must be a string or a non-empty list of strings, got ${describe(operand)}`);
  }
  return operand;
}

function compileCidr(operand: unknown, display: string): ValueMatcher {
  const cidr = requireString(operand, display, '"cidr"');
  const parts = cidr.split("/");
  const [address = "", maskText = ""] = parts;
  if (parts.length !== 2)
    fail(display, `"cidr" must be an address and a mask with one "/", e.g. "10.0.0.0/24"`);
  if (!/^\d+$/.test(maskText))
    fail(display, `"cidr" mask bits must be a non-negative integer, got "${maskText}"`);
  const base = parseIp(address);
  if (!base) fail(display, `"cidr" has an invalid IP address "${address}"`);
  const bits = Number(maskText);
  // Ruler's limits, which exclude /32 and /128: use the address itself as an exact match instead.
  const maxBits = base.length * 8 - 1;
  if (bits > maxBits)
    fail(display, `"cidr" mask bits must be at most ${maxBits} for ${base.length === 4 ? "IPv4" : "IPv6"}`);
  const [low, high] = cidrBounds(base, bits);
  return (leaf) => {
    const ip = typeof leaf === "string" ? parseIp(leaf) : undefined;
    return (
      ip !== undefined &&
      ip.length === low.length &&
      compareBytes(ip, low) >= 0 &&
      compareBytes(ip, high) <= 0
    );
  };
}

// ---------------------------------------------------------------------------------------------
// Compiling: small helpers

function singleKey(expression: Record<string, unknown>, display: string, what: string): string {
  const keys = Object.keys(expression);
  const [only] = keys;
  if (keys.length !== 1 || only === undefined) {
    const got = keys.length === 0 ? "none" : keys.map((key) => `"${key}"`).join(", ");
    return fail(display, `${what} must have exactly one operator, got ${got}`);
  }
  return only;
}

function requireString(operand: unknown, display: string, what: string): string {
  if (typeof operand !== "string") return fail(display, `${what} must be a string, got ${describe(operand)}`);
  return operand;
}

function onStrings(test: (value: string) => boolean): ValueMatcher {
  return (leaf) => typeof leaf === "string" && test(leaf);
}

function ignoringCase(test: (loweredValue: string) => boolean): ValueMatcher {
  return (leaf) => typeof leaf === "string" && test(leaf.toLowerCase());
}

function startsWith(value: string, prefix: string): boolean {
  return value.startsWith(prefix);
}

function endsWith(value: string, suffix: string): boolean {
  return value.endsWith(suffix);
}

function decimalPlaces(value: number): number {
  const [mantissa = "", exponent = "0"] = Math.abs(value).toString().split("e");
  const fraction = mantissa.split(".")[1] ?? "";
  return Math.max(0, fraction.length - Number(exponent));
}

// ---------------------------------------------------------------------------------------------
// Wildcards: "*" matches any run of characters; "\*" is a literal star and "\\" a literal backslash.

function wildcardMatcher(glob: string, display: string, what: string): (value: string) => boolean {
  const segments = parseWildcard(glob, display, what);
  const [first = "", ...rest] = segments;
  const last = rest.pop();
  if (last === undefined) return (value) => value === first;
  return (value) => {
    if (!value.startsWith(first)) return false;
    let position = first.length;
    // Leftmost placement of each middle segment is always safe for a "*"-only glob.
    for (const segment of rest) {
      const found = value.indexOf(segment, position);
      if (found < 0) return false;
      position = found + segment.length;
    }
    return value.length - position >= last.length && value.endsWith(last);
  };
}

/** The literal runs between wildcards: "a*b" gives ["a", "b"], "*" gives ["", ""]. */
function parseWildcard(glob: string, display: string, what: string): string[] {
  const segments: string[] = [];
  let literal = "";
  for (let index = 0; index < glob.length; index++) {
    const char = glob[index];
    if (char === "*") {
      if (glob[index + 1] === "*")
        fail(display, `${what} has consecutive "*" at index ${index}, which is not allowed`);
      segments.push(literal);
      literal = "";
    } else if (char === "\\") {
      const next = glob[index + 1];
      if (next !== "*" && next !== "\\") {
        fail(display, `${what} has an invalid escape at index ${index}: only \\* and \\\\ are allowed`);
      }
      literal += next;
      index++;
    } else {
      literal += char;
    }
  }
  segments.push(literal);
  return segments;
}

// ---------------------------------------------------------------------------------------------
// IP addresses, parsed the way Ruler's CIDR class accepts them (dotted decimal, or hex and colons).

function parseIp(text: string): Uint8Array | undefined {
  return parseIpv4(text) ?? parseIpv6(text);
}

function parseIpv4(text: string): Uint8Array | undefined {
  const match = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (!match) return undefined;
  const octets = match.slice(1).map(Number);
  return octets.every((octet) => octet <= 255) ? Uint8Array.from(octets) : undefined;
}

function parseIpv6(text: string): Uint8Array | undefined {
  if (!/^[0-9a-fA-F:]*:[0-9a-fA-F:]*$/.test(text)) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const [head = "", tail] = halves;
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const missing = 8 - headGroups.length - tailGroups.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const groups = [...headGroups, ...Array<string>(Math.max(missing, 0)).fill("0"), ...tailGroups];
  if (!groups.every((group) => /^[0-9a-fA-F]{1,4}$/.test(group))) return undefined;
  return Uint8Array.from(
    groups.flatMap((group) => [Number.parseInt(group, 16) >> 8, Number.parseInt(group, 16) & 0xff]),
  );
}

// The range is the whole network: "10.0.0.5/24" covers 10.0.0.0 to 10.0.0.255. Ruler's CIDR.cidr once
// started it at the address as written; it has floored it (computeBottomBytes) since
// https://github.com/aws/event-ruler/pull/89 ("Fixing CIDR matching to use floor of provided range").
function cidrBounds(base: Uint8Array, bits: number): [Uint8Array, Uint8Array] {
  const low = new Uint8Array(base.length);
  const high = new Uint8Array(base.length);
  base.forEach((byte, index) => {
    const fixedBits = Math.min(Math.max(bits - index * 8, 0), 8);
    const mask = (0xff << (8 - fixedBits)) & 0xff;
    low[index] = byte & mask;
    high[index] = (byte & mask) | (~mask & 0xff);
  });
  return [low, high];
}

function compareBytes(left: Uint8Array, right: Uint8Array): number {
  for (let index = 0; index < left.length; index++) {
    const difference = (left[index] ?? 0) - (right[index] ?? 0);
    if (difference !== 0) return difference;
  }
  return 0;
}

function sameBytes(left: Uint8Array | undefined, right: Uint8Array): boolean {
  return left !== undefined && left.length === right.length && compareBytes(left, right) === 0;
}

// ---------------------------------------------------------------------------------------------
// Matching

/** A leaf value of the event, with the (array id, index) pairs of every array it sits in. */
interface Sample {
  readonly value: Leaf;
  readonly trail: readonly number[];
}

interface Shape {
  readonly leaves: ReadonlySet<string>;
  /** Every path an event must be walked through to reach a leaf path (dot boundaries of leaves). */
  readonly prefixes: ReadonlySet<string>;
}

interface CompiledBranch {
  readonly fields: readonly FieldSpec[];
}

function buildMatcher(pattern: EventPattern, branches: readonly Branch[]): CompiledPattern {
  const compiledBranches: CompiledBranch[] = branches.map((branch) => ({ fields: [...branch.values()] }));
  const shape = shapeOf(compiledBranches);
  return {
    pattern,
    matches(event: unknown): boolean {
      if (!isPlainObject(event)) return false;
      const samples = collectSamples(event, shape);
      return compiledBranches.some((branch) => branchMatches(branch, samples));
    },
  };
}

function shapeOf(branches: readonly CompiledBranch[]): Shape {
  const leaves = new Set<string>();
  const prefixes = new Set<string>();
  for (const { fields } of branches) {
    for (const { path } of fields) {
      leaves.add(path);
      for (let dot = path.indexOf("."); dot >= 0; dot = path.indexOf(".", dot + 1)) {
        prefixes.add(path.slice(0, dot));
      }
    }
  }
  return { leaves, prefixes };
}

function collectSamples(event: Record<string, unknown>, shape: Shape): Map<string, Sample[]> {
  const samples = new Map<string, Sample[]>();
  let nextArrayId = 0;
  const visitObject = (node: Record<string, unknown>, path: string | undefined, trail: readonly number[]) => {
    for (const key of Object.keys(node)) {
      const child = path === undefined ? key : `${path}.${key}`;
      if (shape.leaves.has(child) || shape.prefixes.has(child)) visitValue(node[key], child, trail);
    }
  };
  const visitValue = (value: unknown, path: string, trail: readonly number[]): void => {
    if (Array.isArray(value)) {
      const id = nextArrayId++;
      value.forEach((element, index) => {
        visitValue(element, path, [...trail, id, index]);
      });
    } else if (isLeaf(value)) {
      if (shape.leaves.has(path)) appendSample(samples, path, { value, trail });
    } else if (isPlainObject(value) && shape.prefixes.has(path)) {
      visitObject(value, path, trail);
    }
  };
  visitObject(event, undefined, []);
  return samples;
}

function appendSample(samples: Map<string, Sample[]>, path: string, sample: Sample): void {
  const existing = samples.get(path);
  if (existing) existing.push(sample);
  else samples.set(path, [sample]);
}

function branchMatches(branch: CompiledBranch, samples: ReadonlyMap<string, Sample[]>): boolean {
  const candidates: Sample[][] = [];
  for (const field of branch.fields) {
    const present = samples.get(field.path);
    if (!present) {
      if (field.matchesAbsent) continue;
      return false;
    }
    const accepted = present.filter((sample) => field.accepts(sample.value));
    if (accepted.length === 0) return false;
    candidates.push(accepted);
  }
  return hasConsistentChoice(candidates);
}

/** Picks one sample per field such that no two come from different elements of the same array. */
function hasConsistentChoice(candidates: Sample[][]): boolean {
  if (candidates.every((samples) => samples.some((sample) => sample.trail.length === 0))) return true;
  const ordered = [...candidates].sort((left, right) => left.length - right.length);
  const chosen: Sample[] = [];
  const search = (index: number): boolean => {
    const options = ordered[index];
    if (!options) return true;
    for (const sample of options) {
      if (!chosen.every((other) => consistent(other, sample))) continue;
      chosen.push(sample);
      if (search(index + 1)) return true;
      chosen.pop();
    }
    return false;
  };
  return search(0);
}

function consistent(left: Sample, right: Sample): boolean {
  for (let i = 0; i < left.trail.length; i += 2) {
    for (let j = 0; j < right.trail.length; j += 2) {
      if (left.trail[i] === right.trail[j] && left.trail[i + 1] !== right.trail[j + 1]) return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function isLeaf(value: unknown): value is Leaf {
  return (
    value === null || typeof value === "string" || typeof value === "number" || typeof value === "boolean"
  );
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "number" || typeof value === "boolean") return `${typeof value} ${String(value)}`;
  return typeof value;
}

function joinDisplay(parent: string, key: string): string {
  return parent === "" ? key : `${parent}.${key}`;
}

function fail(display: string, reason: string): never {
  throw InvalidPatternError.at(display === "" ? "pattern" : display, reason);
}
