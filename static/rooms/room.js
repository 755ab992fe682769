// The room page's client. Three parts, as zulip's web client draws the line:
//   js/state.js   the data: one state object, changed only by dispatch(message);
//   js/render.js  the page drawn from that state (user text by textContent only);
//   js/socket.js  the WebSocket: connect, reconnect with backoff, send with a `ref` and an `id`
//                 (what a dropped connection left unanswered is resent after the next join).
// This file wires them: what the person does becomes a command or a page message, every
// message goes through dispatch, then the page is rendered and the effects carried out.

import { addCommand, createState, dispatch, parseAvoids } from "./js/state.js";
import { applyDomEffect, render, shareSentence } from "./js/render.js";
import { openSocket } from "./js/socket.js";
import { gettext } from "./js/text.js";

const NAME_KEY = "lunchsite.name";
const tokenKey = (roomId) => "lunchsite.token." + roomId;
const $ = (id) => document.getElementById(id);

const config = JSON.parse($("room-config").textContent);
config.reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
const state = createState(config, Date.now());
let socket = null;

// --- The loop: message -> dispatch -> render -> effects ---------------------------------

function handle(message) {
  const effects = dispatch(state, message);
  render(state);
  for (const effect of effects) runEffect(effect);
}

function runEffect(effect) {
  if (applyDomEffect(effect)) return;
  switch (effect.kind) {
    case "after":
      setTimeout(() => handle(effect.message), effect.ms);
      break;
    case "remember":
      store(NAME_KEY, effect.name);
      if (effect.token) store(tokenKey(config.roomId), effect.token);
      break;
    case "send-remove":
      sendCommand({ action: "remove", item: effect.name }, "item:" + effect.name);
      break;
    case "stop":
      socket.stop();
      break;
    default:
      break;
  }
}

/** Send a command for a control; a page message says whether it went out (with `text`, what
 * was typed for it). */
function sendCommand(command, origin, text) {
  if (socket.send(command, origin)) {
    handle({ type: "page:sent", command, origin, text });
    return true;
  }
  handle({ type: "page:not-sent", origin, code: "not_connected" });
  return false;
}

// --- Storage (private mode has none: then things live as long as the page) -------------------

function stored(key) {
  try {
    return localStorage.getItem(key) || "";
  } catch (error) {
    return "";
  }
}

function store(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch (error) {
    // Private mode: nothing to keep it in.
  }
}

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const name = stored(NAME_KEY) || $("name-input").value;
  let url = scheme + "//" + location.host + config.wsPath + "?name=" + encodeURIComponent(name);
  // The rejoin token: the same person again even when cookies are blocked or cleared.
  const token = stored(tokenKey(config.roomId));
  if (token) url += "&token=" + encodeURIComponent(token);
  return url;
}

// --- What the person does ---------------------------------------------------------------------

function addIdea(event) {
  event.preventDefault();
  const input = $("item-input");
  const value = input.value.trim();
  // Words starting with # are the idea's tags ("짬뽕 #해산물"), as in the shorthand; an idea
  // already on the list gets them as its new tags.
  const command = addCommand(state.room, value);
  if (!command) {
    handle({ type: "page:refused", origin: "add", code: "empty_item" });
  } else {
    // The field keeps the text until the list shows it: a refusal never erases it.
    sendCommand(command, "add", value);
  }
  input.focus();
}

function saveAvoids(event) {
  event.preventDefault();
  // The field keeps what was typed; a refusal (invalid_tag) shows beside it.
  sendCommand({ action: "avoid", tags: parseAvoids($("avoid-input").value) }, "avoid");
}

function saveName(event) {
  if (event) event.preventDefault();
  const input = $("name-input");
  const name = input.value.replace(/\s+/g, " ").trim();
  if (!name || name.length > config.maxNameLength) {
    handle({ type: "page:refused", origin: "rename", code: "invalid_name" });
    return;
  }
  input.value = name;
  store(NAME_KEY, name);
  // Enter fires both submit and change: send each new name once.
  if (name !== state.me.name && name !== saveName.sent) {
    saveName.sent = name;
    sendCommand({ action: "rename", name: name }, "rename");
  }
}

function itemClick(event) {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const name = button.dataset.item;
  if (button.dataset.action === "remove") {
    handle({ type: "page:remove", name: name });
    return;
  }
  sendCommand({ action: button.dataset.action, item: name }, "item:" + name);
}

