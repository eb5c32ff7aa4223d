// Files, environment variables and paths for activities of the activity
// part of a two-part project (cairn.json: {"activities": {"wasi": true}}),
// over WASI: `fs` reads and writes the directories granted at deploy
// (`cairn deploy --allow-dir HOST[:GUEST][:ro|:rw]`), `env` / `process.env`
// holds the variables granted (`--allow-env NAME`). A path outside every
// granted directory throws a DurableError of type `CapabilityDenied`
// naming it; other errors are Errors with a Node-style `code` (`ENOENT`, ...).
//
// In orchestrators (and components without WASI) every function throws:
// orchestrators have no I/O.

import { DurableError } from "./failure.js";

const wasi = () => globalThis.__cairnWasi;

function unavailable(what) {
  return new DurableError(
    "WasiUnavailable",
    `${what} is only available in activities of a project built with WASI activities ` +
      `(cairn.json: {"activities": {"wasi": true}}); orchestrators have no I/O: do it in an activity`
  );
}

/** Environment variables granted to the component, read at the start of each activity call. */
export let env = {};

/** Called by the SDK before each activity of an "activities" build. */
export function beginActivity() {
  const w = wasi();
  if (!w) return;
  env = Object.fromEntries(w.environment.getEnvironment());
  globalThis.process = globalThis.process ?? {};
  globalThis.process.env = env;
}

// ---- paths --------------------------------------------------------------

function normalize(p) {
  if (typeof p !== "string" || p === "") throw new TypeError("a path must be a non-empty string");
  const parts = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return "/" + parts.join("/");
}

export const path = {
  sep: "/",
  join: (...parts) => {
    const joined = parts.filter((x) => x !== "").join("/");
    return joined.startsWith("/") ? normalize(joined) : normalize(joined).slice(1) || ".";
  },
  normalize,
  dirname: (p) => {
    const n = normalize(p);
    const i = n.lastIndexOf("/");
    return i <= 0 ? "/" : n.slice(0, i);
  },
  basename: (p) => normalize(p).split("/").pop(),
  parse: (p) => {
    const n = normalize(p);
    const base = n.split("/").pop();
    const dot = base.lastIndexOf(".");
    return {
      root: p.startsWith("/") ? "/" : "",
      dir: path.dirname(n),
      base,
      ext: dot > 0 ? base.slice(dot) : "",
      name: dot > 0 ? base.slice(0, dot) : base,
    };
  },
};

// ---- files --------------------------------------------------------------

const CODES = {
  "no-entry": ["ENOENT", "no such file or directory"],
  exist: ["EEXIST", "file already exists"],
  "not-directory": ["ENOTDIR", "not a directory"],
  "is-directory": ["EISDIR", "illegal operation on a directory"],
  "not-empty": ["ENOTEMPTY", "directory not empty"],
  access: ["EACCES", "permission denied"],
  "not-permitted": ["EPERM", "operation not permitted"],
  "read-only": ["EROFS", "read-only file system"],
  invalid: ["EINVAL", "invalid argument"],
};
const DENIED = new Set(["access", "not-permitted", "read-only"]);

/** The granted directory holding `p`: [descriptor, path relative to it]. */
function resolve(p, what) {
  const w = wasi();
  if (!w) throw unavailable(`fs.${what}`);
  const full = normalize(p);
  let best = null;
  for (const [descriptor, guest] of w.preopens.getDirectories()) {
    const root = normalize(guest);
    const inside = root === "/" || full === root || full.startsWith(root + "/");
    if (inside && (!best || root.length > best[1].length)) best = [descriptor, root];
  }
  if (!best) {
    throw new DurableError(
      "CapabilityDenied",
      `${full}: no directory containing it is granted to this component; grant one at deploy with ` +
        "`cairn deploy --allow-dir HOST_DIR[:GUEST_DIR][:ro|:rw]`",
      { path: full }
    );
  }
  const rel = best[1] === "/" ? full.slice(1) : full.slice(best[1].length + 1);
  return [best[0], rel === "" ? "." : rel, full];
}

