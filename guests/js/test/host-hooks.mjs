// Module resolution hooks for the SDK's unit tests: the host interfaces
// `cairn:durable/<interface>@<version>` resolve to host-mock.mjs, whose
// functions are the test's fakes in globalThis.__cairnHost[<interface>].
export async function resolve(specifier, context, next) {
  const m = /^cairn:durable\/([a-z-]+)@/.exec(specifier);
  if (m) return { url: new URL(`./host-mock.mjs?interface=${m[1]}`, import.meta.url).href, shortCircuit: true };
  return next(specifier, context);
}
