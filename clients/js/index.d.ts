// Types of @cairn/client (index.js).

export declare const DURABLE_PATH: "/runtime/webhooks/durabletask";
export declare const TERMINAL_STATUSES: readonly RuntimeStatus[];
export declare const SERVER_MAX_WAIT_S: number;

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export type RuntimeStatus =
  | "Pending"
  | "Running"
  | "Completed"
  | "ContinuedAsNew"
  | "Failed"
  | "Canceled"
  | "Terminated"
  | "Suspended";

/** `{"ErrorType", "Message", "Details"}` of a Failed instance. */
export interface FailureDetails {
  ErrorType: string;
  Message: string;
  Details?: Json;
}

export interface InstanceStatus {
  name: string;
  instanceId: string;
  runtimeStatus: RuntimeStatus;
  /** null unless asked for (`showInput`). */
  input: Json;
  /** The result; for Failed, the failure message; for Terminated and Suspended, the reason. */
  output: Json;
  customStatus: Json;
  createdTime: Date | null;
  lastUpdatedTime: Date | null;
  failureDetails: FailureDetails | null;
  /** Only with `showHistory`. */
  historyEvents: Array<{ EventType: string; Timestamp: string; [field: string]: unknown }> | null;
  /** The document as the server sent it. */
  raw: Record<string, unknown>;
}

export interface ClientOptions {
  /** The server's root, default `http://127.0.0.1:7071`. */
  baseUrl?: string;
  /** Sent as the `x-functions-key` header. */
  apiKey?: string;
  /** Bound of each request in ms (waits extend it), default 30000. */
  timeoutMs?: number;
}

export interface StartOptions {
  /** The orchestration's input (any JSON value). */
  input?: Json;
  /** Default: one the server (or, for startAndWait, the client) generates. */
  instanceId?: string;
  /** A component version (content hash) instead of the newest. */
  version?: string;
}

export interface QueryFilter {
  runtimeStatus?: RuntimeStatus | RuntimeStatus[] | string;
  createdFrom?: Date | string;
  createdTo?: Date | string;
  prefix?: string;
  /** Page size. */
  top?: number;
  showInput?: boolean;
}

export interface QueryPage {
  instances: InstanceStatus[];
  /** null on the last page. */
  continuationToken: string | null;
}

export declare class CairnClient {
  constructor(options?: ClientOptions);
  readonly baseUrl: string;
  apiKey: string | undefined;
  timeoutMs: number;
  start(name: string, options?: StartOptions): Promise<string>;
  startAndWait(name: string, options?: StartOptions & { timeoutS?: number }): Promise<InstanceStatus>;
  /** null when there is no such instance. */
  status(instanceId: string, options?: { showInput?: boolean; showHistory?: boolean }): Promise<InstanceStatus | null>;
  wait(instanceId: string, timeoutS?: number): Promise<InstanceStatus>;
  raiseEvent(instanceId: string, eventName: string, data?: Json): Promise<void>;
  terminate(instanceId: string, reason?: string): Promise<void>;
  suspend(instanceId: string, reason?: string): Promise<void>;
  resume(instanceId: string, reason?: string): Promise<void>;
  queryPage(filter?: QueryFilter & { continuationToken?: string | null }): Promise<QueryPage>;
  query(filter?: QueryFilter): AsyncGenerator<InstanceStatus, void, undefined>;
  queryAll(filter?: QueryFilter): Promise<InstanceStatus[]>;
  purge(instanceId: string): Promise<number>;
}

export declare class CairnError extends Error {
  constructor(message: string, options?: { status?: number; errorType?: string; body?: unknown; cause?: unknown });
  /** The server's `ExceptionMessage`. */
  readonly serverMessage: string;
  /** The HTTP status; undefined when the server could not be reached. */
  readonly status: number | undefined;
  /** The server's `ExceptionType`. */
  readonly errorType: string | undefined;
  readonly body: unknown;
}
export declare class BadRequest extends CairnError {}
export declare class Unauthorized extends CairnError {}
export declare class Forbidden extends CairnError {}
export declare class NotFound extends CairnError {}
export declare class Conflict extends CairnError {}
export declare class WaitTimeout extends CairnError {
  constructor(message: string, lastStatus?: InstanceStatus);
  readonly lastStatus: InstanceStatus | undefined;
}

export declare function errorFor(status: number, text: string): CairnError;
export declare function toInstanceStatus(doc: Record<string, unknown>): InstanceStatus;
export declare function isTerminal(status: InstanceStatus): boolean;
