// The room page's data module (static/rooms/js/state.js) in Node.js's test runner: what the
// page keeps and does for each message, without a browser. `make test-js`, `make test-fast`
// and `make test` run it (node --test tests/js/).

import assert from "node:assert/strict";
import { describe, test } from "node:test";

// The page's gettext reads Django's catalogue from `window`; without one it speaks English, as
// it does when the catalogue fails to load. state.js is imported after this line for that.
globalThis.window = {};
const { addCommand, createState, dispatch, UNDO_MS, parseAvoids, splitTags, votedByMe, votesHidden } = await import(
  "../../static/rooms/js/state.js"
);

const NOW = Date.parse("2026-11-24T12:00:00+00:00");
const CONFIG = {
  roomId: "r1",
  expiresAt: "2026-11-24T12:10:00+00:00",
  serverNow: "2026-11-24T12:00:02+00:00",
  maxItemLength: 60,
  maxNameLength: 30,
  reducedMotion: true,
};
const MINJI = { id: 3, name: "minji" };
const JOON = { id: 4, name: "joon" };

/** A `state` event as the server sends it (docs/protocol.md), with the given version. */
function stateEvent(version, { items = [], participants = [MINJI], decision = null } = {}) {
  return {
    type: "state",
    version,
    room: { id: "r1", expires_at: "2026-11-24T12:20:00+00:00", decision, locked: false, going: [] },
    items: items.map((name) => ({
      name,
      added_by: "minji",
      added_by_id: 3,
      votes: 0,
      voters: [],
      voter_ids: [],
      vetoed_by: [],
      vetoer_ids: [],
    })),
    participants: participants.map((p) => ({ ...p, host: p.id === 3 })),
  };
}

/** A page that has joined as minji and holds the room's state at `version`. */
function joinedPage(version = 1, options = {}) {
  const state = createState(CONFIG, NOW);
  dispatch(state, { type: "welcome", you: { id: 3, name: "minji", token: "t0k" } });
  dispatch(state, { type: "socket:open" });
  dispatch(state, stateEvent(version, options));
  return state;
}

const kinds = (effects) => effects.map((effect) => effect.kind);

describe("a new page", () => {
  test("has seen no state yet and is connecting, with the server's clock offset", () => {
    const state = createState(CONFIG, NOW);
    assert.equal(state.version, -1);
    assert.equal(state.room, null);
    assert.equal(state.connection, "connecting");
    assert.equal(state.clockOffset, 2000);
    assert.equal(state.expiresAt, Date.parse(CONFIG.expiresAt));
  });

  test("welcome says who we are and asks the page to remember the name and token", () => {
    const state = createState(CONFIG, NOW);
    const effects = dispatch(state, { type: "welcome", you: { id: 3, name: "minji", token: "t0k" } });
    assert.deepEqual(state.me, { id: 3, name: "minji", token: "t0k" });
    assert.deepEqual(effects[0], { kind: "remember", name: "minji", token: "t0k" });
    assert.deepEqual(effects[1], { kind: "name-field", name: "minji" });
  });
});

