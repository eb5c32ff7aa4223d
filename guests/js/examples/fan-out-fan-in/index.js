// Fan-out/fan-in: `FanOutFanIn` squares `0..count` in parallel with the
// activity `Square` and returns the sum of the squares. `RaceFirst` starts
// the same activities and returns the result of whichever completes first
// (first in history order, so replays pick the same one).
//
// - Orchestrators `FanOutFanIn` and `RaceFirst`, input `{"count": n}` (a
//   missing input or `count` means 10; `RaceFirst` needs n >= 1, else
//   `InvalidInput`).
// - Activity `Square`, input an integer i: returns i * i.
//
// FanOutFanIn is written in the Durable Functions generator style, RaceFirst
// as plain code whose context calls wait.

import * as cairn from "cairn-sdk";

function countOf(input) {
  const count = input?.count ?? 10;
  if (!Number.isInteger(count) || count < 0) {
    throw new cairn.DurableError("InvalidInput", `count must be a non-negative integer, not ${JSON.stringify(count)}`);
  }
  return count;
}

const FanOutFanIn = cairn.orchestrator(function* (context) {
  const count = countOf(context.df.getInput());
  const tasks = [];
  for (let i = 0; i < count; i++) {
    tasks.push(context.df.callActivity("Square", i));
  }
  const squares = yield context.df.Task.all(tasks);
  return squares.reduce((sum, square) => sum + square, 0);
});

function RaceFirst(context, input) {
  const count = countOf(input);
  if (count === 0) throw new cairn.DurableError("InvalidInput", "count must be at least 1");
  const tasks = [];
  for (let i = 0; i < count; i++) {
    tasks.push(context.df.callActivity("Square", i));
  }
  const first = context.Task.any(tasks);
  return first.get();
}

function Square(context, i) {
  if (!Number.isInteger(i)) throw new cairn.DurableError("InvalidInput", `${JSON.stringify(i)} is not an integer`);
  const square = i * i;
  if (!Number.isSafeInteger(square)) {
    throw new cairn.DurableError("InvalidInput", `${i} squared does not fit in a safe integer`);
  }
  return square;
}

export const functions = cairn.app({
  orchestrators: { FanOutFanIn, RaceFirst },
  activities: { Square },
});
