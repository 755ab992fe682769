// The room's socket module (static/rooms/js/socket.js) in Node.js's test runner, on a fake
// WebSocket: every command carries an id, is kept until an ack or an error names it, and what
// a dropped connection (1006, a deploy's 1012) left unanswered is sent again, the same frames,
// once the next connection has joined; never what was answered, never twice.

import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, test } from "node:test";

class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 3;
  static made = [];

  constructor(url) {
    this.url = url;
    this.readyState = FakeSocket.CONNECTING;
    this.sent = [];
    this.listeners = {};
    FakeSocket.made.push(this);
  }

  addEventListener(kind, listener) {
    (this.listeners[kind] ||= []).push(listener);
  }

  emit(kind, event = {}) {
    for (const listener of this.listeners[kind] || []) listener(event);
  }

  send(frame) {
    if (this.readyState !== FakeSocket.OPEN) throw new Error("not open");
    this.sent.push(JSON.parse(frame));
  }

  close(code = 1000) {
    this.drop(code);
  }

  // --- The server's side ---
  open() {
    this.readyState = FakeSocket.OPEN;
    this.emit("open");
  }

  receive(message) {
    this.emit("message", { data: JSON.stringify(message) });
  }

  welcome() {
    this.receive({ type: "welcome", you: { id: 3, name: "minji", token: "t" } });
  }

  drop(code) {
    this.readyState = FakeSocket.CLOSED;
    this.emit("close", { code });
  }
}

globalThis.WebSocket = FakeSocket;
const { openSocket } = await import("../../static/rooms/js/socket.js");

let socket;
let messages;

function opened() {
  messages = [];
  socket = openSocket({
    url: () => "ws://test/ws/rooms/r1/",
    onMessage: (message) => messages.push(message),
    onStatus: () => {},
    idPrefix: "page",
  });
  socket.connect();
  return latest();
}

function latest() {
  return FakeSocket.made[FakeSocket.made.length - 1];
}

/** Drop the connection with `code` and let the socket reconnect and join at once. */
function reconnected(code) {
  latest().drop(code);
  socket.retryNow();
  const ws = latest();
  ws.open();
  ws.welcome();
  return ws;
}

beforeEach(() => {
  FakeSocket.made = [];
});

afterEach(() => {
  socket.stop();
});

describe("commands carry ids and are resent until answered", () => {
  test("each command has an id of the protocol's shape, its ref too", () => {
    const ws = opened();
    ws.open();
    ws.welcome();
    socket.send({ action: "add", item: "pho" }, "add");
    socket.send({ action: "vote", item: "pho" }, "item:pho");
    assert.deepEqual(ws.sent, [
      { action: "add", item: "pho", ref: 1, id: "page-1" },
      { action: "vote", item: "pho", ref: 2, id: "page-2" },
    ]);
    for (const frame of ws.sent) assert.match(frame.id, /^[A-Za-z0-9_-]{1,64}$/);
  });

  test("a random prefix tells this page's ids from another tab's", () => {
    const made = [];
    for (let i = 0; i < 2; i++) {
      const other = openSocket({ url: () => "ws://x", onMessage: () => {}, onStatus: () => {} });
      other.connect();
      latest().open();
      latest().welcome();
      other.send({ action: "extend" }, "extend");
      made.push(latest().sent[0].id);
      other.stop();
    }
    assert.notEqual(made[0], made[1]);
    for (const id of made) assert.match(id, /^[A-Za-z0-9_-]{1,64}$/);
    socket = { stop() {} };
  });

  for (const code of [1006, 1012]) {
    test(`after ${code} the unanswered commands go again, the same frames, after the welcome`, () => {
      const ws = opened();
      ws.open();
      ws.welcome();
      socket.send({ action: "add", item: "pho" }, "add");
      socket.send({ action: "vote", item: "pho" }, "item:pho");
      socket.send({ action: "veto", item: "udon" }, "item:udon");
      ws.receive({ type: "ack", id: "page-1", version: 5, ref: 1 });
      ws.receive({ type: "error", code: "unknown_item", message: "", ref: 3, id: "page-3" });
      assert.equal(socket.unansweredCount(), 1);
      latest().drop(code);
      socket.retryNow();
      const next = latest();
      assert.notEqual(next, ws);
      next.open();
      assert.deepEqual(next.sent, [], "nothing before the join: the server would not read it");
      next.welcome();
      assert.deepEqual(next.sent, [{ action: "vote", item: "pho", ref: 2, id: "page-2" }]);
      next.receive({ type: "ack", id: "page-2", version: 6, ref: 2 });
      assert.equal(socket.unansweredCount(), 0);
      const again = reconnected(code);
      assert.deepEqual(again.sent, [], "an answered command is never sent again");
    });
  }

  test("a command is resent as often as it takes, until it is answered", () => {
    const ws = opened();
    ws.open();
    ws.welcome();
    socket.send({ action: "going", going: true }, "going");
    const second = reconnected(1006);
    const third = reconnected(1012);
    assert.deepEqual(second.sent, ws.sent);
    assert.deepEqual(third.sent, ws.sent);
    third.receive({ type: "ack", id: "page-1", version: 9, ref: 1 });
    assert.deepEqual(reconnected(1006).sent, []);
  });

  test("a command given while the connection joins goes out with the welcome", () => {
    const ws = opened();
    ws.open();
    assert.equal(socket.send({ action: "add", item: "kimbap" }, "add"), true);
    assert.deepEqual(ws.sent, []);
    ws.welcome();
    assert.deepEqual(ws.sent, [{ action: "add", item: "kimbap", ref: 1, id: "page-1" }]);
  });

  test("not connected: refused at once, so the page keeps what was typed", () => {
    const ws = opened();
    assert.equal(socket.send({ action: "add", item: "pho" }, "add"), false);
    ws.open();
    ws.welcome();
    assert.deepEqual(ws.sent, []);
    assert.equal(socket.unansweredCount(), 0);
  });

  test("a refusal without an id (the rate limit) answers the oldest frame in flight", () => {
    const ws = opened();
    ws.open();
    ws.welcome();
    socket.send({ action: "vote", item: "a" }, "item:a");
    socket.send({ action: "vote", item: "b" }, "item:b");
    ws.receive({ type: "error", code: "rate_limited", message: "" });
    assert.equal(socket.unansweredCount(), 1);
    assert.deepEqual(reconnected(1012).sent, [{ action: "vote", item: "b", ref: 2, id: "page-2" }]);
  });

  test("errors keep finding their control by ref", () => {
    const ws = opened();
    ws.open();
    ws.welcome();
    socket.send({ action: "add", item: "pho" }, "add");
    ws.receive({ type: "error", code: "duplicate_item", message: "", ref: 1, id: "page-1" });
    assert.equal(messages.at(-1).origin, "add");
  });

  test("a final close (kicked, expired) forgets what is unanswered", () => {
    const ws = opened();
    ws.open();
    ws.welcome();
    socket.send({ action: "vote", item: "pho" }, "item:pho");
    ws.drop(4410);
    assert.equal(socket.unansweredCount(), 0);
  });
});