describe("state messages: the highest version wins", () => {
  test("a newer state replaces the room and its expiry", () => {
    const state = joinedPage(1);
    dispatch(state, stateEvent(2, { items: ["pho"] }));
    assert.equal(state.version, 2);
    assert.deepEqual(
      state.room.items.map((item) => item.name),
      ["pho"],
    );
    assert.equal(state.expiresAt, Date.parse("2026-11-24T12:20:00+00:00"));
  });

  test("an older or equal version is dropped, whatever it holds", () => {
    const state = joinedPage(5, { items: ["pho"] });
    for (const version of [4, 5]) {
      const effects = dispatch(state, stateEvent(version, { items: ["bibimbap"] }));
      assert.deepEqual(effects, []);
    }
    assert.equal(state.version, 5);
    assert.deepEqual(
      state.room.items.map((item) => item.name),
      ["pho"],
    );
  });

  test("a state without a numeric version is dropped", () => {
    const state = joinedPage(1);
    dispatch(state, { ...stateEvent(9, { items: ["pho"] }), version: "9" });
    assert.equal(state.version, 1);
    assert.deepEqual(state.room.items, []);
  });

  test("the states of a reconnect arriving out of order leave the newest", () => {
    const state = createState(CONFIG, NOW);
    for (const version of [3, 7, 4, 6]) dispatch(state, stateEvent(version, { items: [`v${version}`] }));
    assert.equal(state.version, 7);
    assert.equal(state.room.items[0].name, "v7");
  });

  test("others' changes are said; our own joining is not", () => {
    const state = joinedPage(1);
    const effects = dispatch(state, stateEvent(2, { items: ["pho"], participants: [MINJI, JOON] }));
    const said = effects.filter((effect) => effect.kind === "announce").map((effect) => effect.text);
    // minji added pho herself (added_by_id 3): only joon's arrival is news.
    assert.deepEqual(said, ["joon joined."]);
  });

  test("a decision that arrives without a reel is announced once", () => {
    const state = joinedPage(1, { items: ["pho"] });
    const decision = { item: "pho", by: "joon", at: "2026-11-24T12:03:00+00:00" };
    const first = dispatch(state, stateEvent(2, { items: ["pho"], decision }));
    const again = dispatch(state, stateEvent(3, { items: ["pho"], decision }));
    assert.ok(first.some((effect) => effect.kind === "announce" && effect.text === "We're eating pho!"));
    assert.ok(!again.some((effect) => effect.kind === "announce"));
    assert.equal(state.decidedAt, decision.at);
  });
});

describe("what the person sent", () => {
  test("an added idea empties the field only once the state has it", () => {
    const state = joinedPage(1);
    dispatch(state, { type: "page:sent", command: { action: "add", item: "Pho " }, origin: "add" });
    assert.equal(state.pendingAdd, "Pho ");
    assert.deepEqual(dispatch(state, stateEvent(2, { items: ["kimbap"] })).filter((e) => e.kind === "clear-field"), []);
    const effects = dispatch(state, stateEvent(3, { items: ["kimbap", "pho"] }));
    assert.deepEqual(
      effects.find((effect) => effect.kind === "clear-field"),
      { kind: "clear-field", text: "Pho " },
    );
    assert.equal(state.pendingAdd, null);
  });

  test("a refused add keeps the text in the field and shows the error beside it", () => {
    const state = joinedPage(1);
    dispatch(state, { type: "page:sent", command: { action: "add", item: "pho" }, origin: "add" });
    const effects = dispatch(state, { type: "error", code: "duplicate_item", origin: "add" });
    assert.deepEqual(state.errors, { add: "duplicate_item" });
    assert.equal(state.pendingAdd, null);
    assert.deepEqual(effects, [{ kind: "focus", target: "item-input" }]);
  });

  test("a removal waits for the undo time, and a stale timer sends nothing", () => {
    const state = joinedPage(1, { items: ["pho", "kimbap"] });
    const first = dispatch(state, { type: "page:remove", name: "pho" });
    const due = first.find((effect) => effect.kind === "after");
    assert.equal(due.ms, UNDO_MS);
    dispatch(state, { type: "page:undo" });
    assert.equal(state.removal, null);
    assert.deepEqual(dispatch(state, due.message), []);
    const second = dispatch(state, { type: "page:remove", name: "kimbap" });
    const sent = dispatch(state, second.find((effect) => effect.kind === "after").message);
    assert.deepEqual(sent, [{ kind: "send-remove", name: "kimbap" }]);
  });
});