function hostClick(event) {
  const button = event.target.closest("button");
  if (!button) return;
  const id = Number(button.dataset.id);
  if (button.classList.contains("make-host")) sendCommand({ action: "host", participant: id }, "host");
  else if (button.classList.contains("kick")) handle({ type: "page:confirm", kind: "kick", id: id, label: button.dataset.label });
}

function confirmYes() {
  const confirm = state.confirm;
  if (!confirm) return;
  handle({ type: "page:confirm-cancel" });
  if (confirm.kind === "kick") sendCommand({ action: "kick", participant: confirm.id }, "host");
  else sendCommand({ action: "close" }, "host");
}

/** Seconds from `now` (ms) to the next HH:MM on this device's clock, if 30 s to an hour. */
function secondsUntilClock(value, now) {
  const match = /^(\d{2}):(\d{2})/.exec(value || "");
  if (!match) return null;
  const at = new Date(now);
  at.setHours(Number(match[1]), Number(match[2]), 0, 0);
  if (at.getTime() < now - 60000) at.setDate(at.getDate() + 1); // a time just past is today
  const seconds = Math.round((at.getTime() - now) / 1000);
  return seconds >= 30 && seconds <= 3600 ? seconds : null;
}

// --- Sharing -----------------------------------------------------------------------------------

function copyText(text, statusId, done) {
  const status = $(statusId);
  const fallback = () => {
    // Plain-http pages (make run's address on the office LAN) have no async clipboard, and
    // no share sheet either: the copy command, on a field of its own where the page already
    // is (site.css .copy-buffer), so that selecting it neither scrolls the page away nor
    // leaves the focus off the button that was pressed.
    const pressed = document.activeElement;
    const field = document.createElement("textarea");
    field.className = "copy-buffer";
    field.readOnly = true; // no keyboard on a phone
    field.value = text;
    document.body.append(field);
    selectAll(field);
    let ok = false;
    try {
      ok = document.execCommand("copy");
    } catch (error) {
      ok = false;
    }
    field.remove();
    if (pressed && pressed !== document.body) pressed.focus({ preventScroll: true });
    status.textContent = ok ? done : gettext("Select the link and copy it.");
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(() => { status.textContent = done; }, fallback);
  } else {
    fallback();
  }
}

/** All of a text field selected (and focused: the copy command copies what has focus). */
function selectAll(field) {
  field.select();
  // iOS leaves a field unselected by select() alone.
  field.setSelectionRange(0, field.value.length);
}

function share(data, statusId, copyFallbackText) {
  if (navigator.share) {
    navigator.share(data).catch(() => {});
  } else {
    copyText(copyFallbackText, statusId, gettext("Copied. Paste it in your group chat."));
  }
}

// --- Wiring ------------------------------------------------------------------------------------

