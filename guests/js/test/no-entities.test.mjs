// A component that defines no entities lists none, and refuses to run one.
import { test } from "node:test";
import assert from "node:assert/strict";

const df = await import("cairn-sdk");

test("a component without entities lists none", () => {
  df.app({ activities: { Hello: (_context, name) => `Hello ${name}!` } });
  assert.deepEqual(df.entityExport.entities(), []);
  assert.throws(() => df.entityExport.runOperation("Counter", "c", "get", "null", null), (e) => e.errorType === "NotFound");
});
