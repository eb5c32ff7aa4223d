// The first module of the activity part of a two-part project (imported by
// the entry module scripts/build-js-guests.sh generates, before the
// project's index.js): marks the build as "activities" and hands the SDK the
// WASI interfaces that StarlingMonkey does not expose to JavaScript itself
// (files and environment; fetch, Date and crypto are built in). Only
// componentize-js builds import it: QuickJS builds have no WASI.

import * as preopens from "wasi:filesystem/preopens@0.2.12";
import * as environment from "wasi:cli/environment@0.2.12";

globalThis.__cairnBuildRole = "activities";
globalThis.__cairnWasi = { preopens, environment };