function start() {
  $("name-input").value = stored(NAME_KEY) || config.suggestedName;
  store(NAME_KEY, $("name-input").value);

  $("add-form").addEventListener("submit", addIdea);
  $("name-form").addEventListener("submit", saveName);
  $("name-input").addEventListener("change", () => saveName(null));
  $("items").addEventListener("click", itemClick);
  $("undo").addEventListener("click", () => handle({ type: "page:undo" }));
  $("pick").addEventListener("click", () => {
    const mode = document.querySelector('input[name="mode"]:checked');
    const command = { action: "pick", mode: mode ? mode.value : "top" };
    // A lunch group's room: "not what we had this week" (groups.css, favorites.js).
    if ($("avoid-recent") && $("avoid-recent").checked) command.avoid_recent = true;
    // A tie in mode top goes to a runoff instead of a draw (issue 29).
    if (command.mode === "top" && $("tie-runoff").checked) command.on_tie = "runoff";
    sendCommand(command, "pick");
  });
  $("extend").addEventListener("click", () => sendCommand({ action: "extend" }, "extend"));
  // The host's deadline: "in N minutes" in one tap, "at HH:MM" in two (time, then Set).
  $("deadline-host").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-seconds]");
    if (button) sendCommand({ action: "deadline", seconds: Number(button.dataset.seconds) }, "deadline");
  });
  $("deadline-at-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const seconds = secondsUntilClock($("deadline-at").value, Date.now() + state.clockOffset);
    if (seconds === null) handle({ type: "page:refused", origin: "deadline", code: "invalid_deadline" });
    else sendCommand({ action: "deadline", seconds: seconds }, "deadline");
  });
  $("deadline-off").addEventListener("click", () => sendCommand({ action: "deadline", seconds: null }, "deadline"));
  $("done").addEventListener("click", () => {
    const done = $("done").getAttribute("aria-pressed") !== "true";
    sendCommand({ action: "done", done: done }, "deadline");
  });
  $("going").addEventListener("click", () => {
    const going = $("going").getAttribute("aria-pressed") !== "true";
    sendCommand({ action: "going", going: going }, "going");
  });
  $("lock-toggle").addEventListener("click", (event) => sendCommand({ action: event.currentTarget.dataset.action }, "host"));
  $("blind-toggle").addEventListener("click", (event) =>
    sendCommand({ action: "blind", blind: event.currentTarget.dataset.action === "blind" }, "host"));
  $("avoid-form").addEventListener("submit", saveAvoids);
  $("host-people").addEventListener("click", hostClick);
  $("close-room").addEventListener("click", () => handle({ type: "page:confirm", kind: "close" }));
  $("confirm-yes").addEventListener("click", confirmYes);
  $("confirm-no").addEventListener("click", () => handle({ type: "page:confirm-cancel" }));

  // After the pick: my order, the bill, my share, the message for the chat.
  $("order-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("order-input").value.replace(/\s+/g, " ").trim();
    if (!text || text.length > config.maxOrderLength) {
      handle({ type: "page:refused", origin: "order", code: "invalid_order" });
      return;
    }
    // The field keeps the text until the room has the order (a refusal leaves it to fix).
    sendCommand({ action: "order", text: text }, "order");
  });
  $("order-withdraw").addEventListener("click", () => sendCommand({ action: "order", text: null }, "order"));
  $("bill-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const digits = $("bill-input").value.replace(/[\s,원₩]/g, "");
    const total = /^[0-9]+$/.test(digits) ? Number(digits) : NaN;
    if (!(total >= 1 && total <= 10000000)) {
      handle({ type: "page:refused", origin: "bill", code: "invalid_amount" });
      return;
    }
    sendCommand({ action: "bill", total: total }, "bill");
  });
  $("bill-off").addEventListener("click", () => sendCommand({ action: "bill", total: null }, "bill"));
  $("paid-toggle").addEventListener("click", () => {
    const paid = $("paid-toggle").getAttribute("aria-pressed") !== "true";
    sendCommand({ action: "paid", paid: paid }, "paid");
  });
  $("copy-summary").addEventListener("click", () => {
    const summary = state.room && state.room.room.summary;
    if (summary) copyText(summary, "after-status", gettext("Copied. Paste it in your group chat."));
  });
  if ($("announce")) {
    $("announce").addEventListener("click", () => {
      $("after-status").textContent = "";
      if (sendCommand({ action: "announce" }, "announce")) {
        $("after-status").textContent = gettext("Posting it to the group's chat…");
      }
    });
  }

  const shareUrl = config.shareUrl || config.roomUrl;
  $("copy-link").addEventListener("click", () => copyText(shareUrl, "copy-status", gettext("Link copied.")));
  if (navigator.share) {
    $("share-link-button").hidden = false;
    $("share-link-button").addEventListener("click", () =>
      share({ title: document.title, text: gettext("Help us pick lunch!"), url: shareUrl }, "copy-status", shareUrl));
  }
  $("share-decision").addEventListener("click", () => {
    const text = shareSentence(state);
    share({ title: document.title, text: text, url: shareUrl }, "decision-status", text + " " + shareUrl);
  });
  // A tap on the link selects all of it, to copy by hand. On focus alone is not enough: WebKit
  // (every iPhone browser) puts the caret where the tap landed once the click is over, after
  // the focus selected; so the click selects again, once that is done.
  const link = $("share-link");
  link.addEventListener("focus", () => selectAll(link));
  link.addEventListener("click", () => setTimeout(() => selectAll(link), 0));

  socket = openSocket({ url: socketUrl, onMessage: handle, onStatus: handle });
  // Back online or back to the tab: do not wait for the backoff timer.
  window.addEventListener("online", () => socket.retryNow());
  // The socket may take minutes to notice a lost network; start over as soon as it is back.
  window.addEventListener("offline", () => socket.drop());
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") socket.retryNow();
  });
  // A removal still waiting for its undo time goes out before the page does.
  window.addEventListener("pagehide", () => {
    if (state.removal) handle({ type: "page:remove-due", id: state.removal.id });
  });
  setInterval(() => handle({ type: "page:tick", now: Date.now() }), 1000);
  handle({ type: "page:tick", now: Date.now() });
  socket.connect();
}

start();