describe("the connection", () => {
  test("an outage is offline with its retry time; coming back clears 'not connected'", () => {
    const state = joinedPage(1);
    dispatch(state, { type: "socket:closed", code: 1006, willRetry: true, retrySeconds: 4 });
    assert.equal(state.connection, "offline");
    assert.equal(state.retrySeconds, 4);
    dispatch(state, { type: "page:not-sent", origin: "add", code: "not_connected" });
    dispatch(state, { type: "socket:connecting" });
    assert.equal(state.connection, "offline");
    dispatch(state, { type: "socket:open" });
    assert.equal(state.connection, "online");
    assert.deepEqual(state.errors, {});
  });

  test("a room that is gone ends the stay, once", () => {
    const state = joinedPage(1);
    const effects = dispatch(state, { type: "socket:closed", code: 4404, willRetry: false });
    assert.equal(state.screen, "gone");
    assert.deepEqual(kinds(effects), ["stop", "focus"]);
    assert.deepEqual(dispatch(state, { type: "error", code: "room_full" }), []);
    assert.equal(state.screen, "gone");
  });

  test("too many tabs is said as a connection refusal, beside a control's error", () => {
    const state = joinedPage(1);
    dispatch(state, { type: "error", code: "too_many_connections" });
    assert.deepEqual(state.errors, { connection: "too_many_connections" });
    dispatch(state, { type: "page:refused", origin: "name", code: "invalid_name" });
    assert.deepEqual(state.errors, { connection: "too_many_connections", name: "invalid_name" });
    dispatch(state, { type: "welcome", you: { id: 3, name: "minji" } });
    assert.deepEqual(state.errors, { name: "invalid_name" });
  });
});

describe("the pick", () => {
  test("with reduced motion the reel lands on the server's choice and announces it", () => {
    const state = joinedPage(1, { items: ["pho", "kimbap"] });
    const started = dispatch(state, { type: "picked", item: "kimbap", by: "joon" });
    assert.deepEqual(state.picked, { item: "kimbap", by: "joon" });
    const step = started.find((effect) => effect.kind === "after");
    const landed = dispatch(state, step.message);
    assert.equal(state.spin, null);
    assert.equal(state.reel.text, "kimbap");
    assert.ok(landed.some((effect) => effect.kind === "announce" && effect.text === "We're eating kimbap!"));
    // The state with the decision that follows is not announced a second time.
    const decision = { item: "kimbap", by: "joon", at: "2026-11-24T12:03:00+00:00" };
    const after = dispatch(state, stateEvent(2, { items: ["pho", "kimbap"], decision }));
    assert.ok(!after.some((effect) => effect.kind === "announce" && effect.text.startsWith("We're eating")));
  });
});

describe("deciding on time (issue 29)", () => {
  test("a runoff is announced with its items; the state carries the rest", () => {
    const state = joinedPage(1, { items: ["pho", "ramen"] });
    const effects = dispatch(state, { type: "runoff", items: ["pho", "ramen"], ends_at: "2026-11-24T12:01:00+00:00" });
    assert.deepEqual(effects, [{ kind: "announce", text: "A tie! Runoff between pho, ramen: one vote each." }]);
    assert.equal(state.version, 1); // not a state: nothing else changes
  });

  test("a missed deadline shows in the deadline card and is announced", () => {
    const state = joinedPage(1);
    const effects = dispatch(state, { type: "deadline_missed", reason: "nothing_to_pick" });
    assert.deepEqual(state.errors, { deadline: "deadline_missed" });
    assert.deepEqual(kinds(effects), ["announce"]);
  });

  test("the last picked is kept, to say how the decision was made (a tie, the runoff)", () => {
    const state = joinedPage(1, { items: ["pho", "ramen"] });
    const picked = { type: "picked", item: "pho", by: null, mode: "top", auto: true, runoff: true, tie_break: "draw" };
    dispatch(state, picked);
    assert.deepEqual(state.lastPicked, picked);
    assert.deepEqual(state.picked, { item: "pho", by: null });
  });
});

