// The page's data: one state object, changed only here, where messages arrive.
//
// `dispatch(state, message)` switches on the message type (the server's events, and the
// page's own: the socket opening or closing, a command sent, a timer firing) and changes
// `state` in place, like zulip's server_events_dispatch. It returns the one-off effects the
// change calls for (say something to screen readers, move focus, start a timer); the caller
// then re-renders from `state` alone and carries the effects out.

import { gettext, interpolate, itemKey, labelsOf, peopleLabels } from "./text.js";

// Refusals that end the stay in the room, by error code and by close code.
const ERROR_SCREENS = { room_full: "full", room_not_found: "gone", room_expired: "expired", kicked: "kicked" };
const CLOSE_SCREENS = { 4403: "full", 4404: "gone", 4410: "expired" };
// "Service restart" (a deploy): the socket reconnects at once (js/socket.js).
const RESTART_CLOSE_CODE = 1012;
// How long the undo of a removal is offered before the removal is sent.
export const UNDO_MS = 5000;
const REEL_LINGER_MS = 1500;

export function createState(config, now) {
  return {
    config, // the server's settings for this page (json_script "room-config"); read-only
    me: { id: null, name: "", token: "" },
    avoids: [], // what I can't eat, as the last state said (the field follows it)
    mine: [], // the items I voted for, as the server last said (welcome, `mine`): a blind room's
    version: -1, // the newest state seen; an older copy is dropped
    room: null, // that state: {room, items, participants}
    connection: "connecting", // "connecting" (first try), "online", "offline" (until back)
    retrySeconds: 0,
    errors: {}, // where an error shows (the control that caused it) -> error code
    pendingAdd: null, // the text an `add` sent; the field keeps it until the list has it
    pendingOrder: null, // the text an `order` sent; the field keeps it until the room has it
    pendingTags: null, // the tags' keys a `tag` from the same field sent (null: it was an add)
    removal: null, // {name, id}: removed here, sent when the undo time is over
    spin: null, // {id, names, winner, by, step, steps, shown}: the pick reel turning
    reel: null, // the name the reel shows after it landed (for a moment), or null
    picked: null, // {item, by} of a `picked` whose state has not arrived yet
    lastPicked: null, // the last `picked` (its `tied`, `auto`, `runoff`), to say how it was decided
    decidedAt: null, // the decision the page has announced (its `at`)
    confirm: null, // {kind: "kick" | "close", id, label}: a host action awaiting "yes"
    screen: null, // "full" | "gone" | "expired" | "kicked": the room cannot be used
    expiresAt: Date.parse(config.expiresAt),
    // Server time minus page time: countdowns agree even when a phone's clock is off.
    clockOffset: Date.parse(config.serverNow) - now,
    now: now,
    spins: 0, // pick reels started, and removals: ids that tell a stale timer from a live one
    removals: 0,
  };
}

