import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compilePattern,
  type EventPattern,
  InvalidPatternError,
  matchesPattern,
  type PatternValue,
  validatePattern,
} from "../../shared/domain/event-pattern.js";

/** Asserts the pattern is valid, then that it matches every `yes` event and none of the `no` events. */
function expectMatches(pattern: EventPattern, yes: readonly unknown[], no: readonly unknown[]): void {
  expect(() => validatePattern(pattern)).not.toThrow();
  for (const event of yes) expect(matchesPattern(pattern, event), JSON.stringify(event)).toBe(true);
  for (const event of no) expect(matchesPattern(pattern, event), JSON.stringify(event)).toBe(false);
}

function rejection(pattern: unknown): InvalidPatternError {
  try {
    validatePattern(pattern);
  } catch (error) {
    if (error instanceof InvalidPatternError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(pattern)} to be rejected`);
}

// The EC2 event used throughout the AWS guide's "Amazon EventBridge event patterns" page.
const EC2_EVENT = {
  version: "0",
  id: "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
  "detail-type": "EC2 Instance State-change Notification",
  source: "aws.ec2",
  account: "111122223333",
  time: "2017-12-22T18:43:48Z",
  region: "us-west-1",
  resources: ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
  detail: { "instance-id": "i-1234567890abcdef0", state: "terminated" },
};

// "Matching null values and empty strings" and "Field matching" (eb-event-patterns-null-values,
// eb-filtering-data-types) both use this Auto Scaling event.
const AUTOSCALING_EVENT = {
  version: "0",
  id: "3e3c153a-8339-4e30-8c35-687ebef853fe",
  "detail-type": "EC2 Instance Launch Successful",
  source: "aws.autoscaling",
  account: "123456789012",
  time: "2015-11-11T21:31:47Z",
  region: "us-east-1",
  resources: [],
  detail: { eventVersion: "", responseElements: null },
};

describe("AWS guide: Amazon EventBridge event patterns", () => {
  it("matches the EC2 instance-termination example (Create event patterns)", () => {
    const pattern = {
      source: ["aws.ec2"],
      "detail-type": ["EC2 Instance State-change Notification"],
      detail: { state: ["terminated"] },
    };
    expectMatches(
      pattern,
      [EC2_EVENT],
      [
        { ...EC2_EVENT, detail: { ...EC2_EVENT.detail, state: "running" } },
        { ...EC2_EVENT, source: "aws.s3" },
      ],
    );
  });

  it("matches any value of a field's list (Match values)", () => {
    expectMatches(
      { source: ["aws.ec2", "aws.fargate"] },
      [EC2_EVENT, { source: "aws.fargate" }],
      [{ source: "aws.ecs" }, { detail: {} }],
    );
  });

  it("compares strings character by character without case folding", () => {
    expectMatches({ source: ["aws.ec2"] }, [EC2_EVENT], [{ source: "AWS.EC2" }, { source: "aws.ec2 " }]);
  });

  it("matches a null field with [null] (Field matching)", () => {
    const pattern = {
      source: ["aws.autoscaling"],
      "detail-type": ["EC2 Instance Launch Successful"],
      detail: { responseElements: [null] },
    };
    expectMatches(
      pattern,
      [AUTOSCALING_EVENT],
      [{ ...AUTOSCALING_EVENT, detail: { eventVersion: "", responseElements: {} } }],
    );
  });

  it("matches numbers inside nested objects (Value matching, Macie example)", () => {
    const pattern = {
      source: ["aws.macie"],
      "detail-type": ["Macie Alert"],
      detail: { "risk-score": [80], trigger: { risk: [8] } },
    };
    const alert = {
      source: "aws.macie",
      "detail-type": "Macie Alert",
      detail: {
        "risk-score": 80,
        trigger: { "alert-type": "basic", risk: 8 },
        tags: ["Custom_Alert", "Insider"],
      },
    };
    expectMatches(
      pattern,
      [alert],
      [
        { ...alert, detail: { ...alert.detail, "risk-score": 81 } },
        { ...alert, detail: { ...alert.detail, "risk-score": "80" } },
      ],
    );
  });
});

describe("AWS guide: Matching null values and empty strings", () => {
  it('matches an empty string with [""] and null with [null], which are not interchangeable', () => {
    expectMatches(
      { detail: { eventVersion: [""] } },
      [AUTOSCALING_EVENT],
      [{ detail: { eventVersion: null } }],
    );
    expectMatches(
      { detail: { responseElements: [null] } },
      [AUTOSCALING_EVENT],
      [{ detail: { responseElements: "" } }],
    );
  });
});

describe("AWS guide: Arrays in Amazon EventBridge event patterns", () => {
  it("matches when the pattern's values and the event's array intersect", () => {
    const pattern = {
      resources: [
        "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
        "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f",
        "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f",
      ],
    };
    const matching = {
      resources: [
        "arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b:autoScalingGroupName/ASGTerminate",
        "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
      ],
    };
    expectMatches(pattern, [matching], [{ resources: ["arn:aws:ec2:us-east-1:999999999999:instance/x"] }]);
  });

  it("finds nothing in an empty array, not even [null] (LocalStack fixture arrays_empty_null_NEG)", () => {
    expectMatches({ resources: [null] }, [], [AUTOSCALING_EVENT]);
  });
});

describe("AWS guide: Content filtering in Amazon EventBridge event patterns", () => {
  it("Prefix matching", () => {
    expectMatches(
      { time: [{ prefix: "2017-10-02" }] },
      [{ time: "2017-10-02T18:43:48Z" }],
      [{ time: "2017-10-03T18:43:48Z" }, { time: 20171002 }],
    );
  });

  it("Prefix matching while ignoring case", () => {
    expectMatches(
      { detail: { service: [{ prefix: { "equals-ignore-case": "EventB" } }] } },
      [
        { detail: { service: "EventBridge" } },
        { detail: { service: "EVENTBRIDGE" } },
        { detail: { service: "eventb" } },
      ],
      [{ detail: { service: "Event Bridge" } }],
    );
  });

  it("Suffix matching", () => {
    expectMatches(
      { FileName: [{ suffix: ".png" }] },
      [{ FileName: "image.png" }],
      [{ FileName: "image.PNG" }],
    );
  });

  it("Suffix matching while ignoring case", () => {
    expectMatches(
      { detail: { FileName: [{ suffix: { "equals-ignore-case": ".png" } }] } },
      [{ detail: { FileName: "image.png" } }, { detail: { FileName: "image.PNG" } }],
      [{ detail: { FileName: "image.jpg" } }],
    );
  });

  it("Anything-but matching with a string and with a number", () => {
    expectMatches(
      { detail: { state: [{ "anything-but": "initializing" }] } },
      [{ detail: { state: "running" } }],
      [{ detail: { state: "initializing" } }],
    );
    expectMatches(
      { detail: { "x-limit": [{ "anything-but": 123 }] } },
      [{ detail: { "x-limit": 124 } }],
      [{ detail: { "x-limit": 123 } }],
    );
  });

  it("Anything-but matching with a list of strings and a list of numbers", () => {
    expectMatches(
      { detail: { state: [{ "anything-but": ["stopped", "overloaded"] }] } },
      [{ detail: { state: "running" } }],
      [{ detail: { state: "stopped" } }, { detail: { state: "overloaded" } }],
    );
    expectMatches(
      { detail: { "x-limit": [{ "anything-but": [100, 200, 300] }] } },
      [{ detail: { "x-limit": 150 } }],
      [{ detail: { "x-limit": 200 } }],
    );
  });

  it("Anything-but matching on a prefix", () => {
    expectMatches(
      { detail: { state: [{ "anything-but": { prefix: "init" } }] } },
      [{ detail: { state: "running" } }],
      [{ detail: { state: "initializing" } }],
    );
  });

  it("Anything-but on a suffix, ignoring case, and with a wildcard (Comparison operators table)", () => {
    expectMatches(
      { FileName: [{ "anything-but": { suffix: ".png" } }] },
      [{ FileName: "notes.txt" }],
      [{ FileName: "image.png" }],
    );
    expectMatches(
      { state: [{ "anything-but": { "equals-ignore-case": "initializing" } }] },
      [{ state: "running" }],
      [{ state: "INITIALIZING" }, { state: "Initializing" }],
    );
    expectMatches(
      { FilePath: [{ "anything-but": { wildcard: "*/lib/*" } }] },
      [{ FilePath: "/usr/bin/env" }],
      [{ FilePath: "/usr/lib/libc.so" }],
    );
    expectMatches(
      { Region: [{ "anything-but": { prefix: "us-" } }] },
      [{ Region: "eu-west-1" }],
      [{ Region: "us-east-1" }],
    );
  });

  it("Numeric matching", () => {
    const pattern = {
      detail: {
        "c-count": [{ numeric: [">", 0, "<=", 5] }],
        "d-count": [{ numeric: ["<", 10] }],
        "x-limit": [{ numeric: ["=", 3.018e2] }],
      },
    };
    const event = { detail: { "c-count": 5, "d-count": 3, "x-limit": 301.8 } };
    expectMatches(
      pattern,
      [event],
      [
        { detail: { ...event.detail, "c-count": 0 } },
        { detail: { ...event.detail, "d-count": 10 } },
        { detail: { ...event.detail, "x-limit": 301.81 } },
        { detail: { ...event.detail, "c-count": "5" } },
      ],
    );
  });

  it("IP address matching (IPv4 and IPv6)", () => {
    expectMatches(
      { detail: { sourceIPAddress: [{ cidr: "10.0.0.0/24" }] } },
      [{ detail: { sourceIPAddress: "10.0.0.0" } }, { detail: { sourceIPAddress: "10.0.0.255" } }],
      [{ detail: { sourceIPAddress: "10.0.1.0" } }, { detail: { sourceIPAddress: "not an ip" } }],
    );
    expectMatches(
      { detail: { sourceIPAddress: [{ cidr: "2001:db8::/32" }] } },
      [{ detail: { sourceIPAddress: "2001:db8:ffff::1" } }, { detail: { sourceIPAddress: "2001:DB8::" } }],
      [{ detail: { sourceIPAddress: "2001:db9::" } }, { detail: { sourceIPAddress: "10.0.0.1" } }],
    );
  });

  it("Exists matching, and exists only seeing leaf nodes", () => {
    expectMatches(
      { detail: { state: [{ exists: true }] } },
      [{ detail: { "instance-id": "i-abcd1111", state: "pending" } }],
      [{ detail: { "c-count": { c1: 100 } } }],
    );
    // Older revisions of the same section: exists:false matches when c-count is absent or an object.
    expectMatches(
      { detail: { "c-count": [{ exists: false }] } },
      [{ detail: { state: ["initializing", "running"] } }, { detail: { "c-count": { c1: 100 } } }],
      [{ detail: { "c-count": 3 } }],
    );
  });

  it("Complex example with multiple matching", () => {
    const pattern = {
      time: [{ prefix: "2017-10-02" }],
      detail: {
        state: [{ "anything-but": "initializing" }],
        "c-count": [{ numeric: [">", 0, "<=", 5] }],
        "d-count": [{ numeric: ["<", 10] }],
        "x-limit": [{ "anything-but": [100, 200, 300] }],
      },
    };
    const event = {
      time: "2017-10-02T16:24:49Z",
      detail: { state: "running", "c-count": 5, "d-count": 3, "x-limit": 301.8 },
    };
    expectMatches(
      pattern,
      [event],
      [
        { ...event, detail: { ...event.detail, state: "initializing" } },
        { ...event, detail: { ...event.detail, "x-limit": 300 } },
      ],
    );
  });

  it("Equals-ignore-case matching and Empty (Comparison operators table)", () => {
    expectMatches(
      { Name: [{ "equals-ignore-case": "alice" }] },
      [{ Name: "Alice" }, { Name: "ALICE" }],
      [{ Name: "Alicia" }],
    );
    expectMatches({ LastName: [""] }, [{ LastName: "" }], [{ LastName: " " }, { LastName: null }]);
    expectMatches(
      { Location: ["New York"], Day: ["Monday"] },
      [{ Location: "New York", Day: "Monday" }],
      [{ Location: "New York", Day: "Tuesday" }],
    );
  });
});

// Examples from the AWS Compute Blog post "Filtering events in Amazon EventBridge with wildcard pattern
// matching" and the event-ruler README.
describe("Wildcard matching", () => {
  it("matches zero or more characters per *", () => {
    expectMatches(
      { FileName: [{ wildcard: "*.png" }] },
      [{ FileName: "a.png" }, { FileName: ".png" }],
      [{ FileName: "a.png.txt" }],
    );
    expectMatches(
      { title: [{ wildcard: "*Title*" }] },
      [{ title: "My Title here" }, { title: "Title" }],
      [{ title: "title" }],
    );
    expectMatches(
      { source: [{ wildcard: "Simple*Service" }] },
      [{ source: "SimpleQueueService" }, { source: "SimpleService" }],
      [{ source: "SimpleQueueServices" }],
    );
  });

  it("treats \\* as a literal star and \\\\ as a literal backslash", () => {
    expectMatches({ f: [{ wildcard: "a\\*b" }] }, [{ f: "a*b" }], [{ f: "axb" }]);
    expectMatches({ f: [{ wildcard: "a\\\\*" }] }, [{ f: "a\\" }, { f: "a\\bc" }], [{ f: "abc" }]);
  });

  it("matches a repeated literal after a star (LocalStack fixture content_wildcard_repeating)", () => {
    expectMatches(
      { FileName: [{ wildcard: "/Users/*/dir/dir/dir/dir/dir/doc.txt" }] },
      [{ FileName: "/Users/ls_user/dir/dir/dir/dir/dir/doc.txt" }],
      [{ FileName: "/Users/ls_user/dir/dir/dir/dir/doc.txt" }],
    );
  });
});

describe("$or matching (AWS guide 'Or matching'; same examples in the event-ruler README)", () => {
  it("ANDs $or with its sibling fields", () => {
    const pattern = {
      source: ["aws.cloudwatch"],
      $or: [{ metricName: ["CPUUtilization", "ReadLatency"] }, { namespace: ["AWS/EC2", "AWS/ES"] }],
    };
    expectMatches(
      pattern,
      [
        { source: "aws.cloudwatch", metricName: "ReadLatency" },
        { source: "aws.cloudwatch", namespace: "AWS/ES" },
      ],
      [
        { source: "aws.cloudwatch", metricName: "Other" },
        { source: "aws.ec2", namespace: "AWS/EC2" },
      ],
    );
  });

  it("supports $or inside nested objects, side by side, and nested in each other", () => {
    const pattern = {
      $or: [{ metricName: ["CPUUtilization"] }, { namespace: ["AWS/EC2"] }],
      detail: { $or: [{ source: ["aws.cloudwatch"] }, { "detail-type": ["CloudWatch Alarm State Change"] }] },
    };
    expectMatches(
      pattern,
      [{ namespace: "AWS/EC2", detail: { "detail-type": "CloudWatch Alarm State Change" } }],
      [{ namespace: "AWS/EC2", detail: { source: "aws.ec2" } }],
    );
    const nested = {
      source: ["aws.cloudwatch"],
      $or: [
        { metricName: ["CPUUtilization"] },
        { metricType: ["MetricType"], $or: [{ metricId: [1234] }, { spaceId: [1000] }] },
      ],
    };
    expectMatches(
      nested,
      [{ source: "aws.cloudwatch", metricType: "MetricType", spaceId: 1000 }],
      [{ source: "aws.cloudwatch", metricType: "MetricType", spaceId: 1001 }],
    );
  });

  it("accepts the catalog's deploy route", () => {
    const deploys: EventPattern = {
      source: ["kubler"],
      $or: [
        { "detail-type": ["Deploy Requested"] },
        { "detail-type": ["Build Finished"], detail: { status: ["succeeded"] } },
      ],
    };
    const built = { source: "kubler", "detail-type": "Build Finished", detail: { status: "succeeded" } };
    expectMatches(
      deploys,
      [built, { source: "kubler", "detail-type": "Deploy Requested", detail: {} }],
      [
        { ...built, detail: { status: "failed" } },
        { ...built, source: "kubler.gitlab" },
      ],
    );
  });
});

// LocalStack records these against real EventBridge (tests/aws/services/events/event_pattern_templates,
// snapshot test_events_patterns.snapshot.json); the fixture name is given for each.
describe("edge cases recorded against EventBridge", () => {
  it("anything-but never matches a missing field (content_anything_but_string_missing_NEG)", () => {
    expectMatches(
      { detail: { state: [{ "anything-but": "x" }] } },
      [{ detail: { state: "y" } }],
      [{ detail: {} }, {}],
    );
    expectMatches({ detail: { state: [{ "anything-but": { suffix: ".png" } }] } }, [], [{ detail: {} }]);
  });

  it("anything-but matches null and values of another type (content_anything_*_null, *_int_value)", () => {
    expectMatches({ state: [{ "anything-but": "initializing" }] }, [{ state: null }, { state: 5 }], []);
    expectMatches({ state: [{ "anything-but": { prefix: "init" } }] }, [{ state: 12 }, { state: null }], []);
    expectMatches({ FilePath: [{ "anything-but": { wildcard: "*/dir/*" } }] }, [{ FilePath: 123 }], []);
    expectMatches({ n: [{ "anything-but": [100] }] }, [{ n: "100" }], [{ n: 100 }]);
  });

  it("anything-but with an empty wildcard only excludes the empty string (content_anything_wildcard_empty)", () => {
    expectMatches({ f: [{ "anything-but": { wildcard: "" } }] }, [{ f: "dir/init/file" }], [{ f: "" }]);
  });

  it("anything-but over an array matches when any element is not excluded (SNS/Ruler array semantics)", () => {
    expectMatches(
      { price: [{ "anything-but": [100, 500] }] },
      [{ price: [100, 50] }],
      [{ price: [100] }, { price: [] }],
    );
  });

  it("exists:true does not match an empty array (exists_list_empty_NEG)", () => {
    expectMatches(
      { resources: [{ exists: true }] },
      [{ resources: ["x"] }, { resources: [null] }],
      [AUTOSCALING_EVENT],
    );
  });

  it("exists:false matches below a missing intermediate object (content_exists_false)", () => {
    const pattern = { detail: { level1: { "level2:": { level3: { level4: [{ exists: false }] } } } } };
    expectMatches(pattern, [{ detail: { level1: { level2: "l2 value" } } }], []);
    expectMatches(
      { detail: { level1: { level2: { level3: { level4: [{ exists: false }] } } } } },
      [],
      [{ detail: { level1: { level2: { level3: { level4: "l4 value" } } } } }],
    );
  });

  it("a field list ORs exists:false with other matchers (or-exists-parent)", () => {
    const pattern = {
      dynamodb: { NewImage: { homemade: { S: [{ "anything-but": ["roses"] }, { exists: false }] } } },
    };
    expectMatches(
      pattern,
      [
        { dynamodb: { NewImage: { purchased: { N: "789" } } } },
        { dynamodb: { NewImage: { homemade: { S: "tulips" } } } },
      ],
      [{ dynamodb: { NewImage: { homemade: { S: "roses" } } } }],
    );
  });

  it("joins nested keys with dots, so a dotted key matches a nested event (dot_joining_pattern)", () => {
    expectMatches(
      { detail: { "state.status": ["running"] } },
      [{ detail: { state: { status: "running" } } }],
      [],
    );
  });

  it("cidr only matches strings (content_ip_address_bad_type_NEG)", () => {
    expectMatches(
      { detail: { sourceIPAddress: [{ cidr: "10.0.0.0/24" }] } },
      [],
      [{ detail: { sourceIPAddress: 123 } }],
    );
  });

  it("equals-ignore-case matches an empty string (content_ignorecase_empty)", () => {
    expectMatches({ detail: { value: [{ "equals-ignore-case": "" }] } }, [{ detail: { value: "" } }], []);
  });
});

describe("matching semantics taken from event-ruler", () => {
  it("requires fields to come from the same array element (README: JSON Array Matching)", () => {
    const event = {
      employees: [
        { firstName: "John", lastName: "Doe" },
        { firstName: "Anna", lastName: "Smith" },
        { firstName: "Peter", lastName: "Jones" },
      ],
    };
    expectMatches({ employees: { firstName: ["Anna"] } }, [event], []);
    expectMatches({ employees: { firstName: ["Anna"], lastName: ["Smith"] } }, [event], []);
    expectMatches({ employees: { firstName: ["Anna"], lastName: ["Jones"] } }, [], [event]);
    expectMatches(
      { employees: { firstName: ["Peter"] } },
      [{ employees: [[event.employees[0]], [event.employees[2]]] }],
      [],
    );
  });

  it("only matches numeric ranges against JSON numbers inside +/-5e9", () => {
    expectMatches(
      { n: [{ numeric: [">=", 0] }] },
      [{ n: 0 }, { n: 5e9 }, { n: [-1, 2] }],
      [{ n: "1" }, { n: true }, { n: null }, { n: 5.1e9 }, { n: { v: 1 } }],
    );
  });

  it("covers a cidr's whole network, from below the address as written (CIDR.computeBottomBytes, event-ruler#89)", () => {
    expectMatches(
      { ip: [{ cidr: "10.0.0.5/24" }] },
      [{ ip: "10.0.0.0" }, { ip: "10.0.0.4" }, { ip: "10.0.0.5" }, { ip: "10.0.0.255" }],
      [{ ip: "9.255.255.255" }, { ip: "10.0.1.0" }],
    );
    expectMatches(
      { ip: [{ cidr: "2001:db8::5/120" }] },
      [{ ip: "2001:db8::" }, { ip: "2001:db8::4" }, { ip: "2001:db8::ff" }],
      [{ ip: "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff" }, { ip: "2001:db8::100" }],
    );
  });

  it("never compares event numbers with more than 6 decimals numerically (ComparableNumber)", () => {
    expectMatches({ n: [{ numeric: [">", 5] }] }, [{ n: 5.000001 }], [{ n: 5.0000001 }]);
    expectMatches({ n: [{ numeric: ["=", 5] }] }, [{ n: 5 }, { n: 5.0 }], [{ n: 5.0000001 }]);
    expectMatches(
      { n: [{ numeric: [">=", 0, "<", 1] }] },
      [{ n: 0.999999 }],
      [{ n: 1e-7 }, { n: 0.9999999 }],
    );
  });

  it("matches an IP address literal regardless of how the event writes it (CIDR.ipToRangeIfPossible)", () => {
    expectMatches({ ip: ["2001:db8::1"] }, [{ ip: "2001:0DB8:0:0:0:0:0:1" }], [{ ip: "2001:db8::2" }]);
    expectMatches({ ip: ["10.0.0.1"] }, [{ ip: "10.0.0.1" }, { ip: "010.000.0.01" }], [{ ip: "10.0.0.2" }]);
  });

  it("keeps the last definition of a repeated path, like a repeated JSON key (AWS note on duplicate keys)", () => {
    expectMatches(
      { "a.b": ["first"], a: { b: ["second"] } },
      [{ a: { b: "second" } }],
      [{ a: { b: "first" } }],
    );
  });

  it("exact numbers, booleans and strings never match across types", () => {
    expectMatches({ v: [1] }, [{ v: 1 }, { v: 1.0 }], [{ v: "1" }, { v: true }]);
    expectMatches({ v: [true] }, [{ v: true }], [{ v: "true" }, { v: 1 }]);
    expectMatches({ v: ["null"] }, [{ v: "null" }], [{ v: null }]);
  });

  it("matches nothing for an event that is not a JSON object", () => {
    for (const event of [null, "x", 1, [{ a: "x" }]])
      expect(matchesPattern({ a: [{ exists: false }] }, event)).toBe(false);
  });

  it("compiles once per pattern object", () => {
    const pattern = { source: ["kubler"] };
    expect(compilePattern(pattern)).toBe(compilePattern(pattern));
    expect(validatePattern(pattern)).toBe(pattern);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties

const KEY = fc.string({ minLength: 1, maxLength: 6 }).filter((key) => key !== "$or" && !key.includes("."));
// Strings that are not IP literals, so exact matching is plain string equality.
const TEXT = fc
  .oneof(fc.constantFrom("", "a", "A", "ab", "aB", "b", "x y"), fc.string({ maxLength: 8 }))
  .filter((text) => !(/^[0-9a-fA-F:.]*$/.test(text) && /[.:]/.test(text)));
const NUMBER = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.integer({ min: -1e6, max: 1e6 }).map((n) => n / 1000),
);
const SCALAR = fc.oneof(TEXT, NUMBER, fc.boolean(), fc.constant(null));

type Leafy = string | number | boolean | null;
type Tree = { [key: string]: Tree | Leafy | Leafy[] };

const TREE: fc.Arbitrary<Tree> = fc.letrec<{ tree: Tree }>((tie) => ({
  tree: fc.dictionary(
    KEY,
    fc.oneof(
      { depthSize: "small" },
      SCALAR,
      fc.array(SCALAR, { minLength: 1, maxLength: 3 }),
      tie("tree") as fc.Arbitrary<Tree>,
    ),
    { minKeys: 1, maxKeys: 4 },
  ),
})).tree;

/** A pattern naming every leaf of `tree` with the leaf's own value(s); undefined if nothing to name. */
function selfPattern(tree: Tree): EventPattern | undefined {
  // A null prototype keeps a generated "__proto__" key an ordinary field.
  const pattern: Record<string, unknown> = Object.create(null);
  for (const [key, value] of Object.entries(tree)) {
    if (Array.isArray(value)) pattern[key] = value;
    else if (value !== null && typeof value === "object") {
      const nested = selfPattern(value);
      if (nested) pattern[key] = nested;
    } else pattern[key] = [value];
  }
  return Object.keys(pattern).length > 0 ? (pattern as EventPattern) : undefined;
}

function single(field: PatternValue): EventPattern {
  return { f: [field] };
}

describe("properties", () => {
  it("an event matches the pattern built from its own leaf values", () => {
    fc.assert(
      fc.property(TREE, (tree) => {
        const pattern = selfPattern(tree);
        fc.pre(pattern !== undefined);
        expect(matchesPattern(pattern as EventPattern, tree)).toBe(true);
      }),
    );
  });

  it("anything-but [x] is the complement of [x] for a present scalar field", () => {
    fc.assert(
      fc.property(fc.oneof(TEXT, NUMBER), SCALAR, (x, value) => {
        const event = { f: value };
        expect(matchesPattern(single({ "anything-but": [x] }), event)).toBe(
          !matchesPattern(single(x), event),
        );
      }),
    );
  });

  it("prefix and suffix agree with String.startsWith / endsWith", () => {
    fc.assert(
      fc.property(TEXT, TEXT, (affix, value) => {
        expect(matchesPattern(single({ prefix: affix }), { f: value })).toBe(value.startsWith(affix));
        expect(matchesPattern(single({ suffix: affix }), { f: value })).toBe(value.endsWith(affix));
      }),
    );
  });

  it("numeric ranges agree with JavaScript comparisons", () => {
    const lower = fc.constantFrom(">", ">=");
    const upper = fc.constantFrom("<", "<=");
    fc.assert(
      fc.property(lower, NUMBER, upper, NUMBER, NUMBER, (low, a, high, b, value) => {
        fc.pre(a < b);
        const expected = (low === ">" ? value > a : value >= a) && (high === "<" ? value < b : value <= b);
        expect(matchesPattern(single({ numeric: [low, a, high, b] }), { f: value })).toBe(expected);
        expect(matchesPattern(single({ numeric: ["=", a] }), { f: value })).toBe(value === a);
      }),
    );
  });

  it("$or equals the OR of its branches, ANDed with sibling fields", () => {
    const branch = fc.oneof(
      TEXT.map((text) => ({ x: [text] })),
      TEXT.map((text) => ({ y: [{ prefix: text }] })),
      NUMBER.map((n) => ({ x: [{ numeric: [">", n] }] })),
      fc.constant({ y: [{ exists: false }] }),
    );
    const event = fc.record({ x: fc.oneof(TEXT, NUMBER), y: TEXT, s: TEXT }, { requiredKeys: ["s"] });
    fc.assert(
      fc.property(branch, branch, TEXT, event, (left, right, sibling, candidate) => {
        const either = matchesPattern(left, candidate) || matchesPattern(right, candidate);
        expect(matchesPattern({ $or: [left, right] }, candidate)).toBe(either);
        const withSibling = matchesPattern({ s: [sibling], $or: [left, right] }, candidate);
        expect(withSibling).toBe(candidate.s === sibling && either);
      }),
    );
  });

  it("equals-ignore-case agrees with comparing lowercased strings", () => {
    fc.assert(
      fc.property(TEXT, TEXT, (expected, value) => {
        expect(matchesPattern(single({ "equals-ignore-case": expected }), { f: value })).toBe(
          value.toLowerCase() === expected.toLowerCase(),
        );
      }),
    );
  });

  it("a wildcard without * is an exact match", () => {
    const plain = TEXT.filter((text) => !text.includes("*") && !text.includes("\\"));
    fc.assert(
      fc.property(plain, fc.oneof(plain, SCALAR), (glob, value) => {
        expect(matchesPattern(single({ wildcard: glob }), { f: value })).toBe(
          matchesPattern(single(glob), { f: value }),
        );
      }),
    );
  });

  it("wildcards agree with an equivalent regular expression", () => {
    const glob = fc
      .array(fc.oneof(fc.constantFrom("a", "b", "ab"), fc.constant("*")), { maxLength: 6 })
      .map((parts) => parts.join(""))
      .filter((text) => !text.includes("**"));
    const value = fc.array(fc.constantFrom("a", "b", "*"), { maxLength: 8 }).map((parts) => parts.join(""));
    fc.assert(
      fc.property(glob, value, (pattern, text) => {
        const regex = new RegExp(`^${pattern.replaceAll("*", ".*")}$`, "s");
        expect(matchesPattern(single({ wildcard: pattern }), { f: text })).toBe(regex.test(text));
      }),
    );
  });

  it("numeric never matches an event number with a 7th decimal, whatever the bounds", () => {
    const sevenDecimals = fc
      .integer({ min: -5e12, max: 5e12 })
      .filter((n) => n % 10 !== 0)
      .map((n) => n / 1e7);
    fc.assert(
      fc.property(
        fc.constantFrom("=", "<", "<=", ">", ">="),
        NUMBER,
        sevenDecimals,
        (operator, bound, value) => {
          expect(matchesPattern(single({ numeric: [operator, bound] }), { f: value })).toBe(false);
          expect(matchesPattern(single({ numeric: [">=", -5e9, "<=", 5e9] }), { f: value })).toBe(false);
        },
      ),
    );
  });

  it("cidr agrees with comparing the masked IPv4 bits", () => {
    const ipv4 = fc.integer({ min: 0, max: 0xffffffff });
    const dotted = (n: number) => [24, 16, 8, 0].map((shift) => (n >>> shift) & 0xff).join(".");
    fc.assert(
      fc.property(ipv4, fc.integer({ min: 0, max: 31 }), ipv4, (base, bits, address) => {
        const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
        const expected = (base & mask) >>> 0 === (address & mask) >>> 0;
        expect(matchesPattern(single({ cidr: `${dotted(base)}/${bits}` }), { f: dotted(address) })).toBe(
          expected,
        );
      }),
    );
  });

  it("cidr agrees with comparing the masked IPv6 bits, against a BigInt reference", () => {
    const ipv6 = fc.bigInt({ min: 0n, max: (1n << 128n) - 1n });
    const grouped = (n: bigint) =>
      Array.from({ length: 8 }, (_, group) => ((n >> BigInt(112 - group * 16)) & 0xffffn).toString(16)).join(
        ":",
      );
    fc.assert(
      fc.property(ipv6, fc.integer({ min: 0, max: 127 }), ipv6, fc.boolean(), (base, bits, other, near) => {
        const hostBits = (1n << BigInt(128 - bits)) - 1n;
        // Half the cases land in the base's own network, below the address as written as often as above.
        const address = near ? (base & ~hostBits) | (other & hostBits) : other;
        const expected = (address & ~hostBits) === (base & ~hostBits);
        expect(matchesPattern(single({ cidr: `${grouped(base)}/${bits}` }), { f: grouped(address) })).toBe(
          expected,
        );
      }),
    );
  });

  it("validatePattern only ever throws InvalidPatternError, and valid patterns match any JSON without throwing", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (candidate, event) => {
        let pattern: EventPattern;
        try {
          pattern = validatePattern(candidate);
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidPatternError);
          return;
        }
        expect(typeof matchesPattern(pattern, event)).toBe("boolean");
      }),
    );
  });

  it("validatePattern accepts generated well-formed patterns", () => {
    fc.assert(
      fc.property(TREE, (tree) => {
        const pattern = selfPattern(tree);
        fc.pre(pattern !== undefined);
        expect(validatePattern(pattern)).toBe(pattern);
      }),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Invalid patterns: [pattern, path, part of the reason]

const INVALID: readonly (readonly [string, unknown, string, string])[] = [
  ["a non-object pattern", ["source"], "pattern", "must be a JSON object"],
  ["null", null, "pattern", "must be a JSON object"],
  ["an empty pattern", {}, "pattern", "empty objects are not allowed"],
  ["an empty nested object", { detail: {} }, "detail", "empty objects are not allowed"],
  [
    "a leaf that is not an array",
    { source: "kubler" },
    "source",
    "must be an array of match values or a nested object",
  ],
  ["a numeric leaf without array", { detail: { n: 42 } }, "detail.n", "must be an array"],
  ["an empty array", { resources: [] }, "resources", "empty arrays are not allowed"],
  [
    "an array inside a value list",
    { a: [["x"]] },
    "a",
    "match values must be strings, numbers, booleans, null",
  ],
  ["an unknown operator", { a: [{ foo: 1 }] }, "a", 'unrecognized match type "foo"'],
  ["operators are case-sensitive", { a: [{ EXISTS: true }] }, "a", 'unrecognized match type "EXISTS"'],
  ["an empty operator object", { a: [{}] }, "a", "must have exactly one operator, got none"],
  ["two operators in one object", { a: [{ prefix: "a", suffix: "b" }] }, "a", 'got "prefix", "suffix"'],
  [
    "a non-string prefix",
    { detail: { status: [{ prefix: 1 }] } },
    "detail.status",
    '"prefix" must be a string',
  ],
  ["a prefix list", { time: [{ prefix: ["2022"] }] }, "time", '"prefix" must be a string'],
  [
    "a prefix with another inner operator",
    { a: [{ prefix: { suffix: "x" } }] },
    "a",
    'only supports "equals-ignore-case"',
  ],
  [
    "a non-string ignore-case prefix",
    { a: [{ prefix: { "equals-ignore-case": 1 } }] },
    "a",
    '"equals-ignore-case" must be a string',
  ],
  ["a non-string suffix", { FileName: [{ suffix: 123 }] }, "FileName", '"suffix" must be a string'],
  [
    "a list for equals-ignore-case",
    { a: [{ "equals-ignore-case": ["x"] }] },
    "a",
    '"equals-ignore-case" must be a string',
  ],
  ["a non-string wildcard", { a: [{ wildcard: 123 }] }, "a", '"wildcard" must be a string'],
  ["consecutive wildcards", { a: [{ wildcard: "arn:aws:**:bus/*" }] }, "a", 'consecutive "*" at index 8'],
  ["a bad wildcard escape", { a: [{ wildcard: "a\\b" }] }, "a", "invalid escape at index 1"],
  ["anything-but null", { a: [{ "anything-but": null }] }, "a", '"anything-but" must be a string, a number'],
  ["anything-but true", { a: [{ "anything-but": true }] }, "a", '"anything-but" must be a string, a number'],
  ["an empty anything-but list", { a: [{ "anything-but": [] }] }, "a", "list must not be empty"],
  ["a mixed anything-but list", { a: [{ "anything-but": ["a", 1] }] }, "a", "all strings or all numbers"],
  [
    "null inside an anything-but list",
    { a: [{ "anything-but": ["a", null] }] },
    "a",
    "only hold strings or numbers, got null",
  ],
  [
    "an unsupported anything-but operator",
    { a: [{ "anything-but": { numeric: [">", 1] } }] },
    "a",
    'does not support "numeric"',
  ],
  [
    "anything-but prefix with a number",
    { a: [{ "anything-but": { prefix: 123 } }] },
    "a",
    '"anything-but"."prefix" must be a string',
  ],
  [
    "anything-but suffix list with a number",
    { a: [{ "anything-but": { suffix: [123, ".txt"] } }] },
    "a",
    "list of strings",
  ],
  [
    "an empty anything-but prefix",
    { a: [{ "anything-but": { prefix: "" } }] },
    "a",
    '"anything-but"."prefix" must not be empty',
  ],
  [
    "anything-but nested prefix ignore-case",
    { a: [{ "anything-but": { prefix: { "equals-ignore-case": "x" } } }] },
    "a",
    "must be a string or a non-empty list",
  ],
  [
    "anything-but ignore-case with a number",
    { a: [{ "anything-but": { "equals-ignore-case": 123 } }] },
    "a",
    "must be a string or a non-empty list",
  ],
  [
    "an invalid anything-but wildcard",
    { a: [{ "anything-but": { wildcard: ["ok*", "**"] } }] },
    "a",
    'consecutive "*"',
  ],
  ["an anything-but number out of range", { a: [{ "anything-but": 6e9 }] }, "a", "between -5e9 and 5e9"],
  ["numeric that is not an array", { n: [{ numeric: 5 }] }, "n", '"numeric" must be an array'],
  ["an empty numeric", { n: [{ numeric: [] }] }, "n", "operator must be one of =, <, <=, >, >=, got nothing"],
  ["an unknown numeric operator", { n: [{ numeric: ["!=", 5] }] }, "n", 'got "!="'],
  [
    "a numeric operand that is a string",
    { n: [{ numeric: [">", "5"] }] },
    "n",
    'value after ">" must be a number',
  ],
  ["a missing upper bound", { n: [{ numeric: [">", 0, "<"] }] }, "n", 'value after "<" must be a number'],
  [
    "a numeric range out of order",
    { n: [{ numeric: ["<", 5, ">", 0] }] },
    "n",
    "must start with its lower bound",
  ],
  [
    "two lower bounds",
    { n: [{ numeric: [">", 0, ">", 0] }] },
    "n",
    'upper bound must use "<" or "<=", got ">"',
  ],
  [
    "an empty numeric range",
    { n: [{ numeric: [">", 5, "<=", 5] }] },
    "n",
    "range is empty: 5 is not below 5",
  ],
  ["a reversed numeric range", { n: [{ numeric: [">=", 10, "<", 1] }] }, "n", "range is empty"],
  ["= with extra terms", { n: [{ numeric: ["=", 3, "<", 5] }] }, "n", 'with "=" takes exactly one number'],
  ["too many numeric terms", { n: [{ numeric: [">", 0, "<", 5, "<", 6] }] }, "n", "too many elements"],
  ["a numeric bound out of range", { n: [{ numeric: ["<", 5.5e9] }] }, "n", "between -5e9 and 5e9"],
  [
    "a numeric bound with 7 decimals",
    { n: [{ numeric: [">", 0.0000001] }] },
    "n",
    "at most 6 decimal places",
  ],
  ["exists that is not a boolean", { a: [{ exists: "true" }] }, "a", '"exists" must be true or false'],
  ["a non-string cidr", { ip: [{ cidr: ["10.0.0.0/24"] }] }, "ip", '"cidr" must be a string'],
  ["a cidr without a mask", { ip: [{ cidr: "10.0.0.0" }] }, "ip", 'one "/"'],
  [
    "a cidr with a bad mask",
    { ip: [{ cidr: "10.0.0.0/x" }] },
    "ip",
    "mask bits must be a non-negative integer",
  ],
  ["a cidr with a bad address", { ip: [{ cidr: "xx.11.xx/24" }] }, "ip", 'invalid IP address "xx.11.xx"'],
  [
    "a cidr with a bad IPv6 address",
    { ip: [{ cidr: "xxxx:db8:1234:1a00::/64" }] },
    "ip",
    "invalid IP address",
  ],
  ["an octet above 255", { ip: [{ cidr: "10.0.0.256/24" }] }, "ip", "invalid IP address"],
  ["an IPv4 mask of 32", { ip: [{ cidr: "10.0.0.1/32" }] }, "ip", "at most 31 for IPv4"],
  ["an IPv6 mask of 128", { ip: [{ cidr: "2001:db8::1/128" }] }, "ip", "at most 127 for IPv6"],
  ["$or that is not an array", { $or: { a: ["x"] } }, "$or", "must be an array of at least 2 objects"],
  [
    "$or with one alternative",
    { detail: { $or: [{ a: ["x"] }] } },
    "detail.$or",
    "at least 2 alternatives, got 1",
  ],
  ["$or with a non-object alternative", { $or: [{ a: ["x"] }, ["b"]] }, "$or[1]", "must be an object"],
  [
    "an invalid field inside $or",
    { $or: [{ a: ["x"] }, { b: [{ prefix: 1 }] }] },
    "$or[1].b",
    '"prefix" must be a string',
  ],
  [
    "a reserved word as a field inside $or",
    { $or: [{ numeric: [1] }, { prefix: ["x"] }] },
    "$or[0].numeric",
    "reserved word",
  ],
  ["an empty object inside $or", { $or: [{ a: ["x"] }, {}] }, "$or[1]", "empty objects are not allowed"],
];

describe("invalid patterns", () => {
  it.each(INVALID)("rejects %s", (_name, pattern, path, problem) => {
    const error = rejection(pattern);
    expect(error.path).toBe(path);
    expect(error.message).toContain(`${path}: `);
    expect(error.message).toContain(problem);
  });

  it("rejects nesting deeper than 32 levels", () => {
    let deep: Record<string, unknown> = { leaf: ["x"] };
    for (let level = 0; level < 40; level++) deep = { n: deep };
    expect(rejection(deep).message).toContain("nesting is deeper than 32 levels");
  });

  it("rejects $or combinations beyond 1024", () => {
    const pattern: Record<string, unknown> = {};
    for (let index = 0; index < 11; index++) pattern[`k${index}`] = { $or: [{ a: ["x"] }, { b: ["y"] }] };
    expect(rejection(pattern).message).toContain("more than 1024 combinations");
  });

  it("also refuses to match with an invalid pattern", () => {
    expect(() => matchesPattern({ a: "x" } as unknown as EventPattern, { a: "x" })).toThrow(
      InvalidPatternError,
    );
  });
});