describe("blind votes and can't eat (issue 29)", () => {
  /** A blind room's state: the votes hidden as the server hides them (votes null). */
  function blindEvent(version, { decision = null, avoids = [] } = {}) {
    const event = stateEvent(version, { items: ["pho", "ramen"], decision });
    event.room.blind = true;
    for (const item of event.items) Object.assign(item, { votes: null, tags: [], avoided_by: [], avoider_ids: [] });
    event.participants[0].avoids = avoids;
    return event;
  }

  test("my own votes come from welcome and `mine`, not from a blind room's states", () => {
    const state = createState(CONFIG, NOW);
    dispatch(state, { type: "welcome", you: { id: 3, name: "minji", token: "t", votes: ["ramen"] } });
    dispatch(state, blindEvent(1));
    assert.equal(votesHidden(state.room), true);
    const [pho, ramen] = state.room.items;
    assert.equal(votedByMe(state, pho), false);
    assert.equal(votedByMe(state, ramen), true);
    assert.deepEqual(dispatch(state, { type: "mine", votes: ["pho"] }), []);
    assert.equal(votedByMe(state, state.room.items[0]), true);
    assert.equal(votedByMe(state, state.room.items[1]), false);
  });

  test("the decision shows the votes again: mine is read from the voters", () => {
    const state = joinedPage(1);
    dispatch(state, { type: "mine", votes: ["pho"] });
    const decided = blindEvent(2, { decision: { item: "pho", by: "minji", at: "2026-11-24T12:05:00+00:00" } });
    decided.items[0] = { ...decided.items[0], votes: 1, voters: ["joon"], voter_ids: [4] };
    dispatch(state, decided);
    assert.equal(votesHidden(state.room), false);
    assert.equal(votedByMe(state, state.room.items[0]), false); // the state says joon, not me
  });

  test("an idea's tags are its words starting with #, as the server reads them", () => {
    assert.deepEqual(splitTags("  짬뽕 #해산물  #매운 "), { item: "짬뽕", tags: ["해산물", "매운"] });
    assert.deepEqual(splitTags("kimchi stew"), { item: "kimchi stew", tags: [] });
    assert.deepEqual(splitTags("#only"), { item: "", tags: ["only"] });
  });

  test("the avoid field is a comma-separated list; empty pieces and a leading # go", () => {
    assert.deepEqual(parseAvoids("해산물, #매운,, "), ["해산물", "매운"]);
    assert.deepEqual(parseAvoids(""), []);
  });

  test("an add with tags empties the field once the list has its item", () => {
    const state = joinedPage(1);
    dispatch(state, { type: "page:sent", command: { action: "add", item: "짬뽕", tags: ["해산물"] }, origin: "add", text: "짬뽕 #해산물" });
    assert.equal(state.pendingAdd, "짬뽕 #해산물");
    const effects = dispatch(state, stateEvent(2, { items: ["짬뽕"] }));
    assert.deepEqual(effects.find((effect) => effect.kind === "clear-field"), { kind: "clear-field", text: "짬뽕 #해산물" });
  });

  test("my avoids fill their field when they change (here or in another tab), once", () => {
    const state = joinedPage(1);
    const first = dispatch(state, blindEvent(2, { avoids: ["해산물", "매운"] }));
    assert.deepEqual(first.filter((e) => e.kind === "avoid-field"), [{ kind: "avoid-field", text: "해산물, 매운" }]);
    assert.deepEqual(dispatch(state, blindEvent(3, { avoids: ["해산물", "매운"] })).filter((e) => e.kind === "avoid-field"), []);
  });

  test("the add field adds a new idea, or gives one on the list its new tags", () => {
    const state = joinedPage(1, { items: ["짬뽕"] });
    assert.deepEqual(addCommand(state.room, "우동 #면"), { action: "add", item: "우동", tags: ["면"] });
    assert.deepEqual(addCommand(state.room, "우동"), { action: "add", item: "우동" });
    assert.deepEqual(addCommand(state.room, " 짬뽕  #해산물"), { action: "tag", item: "짬뽕", tags: ["해산물"] });
    assert.deepEqual(addCommand(state.room, "짬뽕"), { action: "add", item: "짬뽕" }); // duplicate_item says why
    assert.equal(addCommand(state.room, "#해산물"), null);
  });

  test("new tags from the add field empty it once the idea has them, not before", () => {
    const state = joinedPage(1, { items: ["짬뽕"] });
    const command = addCommand(state.room, "짬뽕 #Seafood");
    dispatch(state, { type: "page:sent", command, origin: "add", text: "짬뽕 #Seafood" });
    const other = stateEvent(2, { items: ["짬뽕"] }); // someone else's change: no tags yet
    assert.deepEqual(dispatch(state, other).filter((e) => e.kind === "clear-field"), []);
    const tagged = stateEvent(3, { items: ["짬뽕"] });
    tagged.items[0].tags = ["seafood"];
    assert.deepEqual(dispatch(state, tagged).filter((e) => e.kind === "clear-field"), [
      { kind: "clear-field", text: "짬뽕 #Seafood" },
    ]);
    assert.equal(state.pendingAdd, null);
  });

  test("hiding and showing the votes is said to screen readers", () => {
    const state = joinedPage(1, { items: ["pho"] });
    const hidden = stateEvent(2, { items: ["pho"] });
    hidden.room.blind = true;
    const said = (effects) => effects.filter((e) => e.kind === "announce").map((e) => e.text);
    assert.deepEqual(said(dispatch(state, hidden)), ["The votes are hidden until the pick."]);
    assert.deepEqual(said(dispatch(state, stateEvent(3, { items: ["pho"] }))), ["The votes are shown again."]);
  });

  test("the reel turns only through what can be drawn: not what someone can't eat", () => {
    const state = joinedPage(1);
    const event = stateEvent(2, { items: ["pho", "ramen", "sushi"] });
    event.items[2].avoider_ids = [4];
    event.items[2].avoided_by = ["joon"];
    dispatch(state, event);
    dispatch(state, { type: "picked", item: "pho", by: "minji", mode: "top" });
    assert.deepEqual(state.spin.names, ["pho", "ramen"]);
  });
});

