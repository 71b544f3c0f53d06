// syncbind.js — a small, dependency-free client for the syncbind WebSocket protocol.
//
//   import { SyncBind } from "/static/syncbind/syncbind.js";
//   const sb = new SyncBind();                       // ws(s)://<this host>/ws/
//   const row = await sb.send("shop.Product.retrieve", {id: 1});
//   const live = sb.live("shop.Product.list#cheap", {filters: {price__lt: "10"}}, page => draw(page));
//   live.close();
//
// See docs/javascript.md.

/** The error a rejected send() carries: the reply's error object. */
export class SyncBindError extends Error {
  constructor(error, event) {
    super(error.message || error.code);
    this.name = "SyncBindError";
    this.code = error.code;
    this.fields = error.fields || {};
    this.event = event;
  }
}

function defaultUrl() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/";
}

function splitEvent(event) {
  // "shop.Product.list#cheap" -> {stream: "shop.Product", action: "list", tag: "cheap"}
  const [name, tag] = event.split("#");
  const dot = name.lastIndexOf(".");
  return {stream: name.slice(0, dot), action: name.slice(dot + 1), tag: tag || null};
}

function joinEvent(stream, action, tag) {
  return tag ? `${stream}.${action}#${tag}` : `${stream}.${action}`;
}

/**
 * What a live() view shows: the data it rendered last and the version that data
 * reflects (docs/protocol.md, "Resuming"), kept to resume the view after a reconnect.
 */
class Held {
  /** @param {function} render the view's render(data, info). */
  constructor(render) {
    this.render = render;
    this.data = null;
    this.version = null;  // null: the server sent none, or the view shows no data
  }

  /** The view's request envelope, with the version of the data held when there is one. */
  request(event, data) {
    return this.version === null ? {event, data} : {event, data, version: this.version};
  }

  /** Render data from a reply or a push and keep it, with the version it carried. */
  show(data, message, info) {
    this.data = data;
    this.version = message.version ?? null;
    this.render(data, info);
  }

  /** Render a reply to the view's request; "unchanged" has no data: show what is held. */
  answered(reply) {
    if (reply.resume === "unchanged") {
      this.version = reply.version ?? null;
      this.render(this.data, {resume: "unchanged"});
    } else {
      this.show(reply.data, reply, reply.resume ? {resume: reply.resume} : {});
    }
  }

  /** The request failed: render the error. */
  failed(error) {
    // "disconnected": no reply came, and what the view showed still reflects its version.
    // Any other error is the server's answer: the view shows nothing of that version.
    if (error.code === "disconnected") this.render(null, {error});
    else this.forget({error});
  }

  /** Render(null, info) for a view left with no data (a deletion, an error): the next
   * request is sent without a version. */
  forget(info) {
    this.data = null;
    this.version = null;
    this.render(null, info);
  }
}

export class SyncBind {
  /**
   * @param {string} [url] WebSocket URL; defaults to /ws/ on this page's host.
   * @param {object} [options] {minDelay: 250, maxDelay: 10000} reconnect backoff, in ms;
   *   {token} a token from syncbind.authentication.make_token (TokenAuthentication), or a
   *   function returning one or a promise of one (called at every connect, so an
   *   expired token is replaced by a fresh one).
   */
  constructor(url, options = {}) {
    this.url = url || defaultUrl();
    this.token = options.token ?? null;
    this.minDelay = options.minDelay ?? 250;
    this.maxDelay = options.maxDelay ?? 10000;
    this.handlers = new Map();   // event -> Set of push handlers
    this.pending = new Map();    // request_id -> {resolve, reject, event}
    this.queue = [];             // frames sent while not connected
    this.lives = new Set();      // live subscriptions, re-sent after a reconnect
    this.nextId = 1;
    this.nextLive = 1;
    this.delay = this.minDelay;
    this.closed = false;
    this.status = "connecting";
    this._connect();
  }

  /** Send an event; resolves with the reply's data, rejects with a SyncBindError. */
  send(event, data = {}) {
    return this._request({event, data}).then((reply) => reply.data);
  }

