// Function chaining, as in the Durable Functions "Hello cities" sample: the
// orchestrator `HelloCities` calls the activity `SayHello` for three cities,
// one after the other, and returns the three greetings:
// `["Hello Tokyo!", "Hello Seattle!", "Hello London!"]`.
//
// HelloCities.js is the Durable Functions JavaScript sample
// (HelloCities.seed.js) with only its import line and its export line changed.

import * as cairn from "cairn-sdk";
import HelloCities from "./HelloCities.js";

/** Activity `SayHello`: `"Tokyo"` -> `"Hello Tokyo!"`. */
function SayHello(context, name) {
  return `Hello ${name}!`;
}

export const functions = cairn.app({
  orchestrators: { HelloCities },
  activities: { SayHello },
});
