// Type declarations of syncbind.js (docs/javascript.md, "Types").
//
// Untyped, every event is a string and every reply `any`. With the types
// `manage.py syncbind_schema --format typescript` writes:
//
//   import { SyncBind } from "syncbind";
//   import type { Events } from "./syncbind-events";
//   const sb = new SyncBind<Events>();
//   const page = await sb.send("shop.Product.list", {ordering: "name"});  // page.rows: ShopProductRow[]

/** What one event takes and answers. */
export interface EventShape {
  data: unknown;
  reply: unknown;
}

/** A map of events (the generated `Events` interface is one). */
export type EventMap<E> = { [K in keyof E]: EventShape };

/** The map of an untyped client: any event, any data object, any reply. */
export interface AnyEvents {
  [event: string]: { data: Record<string, unknown>; reply: any };
}

/** `"shop.Product.list#cheap"` → `"shop.Product.list"`. */
export type Untagged<K extends string> = K extends `${infer Event}#${string}` ? Event : K;

/** An event of `E`, with or without a `#tag`. */
export type EventName<E> = (keyof E & string) | `${keyof E & string}#${string}`;

export type DataOf<E, K extends string> =
  Untagged<K> extends keyof E ? (E[Untagged<K>] extends { data: infer D } ? D : never) : never;

export type ReplyOf<E, K extends string> =
  Untagged<K> extends keyof E ? (E[Untagged<K>] extends { reply: infer R } ? R : never) : never;

/** send()'s data: optional where the event requires nothing. */
export type DataArgs<D> = {} extends D ? [data?: D] : [data: D];

export type ErrorCode =
  | "bad_request"
  | "too_large"
  | "unknown_event"
  | "not_found"
  | "not_authenticated"
  | "permission_denied"
  | "invalid"
  | "rate_limited"
  | "limit_exceeded"
  | "timeout"
  | "server_error"
  | "disconnected"
  | "closed";

/** The error a rejected send() carries: the reply's error object. */
export declare class SyncBindError extends Error {
  constructor(error: { code: string; message?: string; fields?: Record<string, string[]> }, event?: string);
  readonly name: "SyncBindError";
  /** A code of docs/protocol.md, or "disconnected"/"closed" when no reply came. */
  code: ErrorCode | (string & {});
  /** invalid: the messages of each field, request parameter or "__all__". */
  fields: Record<string, string[]>;
  event: string | undefined;
}

/** A frame as the server sent it (a reply, a push, an ended subscription). */
export interface Frame {
  event: string | null;
  data?: any;
  error?: { code: string; message: string; fields?: Record<string, string[]> };
  ended?: { code: string; message: string };
  request_id?: unknown;
  version?: string;
  resume?: "unchanged" | "changed" | "expired";
}

export type Status = "connecting" | "open" | "closed";

/** What a live() view's render() is told besides the data. */
export interface LiveInfo {
  /** A reply to a request sent with a version (after a reconnect). */
  resume?: "unchanged" | "changed" | "expired";
  /** The row was deleted (a live retrieve). */
  deleted?: boolean;
  /** The request failed, or the server ended the subscription. */
  error?: SyncBindError;
  /** The server ended the subscription: this is the view's last call. */
  ended?: boolean;
}

export interface LiveView {
  /** Stop rendering and unsubscribe. */
  close(): Promise<void>;
}

export interface SyncBindOptions {
  /** A token from syncbind.authentication.make_token, or a function returning one. */
  token?: string | null | (() => string | Promise<string>);
  /** Reconnect backoff in ms: 250 doubling to 10000 by default. */
  minDelay?: number;
  maxDelay?: number;
}

export declare class SyncBind<E extends EventMap<E> = AnyEvents> {
  /** `url` defaults to ws(s)://<this host>/ws/. */
  constructor(url?: string, options?: SyncBindOptions);
  readonly url: string;
  status: Status;

  /** Send an event; resolves with the reply's data, rejects with a SyncBindError. */
  send<K extends EventName<E>>(event: K, ...data: DataArgs<DataOf<E, K>>): Promise<ReplyOf<E, K>>;

  /** A live retrieve, list or search: render() gets the reply and every push after it. */
  live<K extends EventName<E>>(
    event: K,
    data: DataOf<E, K>,
    render: (data: ReplyOf<E, K> | null, info: LiveInfo) => void,
  ): LiveView;

  on(event: "status", handler: (status: Status) => void): this;
  on(event: "ended", handler: (error: SyncBindError, message: Frame) => void): this;
  on(event: string, handler: (data: any, message: Frame) => void): this;
  off(event: string, handler: (...args: any[]) => void): this;

  /** Close for good (no reconnect). */
  close(): void;
}