export function dispatch(state, message) {
  const effects = [];
  switch (message.type) {
    // --- The server's events ---
    case "welcome":
      delete state.errors.connection; // joined: a refusal of an earlier try is over
      state.me = { id: message.you.id, name: message.you.name, token: message.you.token || state.me.token };
      state.mine = message.you.votes || [];
      effects.push({ kind: "remember", name: state.me.name, token: message.you.token || "" });
      effects.push({ kind: "name-field", name: state.me.name });
      break;
    case "state":
      if (typeof message.version !== "number" || message.version <= state.version) break;
      effects.push(...receiveState(state, message));
      break;
    case "picked":
      state.lastPicked = message;
      startSpin(state, message, effects);
      break;
    case "runoff":
      effects.push({
        kind: "announce",
        text: interpolate(gettext("A tie! Runoff between %s: one vote each."), [message.items.join(", ")]),
      });
      break;
    case "deadline_missed":
      showError(state, "deadline", "deadline_missed");
      effects.push({ kind: "announce", text: gettext("Time is up, but there was nothing to pick.") });
      break;
    case "mine":
      // A blind room: my own votes, which its states do not show.
      state.mine = Array.isArray(message.votes) ? message.votes : [];
      break;
    case "error":
      if (ERROR_SCREENS[message.code]) {
        finish(state, ERROR_SCREENS[message.code], effects);
      } else if (message.code === "too_many_connections") {
        // A refusal of the connection, not of a command: said in the status line until a
        // later try gets in (the socket keeps trying; closing another tab frees a place).
        state.errors = { connection: message.code };
      } else {
        showError(state, message.origin || "add", message.code);
        if (message.origin === "add") state.pendingAdd = state.pendingTags = null; // refused: the field keeps it
        if (message.origin === "order") state.pendingOrder = null;
        if (message.origin === "add") effects.push({ kind: "focus", target: "item-input" });
      }
      break;

    // --- The connection ---
    case "socket:connecting":
      // Retries while offline stay "offline": the status speaks once, not on every try.
      if (state.connection !== "offline") state.connection = "connecting";
      break;
    case "socket:open":
      state.connection = "online";
      state.retrySeconds = 0;
      // "Not connected" was about the outage that just ended.
      for (const [origin, code] of Object.entries(state.errors)) {
        if (code === "not_connected") delete state.errors[origin];
      }
      break;
    case "socket:closed":
      if (state.screen) break;
      if (CLOSE_SCREENS[message.code] && !message.willRetry) {
        finish(state, CLOSE_SCREENS[message.code], effects);
      } else if (message.code === RESTART_CLOSE_CODE) {
        // A deploy moves us to another server within a moment: not "offline".
        state.connection = "connecting";
      } else {
        state.connection = "offline";
        state.retrySeconds = message.retrySeconds;
      }
      break;

    // --- What the person does ---
    case "page:sent":
      showError(state, null, null);
      // What was typed (tags and all): the field is emptied once the list has its item.
      if (message.command.action === "add" || (message.command.action === "tag" && message.origin === "add")) {
        state.pendingAdd = message.text || message.command.item;
        state.pendingTags = message.command.action === "tag" ? tagKeys(message.command.tags) : null;
      }
      if (message.command.action === "order" && message.command.text) state.pendingOrder = message.command.text;
      break;
    case "page:not-sent":
    case "page:refused":
      showError(state, message.origin, message.code);
      break;
    case "page:remove":
      // Hidden here at once; sent when the undo time is over (or at once for the next one).
      if (state.removal) effects.push({ kind: "send-remove", name: state.removal.name });
      // A new id each time: the timer of an undone removal must not send a later one early.
      state.removals += 1;
      state.removal = { name: message.name, id: state.removals };
      effects.push({ kind: "after", ms: UNDO_MS, message: { type: "page:remove-due", id: state.removal.id } });
      effects.push({ kind: "focus", target: "undo" });
      break;
    case "page:remove-due":
      if (state.removal && state.removal.id === message.id) {
        effects.push({ kind: "send-remove", name: state.removal.name });
        state.removal = null;
      }
      break;
    case "page:undo": {
      const name = state.removal && state.removal.name;
      state.removal = null;
      if (name) effects.push({ kind: "focus", target: "item", name: name });
      break;
    }
    case "page:confirm":
      state.confirm = { kind: message.kind, id: message.id, label: message.label };
      effects.push({ kind: "focus", target: "confirm" });
      break;
    case "page:confirm-cancel":
      state.confirm = null;
      effects.push({ kind: "focus", target: "host-menu" });
      break;

    // --- Timers ---
    case "page:tick":
      state.now = message.now;
      break;
    case "page:spin-step":
      if (state.spin && state.spin.id === message.id) stepSpin(state, effects);
      break;
    case "page:reel-done":
      if (state.reel && state.reel.id === message.id) state.reel = null;
      break;
    default:
      break;
  }
  return effects;
}

/** One error on the page at a time (a new action clears the last), beside a refused connection. */
function showError(state, origin, code) {
  const errors = state.errors.connection ? { connection: state.errors.connection } : {};
  if (origin) errors[origin] = code;
  state.errors = errors;
}

// --- State events ------------------------------------------------------------------