  /** Call handler(data, message) for every push with exactly this event (tag included). */
  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(handler);
    return this;
  }

  off(event, handler) {
    this.handlers.get(event)?.delete(handler);
    return this;
  }

  /**
   * Send a list/search/retrieve and call render(data) with the reply and with every
   * later push for it. For a retrieve, a deletion calls render(null, {deleted: true}).
   * Errors call render(null, {error}). A live view's subscription is kept ("subscribe":
   * true): other reads never evict it (past the server's limits, the request is refused
   * with limit_exceeded). When the server ends the subscription (the user may no longer
   * read it), render(null, {error, ended: true}) is the last call.
   * Returns {close()} which unsubscribes.
   * After a reconnect the request is sent again, so the view stays current. When the
   * server gave the view a version (change capture), it goes with the request: if
   * nothing the view reads changed meanwhile, the server sends no data and render is
   * called again with the data it showed last, info {resume: "unchanged"}; otherwise
   * with the current data, info {resume: "changed"} or {resume: "expired"}. After a
   * deletion or an error reply the view holds no version: it is read afresh.
   */
  live(event, data, render) {
    const parts = splitEvent(event);
    const {stream, action} = parts;
    // Every live view has a tag of its own, so that close() ends it and no other
    // (two untagged views of one stream would share a subscription on the server).
    const tag = parts.tag || `sb-live-${this.nextLive++}`;
    event = joinEvent(stream, action, tag);
    // "subscribe": true keeps the view's subscription: reads made since never evict it.
    const reads = ["retrieve", "list", "search"];
    const sent = reads.includes(action) ? {...data, subscribe: true} : data;
    const pushes = [event];
    if (action === "retrieve") pushes.push(joinEvent(stream, "delete", tag));
    // A page is pushed as "search" when it has a query, as "list" otherwise (docs/protocol.md).
    if (action === "list" || action === "search") {
      pushes.push(joinEvent(stream, action === "list" ? "search" : "list", tag));
    }
    const held = new Held(render);
    const onPush = (payload, message) => {
      if (message.event.startsWith(`${stream}.delete`)) held.forget({deleted: true});
      else held.show(payload, message, {});
    };
    const stop = () => {
      this.lives.delete(entry);
      pushes.forEach((name) => this.off(name, onPush));
    };
    const entry = {
      pushes,
      request: () => this._request(held.request(event, sent)).then(
        (reply) => held.answered(reply),
        (error) => held.failed(error),
      ),
      // The server ended the subscription: no more pushes, and none asked for again.
      ended: (error) => {
        stop();
        render(null, {error, ended: true});
      },
    };
    pushes.forEach((name) => this.on(name, onPush));
    this.lives.add(entry);
    entry.request();
    return {
      close: () => {
        stop();
        // The tag names exactly this view's subscription.
        return this.send(joinEvent(stream, "unsubscribe", tag), {}).catch(() => {});
      },
    };
  }

  /** Close for good (no reconnect). */
  close() {
    this.closed = true;
    this._failPending("closed", "The connection was closed.");
    if (this.socket) this.socket.close();
  }

  async _protocols() {
    const token = typeof this.token === "function" ? await this.token() : this.token;
    // Browsers cannot set headers on a WebSocket: the token travels as a subprotocol,
    // beside "syncbind", which the server accepts (docs/bindings.md, TokenAuthentication).
    return token ? ["syncbind", `syncbind.token.${token}`] : ["syncbind"];
  }

  async _connect() {
    this.status = "connecting";
    // Told after a microtask: handlers added right after `new SyncBind()` hear the
    // first attempt too, as they hear each reconnection attempt.
    await null;
    if (this.closed) return;
    this._emitStatus();
    let protocols;
    try {
      protocols = await this._protocols();
    } catch (error) {
      protocols = ["syncbind"]; // no token: the server decides whether anonymous may connect
    }
    if (this.closed) return;
    let socket;
    try {
      socket = new WebSocket(this.url, protocols);
    } catch (error) {
      // A malformed URL, or a token with characters a subprotocol may not carry.
      this.status = "closed";
      this._failPending("disconnected", `Could not connect: ${error.message}`);
      this._emitStatus();
      this._reconnectLater();
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.status = "open";
      this.delay = this.minDelay;
      const queued = this.queue.splice(0);
      queued.forEach((frame) => socket.send(frame));
      this._emitStatus();
    });
    socket.addEventListener("message", (event) => this._receive(JSON.parse(event.data)));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.status = "closed";
      // Replies to requests in flight will never come: fail them now rather than hang.
      this._failPending("disconnected", "The connection was lost before the reply arrived.");
      this._emitStatus();
      this._reconnectLater();
    });
  }

  _reconnectLater() {
    if (this.closed) return;
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, this.maxDelay);
    setTimeout(() => {
      this._connect();
      // The server forgot this connection's subscriptions: ask for them again.
      this.lives.forEach((entry) => entry.request());
    }, delay);
  }

  /** Send a request (an envelope without its request_id); resolves with the whole reply. */
  _request(message) {
    const request_id = `sb${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.pending.set(request_id, {resolve, reject, event: message.event});
      this._write({...message, request_id});
    });
  }

  _write(message) {
    const frame = JSON.stringify(message);
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(frame);
    else this.queue.push(frame);
  }

  _receive(message) {
    if (message.event === "syncbind.batch" && Array.isArray(message.data)) {
      // One transaction's pushes (docs/protocol.md, "Transactions"): applied in this one
      // task, so the page never shows half of them.
      message.data.forEach((frame) => this._receive(frame));
      return;
    }
    const waiting = message.request_id !== undefined && this.pending.get(message.request_id);
    if (waiting) {
      this.pending.delete(message.request_id);
      if (message.error) waiting.reject(new SyncBindError(message.error, message.event));
      else waiting.resolve(message);
      return;
    }
    if (message.error) return; // an error without a request we know of (a malformed frame)
    if (message.ended) return this._ended(message);
    (this.handlers.get(message.event) || []).forEach((handler) => handler(message.data, message));
  }

  _ended(message) {
    // A subscription the server ended (docs/protocol.md): its live() view, if any, and
    // the "ended" handlers are told; push handlers are not (there is no data to show).
    // A plain read's subscription ended to make room for newer ones reaches the
    // "ended" handlers alone (live() views are kept, so never end that way).
    const error = new SyncBindError(message.ended, message.event);
    [...this.lives].filter((entry) => entry.pushes.includes(message.event))
      .forEach((entry) => entry.ended(error));
    (this.handlers.get("ended") || []).forEach((handler) => handler(error, message));
  }

  _failPending(code, text) {
    const pending = [...this.pending.values()];
    this.pending.clear();
    this.queue = [];
    pending.forEach(({reject, event}) => reject(new SyncBindError({code, message: text}, event)));
  }

  _emitStatus() {
    (this.handlers.get("status") || []).forEach((handler) => handler(this.status));
  }
}
