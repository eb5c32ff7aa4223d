// `node --import ./test/register-host.mjs --test test/`: installs host-hooks.mjs.
import { register } from "node:module";

register("./host-hooks.mjs", import.meta.url);