function receiveState(state, next) {
  const effects = [];
  const before = state.room;
  state.version = next.version;
  state.room = { room: next.room, items: next.items, participants: next.participants };
  state.expiresAt = Date.parse(next.room.expires_at);
  const self = next.participants.find((person) => person.id === state.me.id);
  if (self && self.name !== state.me.name) {
    // Renamed here or in another tab of this browser (the same participant).
    state.me.name = self.name;
    effects.push({ kind: "remember", name: self.name, token: "" });
    effects.push({ kind: "name-field", name: self.name });
  }
  if (self && !sameList(self.avoids || [], state.avoids)) {
    // Set here or in another tab: the field shows it, unless someone is typing in it.
    state.avoids = (self.avoids || []).slice();
    effects.push({ kind: "avoid-field", text: state.avoids.join(", ") });
  }
  if (state.pendingAdd !== null) {
    const key = itemKey(splitTags(state.pendingAdd).item);
    const found = next.items.find((item) => itemKey(item.name) === key);
    // An add is in once the list has the idea; new tags for an idea on it once it has them.
    if (found && (state.pendingTags === null || sameList(tagKeys(found.tags || []), state.pendingTags))) {
      // Accepted: only now the field is emptied (a refusal keeps what was typed).
      effects.push({ kind: "clear-field", text: state.pendingAdd });
      state.pendingAdd = state.pendingTags = null;
    }
  }
  if (state.pendingOrder !== null) {
    // My order is in once the room lists it: only then is the field emptied.
    const mine = (next.room.orders || []).find((order) => order.id === state.me.id);
    if (mine && itemKey(mine.text) === itemKey(state.pendingOrder)) {
      effects.push({ kind: "clear-field", field: "order-input", text: state.pendingOrder });
      state.pendingOrder = null;
    }
  }
  if (state.removal && !next.items.some((item) => item.name === state.removal.name)) {
    state.removal = null; // someone else removed it meanwhile: nothing left to undo
  }
  if (state.confirm && state.confirm.kind === "kick" && !next.participants.some((p) => p.id === state.confirm.id)) {
    state.confirm = null;
  }
  const decision = next.room.decision;
  if (decision && decision.at !== state.decidedAt) {
    // The reel announces a pick it plays; a decision that came without one (we were
    // offline) is told here. Either way, once.
    const told = state.spin || (state.picked && state.picked.item === decision.item);
    if (before && !told) effects.push({ kind: "announce", text: interpolate(gettext("We're eating %s!"), [decision.item]) });
    state.decidedAt = decision.at;
    state.picked = null;
  }
  if (before) {
    const text = changesSaid(before, state.room, state.me.id);
    if (text) effects.push({ kind: "announce", text: text });
  }
  return effects;
}

/** What changed between two states, said in a sentence or two (others' doings only). */
function changesSaid(before, after, myId) {
  const parts = [];
  const labels = peopleLabels(after);
  const oldLabels = peopleLabels(before);
  const label = (id, name) => labels.get(id) || name;
  const hadPeople = new Map(before.participants.map((p) => [p.id, p]));
  for (const person of after.participants) {
    const old = hadPeople.get(person.id);
    if (person.id === myId) continue;
    if (!old) parts.push(interpolate(gettext("%s joined."), [label(person.id, person.name)]));
    else if (old.name !== person.name) {
      parts.push(interpolate(gettext("%s is now %s."), [oldLabels.get(person.id) || old.name, label(person.id, person.name)]));
    }
  }
  const oldItems = new Map(before.items.map((item) => [item.name, item]));
  for (const item of after.items) {
    const old = oldItems.get(item.name);
    oldItems.delete(item.name);
    if (!old) {
      if (item.added_by_id == null || item.added_by_id !== myId) {
        parts.push(interpolate(gettext("%s was added."), [item.name]));
      }
      continue;
    }
    for (const who of newcomers(old.voter_ids || old.voters, item.voter_ids || item.voters, item.voters, item.voter_ids, myId, labels)) {
      parts.push(interpolate(gettext("%s voted for %s."), [who, item.name]));
    }
    for (const who of newcomers(old.vetoer_ids || old.vetoed_by, item.vetoer_ids || item.vetoed_by, item.vetoed_by, item.vetoer_ids, myId, labels)) {
      parts.push(interpolate(gettext("%s vetoed %s."), [who, item.name]));
    }
  }
  for (const name of oldItems.keys()) parts.push(interpolate(gettext("%s was removed."), [name]));
  // The host hid the votes, or shows them again (the decision shows them without being said).
  if (Boolean(before.room.blind) !== Boolean(after.room.blind)) {
    parts.push(after.room.blind ? gettext("The votes are hidden until the pick.") : gettext("The votes are shown again."));
  }
  return parts.join(" ");
}

function newcomers(oldKeys, newKeys, names, ids, myId, labels) {
  const had = new Set(oldKeys);
  const shown = labelsOf(labels, ids, names);
  const out = [];
  newKeys.forEach((key, i) => {
    if (!had.has(key) && !(ids && key === myId)) out.push(shown[i]);
  });
  return out;
}

