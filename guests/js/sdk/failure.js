// Typed failures: what crosses the component boundary instead of a result.

/**
 * A failure with a machine-readable type. Awaiting a failed task throws one;
 * throwing one from a function fails it with that type, message and details.
 *
 * `name` is the error type too, so `String(e)` reads "PaymentDeclined: ...".
 */
export class DurableError extends Error {
  /**
   * @param {string} errorType what callers branch on, e.g. "PaymentDeclined"
   * @param {string} message for people
   * @param {*} [details] optional JSON-serializable data
   */
  constructor(errorType, message, details) {
    super(message);
    this.errorType = String(errorType);
    this.details = details;
    this.name = this.errorType;
  }

  /** True when this failure's type is `errorType`. */
  is(errorType) {
    return this.errorType === errorType;
  }
}

/** Rebuilds a failure received from the host (`details` is JSON text). */
export function fromWire(failure) {
  let details;
  if (failure.details != null) {
    try {
      details = JSON.parse(failure.details);
    } catch {
      details = failure.details;
    }
  }
  return new DurableError(failure.errorType, failure.message, details);
}

/** The error an import threw, as a DurableError (bindings wrap it in `payload`). */
export function fromImportError(e) {
  const f = e && typeof e === "object" && e.payload && typeof e.payload.errorType === "string" ? e.payload : null;
  return f ? fromWire(f) : e;
}

function errorTypeOf(e) {
  if (e instanceof DurableError) return e.errorType;
  if (e !== null && typeof e === "object") {
    if (typeof e.errorType === "string" && e.errorType) return e.errorType;
    const name = typeof e.name === "string" ? e.name : "";
    if (name && name !== "Error") return name;
    const ctor = e.constructor && typeof e.constructor.name === "string" ? e.constructor.name : "";
    if (ctor && ctor !== "Error" && ctor !== "Object") return ctor;
    if (name) return name;
  }
  return "Error";
}

function messageOf(e) {
  if (e !== null && typeof e === "object" && e.message !== undefined) return String(e.message);
  return String(e);
}

/** What the host expects from a failed `run`: a WIT `failure` record. */
export function toWire(e) {
  let details = null;
  let value;
  if (e !== null && typeof e === "object") {
    if (e.details !== undefined) value = e.details;
    else if (typeof e.stack === "string" && e.stack) value = { stack: e.stack };
  }
  if (value !== undefined) {
    try {
      details = JSON.stringify(value);
    } catch {
      details = JSON.stringify(String(value));
    }
    if (details === undefined) details = null;
  }
  return { errorType: errorTypeOf(e), message: messageOf(e), details };
}