function fsError(e, syscall, full) {
  const code = e && typeof e === "object" && "payload" in e ? e.payload : e;
  if (typeof code === "string" && DENIED.has(code)) {
    return new DurableError(
      "CapabilityDenied",
      `${full}: ${syscall} is not granted (the directory holding it is granted read-only? grant it with :rw)`,
      { path: full }
    );
  }
  const [name, text] = CODES[code] ?? ["EIO", String(code)];
  const err = new Error(`${name}: ${text}, ${syscall} '${full}'`);
  err.code = name;
  err.path = full;
  err.syscall = syscall;
  return err;
}

function withFile(p, what, flags, body) {
  const [dir, rel, full] = resolve(p, what);
  let file;
  try {
    file = dir.openAt({ symlinkFollow: true }, rel, flags.open ?? {}, flags.descriptor ?? { read: true });
  } catch (e) {
    throw fsError(e, what, full);
  }
  try {
    return body(file, full);
  } catch (e) {
    if (e instanceof DurableError || e instanceof TypeError) throw e;
    throw fsError(e, what, full);
  }
}

function decode(bytes, encoding) {
  if (!encoding) return bytes;
  return new TextDecoder(typeof encoding === "string" ? encoding : encoding.encoding ?? "utf-8").decode(bytes);
}

export const fs = {
  /** Contents of a file: a Uint8Array, or a string with an encoding (`"utf8"`). */
  readFileSync(p, encoding) {
    return withFile(p, "open", {}, (file) => {
      const chunks = [];
      let offset = 0n;
      for (;;) {
        const [chunk, end] = file.read(65536n, offset);
        chunks.push(chunk);
        offset += BigInt(chunk.length);
        if (end || chunk.length === 0) break;
      }
      const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.length;
      }
      return decode(out, typeof encoding === "object" && encoding !== null ? encoding.encoding : encoding);
    });
  },

  /** Writes (replaces) a file with a string (UTF-8) or bytes. */
  writeFileSync(p, data) {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : new Uint8Array(data);
    withFile(p, "open", { open: { create: true, truncate: true }, descriptor: { write: true } }, (file) => {
      let offset = 0;
      while (offset < bytes.length) {
        offset += Number(file.write(bytes.subarray(offset), BigInt(offset)));
      }
    });
  },

  /** Names in a directory. */
  readdirSync(p, options) {
    return withFile(p, "scandir", { open: { directory: true }, descriptor: { read: true } }, (dir) => {
      const entries = [];
      const stream = dir.readDirectory();
      for (let e = stream.readDirectoryEntry(); e; e = stream.readDirectoryEntry()) {
        entries.push(options?.withFileTypes ? dirent(e) : e.name);
      }
      return entries.sort((a, b) => ((a.name ?? a) < (b.name ?? b) ? -1 : 1));
    });
  },

  /** `{ size, isFile(), isDirectory() }` of a path. */
  statSync(p) {
    const [dir, rel, full] = resolve(p, "stat");
    try {
      const s = rel === "." ? dir.stat() : dir.statAt({ symlinkFollow: true }, rel);
      return {
        size: Number(s.size),
        isFile: () => s.type === "regular-file",
        isDirectory: () => s.type === "directory",
      };
    } catch (e) {
      throw fsError(e, "stat", full);
    }
  },

  existsSync(p) {
    try {
      fs.statSync(p);
      return true;
    } catch (e) {
      if (e instanceof DurableError && e.errorType !== "CapabilityDenied") throw e;
      return false;
    }
  },

  /** Creates a directory (`{ recursive: true }` creates its parents and accepts existing ones). */
  mkdirSync(p, options) {
    const full = normalize(p);
    if (options?.recursive) {
      const parent = path.dirname(full);
      if (parent !== full && !fs.existsSync(parent)) fs.mkdirSync(parent, options);
      if (fs.existsSync(full)) return;
    }
    const [dir, rel] = resolve(full, "mkdir");
    try {
      dir.createDirectoryAt(rel);
    } catch (e) {
      const err = fsError(e, "mkdir", full);
      // Another call may have created it meanwhile (activities run in parallel).
      if (options?.recursive && err.code === "EEXIST") return;
      throw err;
    }
  },
};

function dirent(e) {
  return { name: e.name, isFile: () => e.type === "regular-file", isDirectory: () => e.type === "directory" };
}