function sameList(a, b) {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}

// --- Blind votes and can't eat (docs/protocol.md) ----------------------------------------

/** Whether the room's states hide the votes: blind, and nothing decided yet. */
export function votesHidden(room) {
  return Boolean(room && room.room.blind && !room.room.decision);
}

/** Whether I voted for an item: my own votes in a blind room, else by my id (or name). */
export function votedByMe(state, item) {
  if (votesHidden(state.room)) return state.mine.includes(item.name);
  return item.voter_ids ? item.voter_ids.includes(state.me.id) : item.voters.includes(state.me.name);
}

/** "짬뽕 #해산물 #매운" -> {item: "짬뽕", tags: ["해산물", "매운"]}: words starting with # are
 * tags, as the server's shorthand reads them. */
export function splitTags(text) {
  const words = text.split(/\s+/).filter(Boolean);
  return {
    item: words.filter((word) => !word.startsWith("#")).join(" "),
    tags: words.filter((word) => word.startsWith("#")).map((word) => word.slice(1)),
  };
}

/** What the add field sends: a new idea (`add`, with its tags), or, for an idea already on
 * the list, its new tags (`tag`); null when there is no idea's name in it. */
export function addCommand(room, text) {
  const { item, tags } = splitTags(text);
  if (!item) return null;
  const key = itemKey(item);
  const existing = room && room.items.find((entry) => itemKey(entry.name) === key);
  if (existing && tags.length) return { action: "tag", item: existing.name, tags: tags };
  return tags.length ? { action: "add", item: item, tags: tags } : { action: "add", item: item };
}

function tagKeys(tags) {
  return Array.from(new Set(tags.map(itemKey))).sort();
}

/** "해산물, #매운" -> ["해산물", "매운"]: what I can't eat, as the avoid field says it. */
export function parseAvoids(text) {
  return text.split(/[,，、]/).map((piece) => piece.trim().replace(/^#/, "").trim()).filter(Boolean);
}

// --- The pick reel -------------------------------------------------------------------

function startSpin(state, message, effects) {
  const items = state.room ? state.room.items : [];
  const names = items.filter((item) => !item.vetoed_by.length && !(item.avoider_ids || []).length).map((item) => item.name);
  if (!names.includes(message.item)) names.push(message.item);
  state.spins += 1;
  // Every page has the same items in the same order, so each plays the same sequence,
  // slowing down until it stops on the server's choice. Reduced motion: no turning.
  const loops = Math.max(2, Math.ceil(14 / names.length));
  const steps = state.config.reducedMotion ? 1 : loops * names.length + names.indexOf(message.item) + 1;
  state.spin = { id: state.spins, names, winner: message.item, by: message.by, step: 0, steps, shown: "" };
  state.picked = { item: message.item, by: message.by };
  state.reel = null;
  showError(state, null, null);
  if (state.config.reducedMotion) {
    state.spin.step = steps - 1;
    effects.push({ kind: "after", ms: 200, message: { type: "page:spin-step", id: state.spin.id } });
    return;
  }
  stepSpin(state, effects);
}

function stepSpin(state, effects) {
  const spin = state.spin;
  spin.shown = spin.names[spin.step % spin.names.length];
  spin.step += 1;
  if (spin.step < spin.steps) {
    const progress = spin.step / spin.steps;
    effects.push({ kind: "after", ms: 45 + 260 * progress * progress, message: { type: "page:spin-step", id: spin.id } });
    return;
  }
  // Landed: the banner takes over; the landed reel stays a moment so the eye can follow.
  state.spin = null;
  state.reel = { id: spin.id, text: spin.winner };
  effects.push({ kind: "after", ms: REEL_LINGER_MS, message: { type: "page:reel-done", id: spin.id } });
  effects.push({ kind: "announce", text: interpolate(gettext("We're eating %s!"), [spin.winner]) });
  effects.push({ kind: "reveal-decision" });
}

// --- The end ---------------------------------------------------------------------------

function finish(state, screen, effects) {
  if (state.screen) return;
  state.screen = screen;
  state.spin = null;
  state.removal = null;
  state.confirm = null;
  effects.push({ kind: "stop" });
  effects.push({ kind: "focus", target: "screen" });
}