describe("an order (issue 30)", () => {
  const decided = { item: "짬뽕집", by: "minji", at: "2026-11-24T12:05:00+00:00" };
  function withOrders(version, orders) {
    const event = stateEvent(version, { items: ["짬뽕집"], decision: decided });
    event.room.orders = orders;
    return event;
  }

  test("the field is emptied once the room lists my order, not when it is sent", () => {
    const state = joinedPage(1, { items: ["짬뽕집"], decision: decided });
    dispatch(state, { type: "page:sent", command: { action: "order", text: "짬뽕 곱빼기" }, origin: "order" });
    const other = withOrders(2, [{ id: 4, name: "joon", text: "탕수육" }]); // someone else's
    assert.deepEqual(dispatch(state, other).filter((e) => e.kind === "clear-field"), []);
    const mine = withOrders(3, [{ id: 3, name: "minji", text: "짬뽕  곱빼기" }]);
    assert.deepEqual(dispatch(state, mine).filter((e) => e.kind === "clear-field"), [
      { kind: "clear-field", field: "order-input", text: "짬뽕 곱빼기" },
    ]);
    assert.equal(state.pendingOrder, null);
  });

  test("a refused order keeps what was typed", () => {
    const state = joinedPage(1, { items: ["짬뽕집"], decision: decided });
    dispatch(state, { type: "page:sent", command: { action: "order", text: "\u200b" }, origin: "order" });
    dispatch(state, { type: "error", code: "invalid_order", origin: "order" });
    assert.equal(state.pendingOrder, null);
    assert.deepEqual(state.errors, { order: "invalid_order" });
    const later = withOrders(2, [{ id: 3, name: "minji", text: "\u200b" }]);
    assert.deepEqual(dispatch(state, later).filter((e) => e.kind === "clear-field"), []);
  });
});
