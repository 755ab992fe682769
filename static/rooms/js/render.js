// The page drawn from the state: `render(state)` reads nothing but `state` (and the elements
// it drew before), and puts user text in with textContent only, never as HTML.

import { votedByMe, votesHidden } from "./state.js";
import { amountText, errorText, gettext, interpolate, labelsOf, ngettext, peopleLabels } from "./text.js";

const WARN_SECONDS = 60;
const $ = (id) => document.getElementById(id);

export function render(state) {
  if (state.screen) {
    renderScreen(state);
    return;
  }
  renderConnection(state);
  renderCountdown(state);
  const room = state.room;
  const labels = peopleLabels(room);
  renderHeadcount(state, labels);
  renderLock(state);
  $("blind-note").hidden = !votesHidden(room);
  if (room) {
    renderParticipants(state, labels);
    renderItems(state, labels);
    renderHostMenu(state, labels);
  }
  renderDeadline(state);
  renderRunoff(state);
  renderDecision(state, labels);
  renderAfter(state, labels);
  renderReel(state);
  renderUndo(state);
  renderErrors(state);
}

// --- Status line ----------------------------------------------------------------------

function renderConnection(state) {
  const box = $("connection");
  box.dataset.status = state.connection;
  // The live region changes only when the status does: no announcement per retry.
  const text = {
    connecting: gettext("Connecting…"),
    online: gettext("Connected"),
    offline: gettext("Offline. Reconnecting…"),
  }[state.connection];
  const refused = state.errors.connection;
  setText($("connection-text"), refused ? errorText(refused, state.config) : text);
  setText($("connection-retry"), state.connection === "offline" && state.retrySeconds
    ? interpolate(gettext("(next try in %s s)"), [state.retrySeconds]) : "");
}

export function remainingSeconds(state) {
  return Math.max(0, Math.round((state.expiresAt - (state.now + state.clockOffset)) / 1000));
}

function renderCountdown(state) {
  const remaining = remainingSeconds(state);
  const minutes = Math.floor(remaining / 60);
  const seconds = String(remaining % 60).padStart(2, "0");
  const time = $("countdown-time");
  setText(time, minutes + ":" + seconds);
  const iso = new Date(state.expiresAt).toISOString();
  if (time.getAttribute("datetime") !== iso) time.setAttribute("datetime", iso);
  const warn = remaining <= WARN_SECONDS;
  $("countdown").dataset.level = warn ? "warn" : "ok";
  $("warning").hidden = !warn;
}

// --- Headcount, lock ----------------------------------------------------------------------

function goingOf(state) {
  return (state.room && state.room.room.going) || null;
}

function goingSentence(going, labels) {
  if (!going || !going.length) return "";
  const names = going.map((person) => labels.get(person.id) || person.name).join(", ");
  return interpolate(ngettext("%s of us: %s", "%s of us: %s", going.length), [going.length, names]);
}

export function shareSentence(state) {
  const decision = decisionOf(state);
  if (!decision) return "";
  const labels = peopleLabels(state.room);
  const going = goingSentence(goingOf(state), labels);
  const text = interpolate(gettext("We're eating %s!"), [decision.item]);
  return going ? text + " " + going + "." : text;
}

function renderHeadcount(state, labels) {
  const going = goingOf(state);
  $("going-bar").hidden = going === null;
  if (going === null) return;
  const mine = going.some((person) => person.id === state.me.id);
  const button = $("going");
  button.setAttribute("aria-pressed", mine ? "true" : "false");
  $("going-count").toggleAttribute("data-empty", !going.length);
  setText($("going-count"), going.length
    ? goingSentence(going, labels)
    : gettext("Nobody has said they're coming yet."));
}

function renderLock(state) {
  const locked = Boolean(state.room && state.room.room.locked);
  $("locked-note").hidden = !locked;
  $("item-input").disabled = locked;
  $("add-button").disabled = locked;
  $("item-input").setAttribute("aria-describedby", locked ? "locked-note item-error" : "item-error");
}

// --- People ---------------------------------------------------------------------------

function amHost(state) {
  const me = state.room && state.room.participants.find((person) => person.id === state.me.id);
  return Boolean(me && me.host);
}

function renderParticipants(state, labels) {
  const participants = state.room.participants;
  setText($("people-count"), participants.length + "/" + state.config.maxParticipants);
  const chips = participants.map((person) => {
    const chip = element("li", "chip", labels.get(person.id) || person.name);
    if (person.host) {
      chip.classList.add("host");
      chip.append(" ", element("span", "chip-tag host-tag", "👑 " + gettext("host")));
    }
    if (person.id === state.me.id) {
      chip.classList.add("me");
      chip.append(" ", element("span", "chip-tag", gettext("you")));
    }
    return chip;
  });
  // Rebuilt only when what it shows changed (chips hold no focus, but screen readers may).
  const signature = chips.map((chip) => chip.textContent).join("\n");
  const list = $("participants");
  if (list.dataset.signature !== signature) {
    list.replaceChildren(...chips);
    list.dataset.signature = signature;
  }
}

function renderHostMenu(state, labels) {
  const host = amHost(state);
  const menu = $("host-menu");
  menu.hidden = !host;
  if (!host) return;
  const locked = Boolean(state.room.room.locked);
  setText($("lock-toggle"), locked ? "🔓 " + gettext("Unlock the list") : "🔒 " + gettext("Lock the list"));
  $("lock-toggle").dataset.action = locked ? "unlock" : "lock";
  const blind = Boolean(state.room.room.blind);
  setText($("blind-toggle"), blind ? "👀 " + gettext("Show the votes") : "🙈 " + gettext("Hide the votes until the pick"));
  $("blind-toggle").dataset.action = blind ? "unblind" : "blind";
  const others = state.room.participants.filter((person) => person.id !== state.me.id);
  const list = $("host-people");
  const existing = new Map(Array.from(list.children, (row) => [Number(row.dataset.id), row]));
  const rows = others.map((person) => {
    const row = existing.get(person.id) || hostRow(person.id);
    existing.delete(person.id);
    const label = labels.get(person.id) || person.name;
    setText(row.querySelector(".host-person"), label);
    row.querySelector("button.kick").dataset.label = label;
    return row;
  });
  existing.forEach((row) => row.remove());
  rows.forEach((row, index) => {
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
  });
  $("host-people-empty").hidden = others.length > 0;

  const confirm = state.confirm;
  $("confirm").hidden = !confirm;
  if (confirm) {
    setText($("confirm-text"), confirm.kind === "close"
      ? gettext("Close the room for everyone now? The list stays readable, but nobody can change it.")
      : interpolate(gettext("Remove %s from the room? Their votes and vetoes go; they cannot come back."), [confirm.label]));
    setText($("confirm-yes"), confirm.kind === "close" ? gettext("Close the room") : gettext("Remove them"));
  }
}

function hostRow(id) {
  const row = element("li", "host-row");
  row.dataset.id = String(id);
  const person = element("span", "host-person");
  person.id = "host-person-" + id;
  const make = element("button", "button small make-host", gettext("Make host"));
  make.type = "button";
  make.dataset.id = String(id);
  const kick = element("button", "button small danger kick", gettext("Remove…"));
  kick.type = "button";
  kick.dataset.id = String(id);
  // The buttons say what they do; the group says to whom (its name is the person's).
  const buttons = element("span", "host-row-actions");
  buttons.setAttribute("role", "group");
  buttons.setAttribute("aria-labelledby", person.id);
  buttons.append(make, kick);
  row.append(person, buttons);
  return row;
}

// --- Ideas -----------------------------------------------------------------------------

function renderItems(state, labels) {
  const list = $("items");
  const removing = state.removal ? state.removal.name : null;
  const items = state.room.items.filter((item) => item.name !== removing);
  const most = Math.max(1, state.room.participants.length, ...items.map((item) => item.votes || 0));
  const decision = decisionOf(state);
  const decided = decision ? decision.item : null;
  // Rows are kept and updated in place, keyed by name: a tap that lands while another
  // person's change arrives still hits the same button (and keyboard focus stays put).
  const existing = new Map(Array.from(list.children, (row) => [row.dataset.name, row]));
  const rows = items.map((item) => {
    const row = existing.get(item.name) || itemRow(item.name);
    existing.delete(item.name);
    updateRow(row, item, most, decided, state, labels);
    return row;
  });
  existing.forEach((row) => row.remove());
  rows.forEach((row, index) => {
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
  });
  $("items-empty").hidden = items.length > 0;
  setText($("items-count"), items.length ? String(items.length) : "");
}

let rowsMade = 0;

function itemRow(itemName) {
  rowsMade += 1;
  const row = element("li", "item");
  row.dataset.name = itemName;
  const head = element("div", "item-head");
  const tags = element("ul", "item-tags");
  tags.setAttribute("aria-label", gettext("Tags"));
  head.append(element("span", "item-name", itemName), element("span", "item-meta"), tags);
  const bar = element("div", "bar");
  bar.setAttribute("aria-hidden", "true");
  bar.append(element("span", "bar-fill"));
  const actions = element("div", "item-actions");
  actions.append(actionButton("vote", itemName), actionButton("veto", itemName));
  const foot = element("div", "item-foot");
  foot.append(element("div", "item-marks"), actionButton("remove", itemName));
  const error = element("p", "field-error item-error");
  error.id = "item-error-" + rowsMade;
  error.setAttribute("role", "alert");
  row.append(head, actions, bar, foot, error);
  for (const button of row.querySelectorAll("button")) button.setAttribute("aria-describedby", error.id);
  return row;
}

function actionButton(action, itemName) {
  const button = element("button", "icon-button " + action);
  button.type = "button";
  button.dataset.action = action;
  button.dataset.item = itemName;
  const icon = element("span", "icon");
  icon.setAttribute("aria-hidden", "true");
  // The count after the word, as apps count likes ("투표 2", not "2 투표"); the name says it
  // with its unit ("2표") through the hidden part.
  const tally = element("span", "tally");
  tally.setAttribute("aria-hidden", "true");
  button.append(icon, element("span", "label"), tally, element("span", "more visually-hidden"));
  return button;
}

function updateRow(row, item, most, decided, state, labels) {
  const vetoed = item.vetoed_by.length > 0;
  const avoiders = labelsOf(labels, item.avoider_ids || [], item.avoided_by || []);
  const hidden = votesHidden(state.room);
  row.classList.toggle("vetoed", vetoed);
  const runoff = runoffOf(state);
  const inRunoff = Boolean(runoff && runoff.items.includes(item.name));
  row.classList.toggle("in-runoff", inRunoff);
  row.classList.toggle("out-of-runoff", Boolean(runoff) && !inRunoff);
  row.querySelector("button.vote").disabled = Boolean(runoff) && !inRunoff;
  row.classList.toggle("avoided", avoiders.length > 0);
  const tags = item.tags || [];
  const tagList = row.querySelector(".item-tags");
  tagList.hidden = !tags.length;
  if (tagList.dataset.signature !== tags.join("\n")) {
    tagList.replaceChildren(...tags.map((tag) => element("li", "tag", "#" + tag)));
    tagList.dataset.signature = tags.join("\n");
  }
  row.classList.toggle("winner", decided === item.name);
  const addedBy = item.added_by_id != null ? labels.get(item.added_by_id) || item.added_by : item.added_by;
  setText(row.querySelector(".item-meta"), addedBy ? interpolate(gettext("added by %s"), [addedBy]) : "");
  // CSSOM, not a style attribute: allowed by our Content-Security-Policy.
  const width = hidden ? "0%" : Math.round((100 * item.votes) / most) + "%";
  const fill = row.querySelector(".bar-fill");
  if (fill.style.width !== width) fill.style.width = width;

  const voters = labelsOf(labels, item.voter_ids, item.voters);
  const vetoers = labelsOf(labels, item.vetoer_ids, item.vetoed_by);
  const marks = [];
  if (voters.length) marks.push(element("span", "voters", "👍 " + voters.join(", ")));
  if (vetoed) marks.push(element("span", "vetoes", "✋ " + interpolate(gettext("vetoed by %s"), [vetoers.join(", ")])));
  if (avoiders.length) marks.push(element("span", "avoiders", "🚫 " + interpolate(gettext("%s can't eat it"), [avoiders.join(", ")])));
  const box = row.querySelector(".item-marks");
  if (box.textContent !== marks.map((mark) => mark.textContent).join("")) box.replaceChildren(...marks);

  // My vote and veto by my id; by name only against a server that sends no ids. A blind
  // room shows no counts: my own vote is what the server told me (`mine`).
  const mine = (ids, names) => (ids ? ids.includes(state.me.id) : names.includes(state.me.name));
  setButton(row.querySelector("button.vote"), "👍", gettext("Vote"),
    hidden ? interpolate(gettext("for %s"), [item.name])
      : interpolate(ngettext("for %s, %s vote", "for %s, %s votes", item.votes), [item.name, item.votes]),
    votedByMe(state, item), hidden ? "" : String(item.votes));
  setButton(row.querySelector("button.veto"), "✋", gettext("Veto"), item.name, mine(item.vetoer_ids, item.vetoed_by));
  const remove = row.querySelector("button.remove");
  setButton(remove, "✕", gettext("Remove"), item.name, null);
  // While the list is locked only the host removes (the server refuses anyone else); during
  // a runoff nobody does (runoff_in_progress).
  remove.hidden = (Boolean(state.room.room.locked) && !amHost(state)) || Boolean(runoff);
  const error = state.errors["item:" + item.name];
  setText(row.querySelector(".item-error"), error ? errorText(error, state.config) : "");
}

function setButton(button, icon, text, more, pressed, tally = "") {
  // The name is the visible word, then what it is about for screen readers ("Vote for
  // Pho, 2 votes"): the words people see are the words they can say (WCAG 2.5.3).
  setText(button.querySelector(".icon"), icon);
  setText(button.querySelector(".label"), text);
  setText(button.querySelector(".tally"), tally);
  setText(button.querySelector(".more"), " " + more);
  if (pressed !== null) button.setAttribute("aria-pressed", pressed ? "true" : "false");
}

// --- Decision and reel --------------------------------------------------------------------

function decisionOf(state) {
  if (state.spin) return null;
  if (state.picked) return state.picked;
  return state.room ? state.room.room.decision : null;
}

function renderDecision(state, labels) {
  const decision = decisionOf(state);
  const banner = $("decision");
  banner.hidden = !decision;
  $("pick").disabled = Boolean(state.spin);
  if (!decision) return;
  setText($("decision-item"), decision.item);
  setText($("decision-by"), decidedHow(state, decision));
  const going = goingSentence(goingOf(state), labels);
  setText($("decision-going"), going);
}

// --- After the pick: orders, the bill --------------------------------------------------------

function renderAfter(state, labels) {
  const info = state.room && !state.spin ? state.room.room : null;
  const box = $("after");
  box.hidden = !(info && info.decision);
  if (box.hidden) return;
  const orders = info.orders || [];
  const mine = orders.find((order) => order.id === state.me.id);
  setText($("order-mine"), mine ? interpolate(gettext("Your order: %s"), [mine.text]) : "");
  $("order-withdraw").hidden = !mine;
  setText($("orders-count"), orders.length ? String(orders.length) : "");
  $("orders-empty").hidden = orders.length > 0;
  const lines = (info.order_tally || []).map((line) => {
    const row = element("li", "tally-line");
    const who = line.ids.map((id) => labels.get(id) || (orders.find((o) => o.id === id) || {}).name || "");
    row.append(element("span", "tally-text", line.text), element("span", "tally-count", "×" + line.count),
      element("span", "tally-who", who.join(", ")));
    return row;
  });
  replaceIfChanged($("order-tally"), lines);

  // "Posting it…" is not left beside the refusal that answered it.
  if (state.errors.announce) setText($("after-status"), "");
  const bill = info.bill;
  $("bill-box").hidden = !bill;
  const copy = $("copy-summary");
  copy.disabled = !info.summary;
  if (!bill) return;
  const payer = labels.get(bill.paid_by.id) || bill.paid_by.name;
  setText($("bill-line"), interpolate(gettext("Total %s, paid by %s"), [amountText(bill.total, bill.currency), payer]));
  const rows = bill.shares.map((share) => {
    const row = element("li", "share");
    const name = labels.get(share.id) || share.name;
    const isPayer = share.id === bill.paid_by.id;
    const status = isPayer ? gettext("paid the bill") : share.paid ? "✓ " + gettext("sent") : gettext("not yet");
    const tag = element("span", "share-state" + (share.paid ? " paid" : ""), status);
    row.append(element("span", "share-name", name), element("span", "share-amount", amountText(share.amount, bill.currency)), tag);
    if (share.id === state.me.id) row.classList.add("me");
    return row;
  });
  replaceIfChanged($("shares"), rows);
  const myShare = bill.shares.find((share) => share.id === state.me.id);
  const toggle = $("paid-toggle");
  toggle.hidden = !myShare || myShare.id === bill.paid_by.id;
  toggle.setAttribute("aria-pressed", myShare && myShare.paid ? "true" : "false");
}

function replaceIfChanged(list, rows) {
  const signature = rows.map((row) => row.textContent).join("\n");
  if (list.dataset.signature !== signature) {
    list.replaceChildren(...rows);
    list.dataset.signature = signature;
  }
}

/** How the decision was made: by whom, or by the room itself; and a tie if there was one. */
function decidedHow(state, decision) {
  const picked = state.lastPicked && state.lastPicked.item === decision.item ? state.lastPicked : null;
  let text = "";
  if (decision.by) text = interpolate(gettext("picked by %s"), [decision.by]);
  else if (picked && picked.runoff) text = gettext("decided by the runoff");
  else if (decision.auto || (picked && picked.auto)) text = gettext("decided on time, by the room");
  if (picked && picked.tied && picked.tied.length) {
    text += (text ? " · " : "") + interpolate(gettext("a tie between %s, drawn at random"), [picked.tied.join(", ")]);
  } else if (picked && picked.tie_break === "draw") {
    text += (text ? " · " : "") + gettext("still tied, drawn at random");
  }
  return text;
}

// --- Deadline, done and runoff -----------------------------------------------------------

/** Seconds from now (the server's now) to an ISO time; never below 0. */
function secondsUntil(state, iso) {
  return Math.max(0, Math.round((Date.parse(iso) - (state.now + state.clockOffset)) / 1000));
}

function clock(seconds) {
  return Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0");
}

function renderDeadline(state) {
  const room = state.room;
  const deadline = room && room.room.deadline;
  const decided = Boolean(decisionOf(state));
  const time = $("deadline-time");
  time.hidden = !deadline;
  if (deadline) {
    const at = new Date(Date.parse(deadline.at));
    const hhmm = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    setText($("deadline-text"), interpolate(gettext("Deciding at %s, in"), [hhmm]));
    setText(time, clock(secondsUntil(state, deadline.at)));
    if (time.getAttribute("datetime") !== deadline.at) time.setAttribute("datetime", deadline.at);
  } else {
    setText($("deadline-text"), decided ? gettext("Decided.") : gettext("No deadline yet: the host can set one."));
  }
  const host = amHost(state);
  $("deadline-host").hidden = !host;
  $("deadline-off").hidden = !deadline;
  const people = room ? room.participants : [];
  const me = people.find((person) => person.id === state.me.id);
  $("done").setAttribute("aria-pressed", me && me.done ? "true" : "false");
  const done = people.filter((person) => person.done).length;
  setText($("done-count"), interpolate(ngettext("%s of %s done", "%s of %s done", people.length), [done, people.length]));
}

function runoffOf(state) {
  return (state.room && state.room.room.runoff) || null;
}

function renderRunoff(state) {
  const runoff = runoffOf(state);
  $("runoff").hidden = !runoff;
  if (!runoff) return;
  setText($("runoff-items"), runoff.items.join(" vs "));
  setText($("runoff-ends-text"), gettext("Ends in"));
  const time = $("runoff-time");
  setText(time, clock(secondsUntil(state, runoff.ends_at)));
  if (time.getAttribute("datetime") !== runoff.ends_at) time.setAttribute("datetime", runoff.ends_at);
}

function renderReel(state) {
  const reel = $("reel");
  const text = state.spin ? state.spin.shown : state.reel ? state.reel.text : null;
  reel.hidden = text === null;
  reel.classList.toggle("landed", !state.spin && Boolean(state.reel));
  if (text !== null) setText($("reel-text"), text);
}

function renderUndo(state) {
  const bar = $("undo-bar");
  // Focus on the undo button when the bar goes is kept on the page, not dropped to <body>.
  if (!state.removal && !bar.hidden && bar.contains(document.activeElement)) $("item-input").focus();
  bar.hidden = !state.removal;
  if (state.removal) setText($("undo-text"), interpolate(gettext("%s removed."), [state.removal.name]));
}

function renderErrors(state) {
  for (const [id, origin] of [["item-error", "add"], ["name-error", "rename"], ["pick-error", "pick"],
    ["warning-error", "extend"], ["going-error", "going"], ["host-error", "host"],
    ["order-error", "order"], ["bill-error", "bill"], ["paid-error", "paid"], ["announce-error", "announce"],
    ["deadline-error", "deadline"], ["avoid-error", "avoid"]]) {
    const code = state.errors[origin];
    // An announcement is limited per room and minute, not per person and 10 s.
    const text = origin === "announce" && code === "rate_limited"
      ? gettext("The group's chat got it less than a minute ago. Try again in a minute.")
      : code ? errorText(code, state.config) : "";
    setText($(id), text);
  }
}

// --- Screens for rooms we cannot be in -------------------------------------------------------

function renderScreen(state) {
  $("room").hidden = true;
  $("undo-bar").hidden = true;
  $("reel").hidden = true;
  for (const kind of ["full", "gone", "expired", "kicked"]) $("screen-" + kind).hidden = kind !== state.screen;
  document.body.dataset.screen = state.screen;
  if (state.screen !== "expired" || !state.room) return;
  // What was decided, and the list, read-only: the link still tells the story.
  const decision = state.room.room.decision;
  const note = $("screen-expired-decision");
  note.hidden = !decision;
  if (decision) setText(note, interpolate(gettext("You decided on %s."), [decision.item]));
  const rows = state.room.items.map((item) => {
    const row = element("li", "readonly-item");
    row.append(element("span", "item-name", item.name),
      element("span", "item-meta", item.votes == null ? gettext("votes hidden")
        : interpolate(ngettext("%s vote", "%s votes", item.votes), [item.votes])));
    if (item.vetoed_by.length) row.classList.add("vetoed");
    return row;
  });
  $("screen-expired-items").replaceChildren(...rows);
  $("screen-expired-list").hidden = rows.length === 0;
}

// --- One-off effects on the page ---------------------------------------------------------------

/** Carry out a DOM effect that `dispatch` asked for; false if it is not a DOM effect. */
export function applyDomEffect(effect) {
  switch (effect.kind) {
    case "announce":
      // Politely, through one live region; a repeat of the same words is still read.
      $("announcer").textContent = $("announcer").textContent === effect.text ? effect.text + " " : effect.text;
      return true;
    case "name-field":
      if (document.activeElement !== $("name-input")) $("name-input").value = effect.name;
      return true;
    case "avoid-field":
      // Never over what someone is typing.
      if (document.activeElement !== $("avoid-input")) $("avoid-input").value = effect.text;
      return true;
    case "clear-field": {
      // Only what was sent: something typed since stays.
      const field = $(effect.field || "item-input");
      if (field.value.trim() === effect.text.trim()) field.value = "";
      return true;
    }
    case "focus":
      focusTarget(effect);
      return true;
    case "reveal-decision":
      revealDecision();
      return true;
    default:
      return false;
  }
}

function focusTarget(effect) {
  let target = null;
  if (effect.target === "screen") target = document.querySelector("section.screen:not([hidden]) h1");
  else if (effect.target === "undo") target = $("undo");
  else if (effect.target === "confirm") target = $("confirm-no");
  else if (effect.target === "host-menu") target = $("host-menu-summary");
  else if (effect.target === "item") {
    const row = Array.from($("items").children).find((li) => li.dataset.name === effect.name);
    target = row ? row.querySelector("button.remove") : $("item-input");
  } else target = $(effect.target);
  if (target && !target.disabled) target.focus();
}

function revealDecision() {
  const banner = $("decision");
  if (banner.hidden) return;
  // Everyone sees the winner without scrolling; focus follows, unless someone is typing.
  const active = document.activeElement;
  const typing = active && active.matches && active.matches("input:not([type=radio]), textarea") && active.value;
  banner.scrollIntoView({ block: "start", behavior: "auto" });
  if (!typing) banner.focus({ preventScroll: true });
}

// --- Helpers ---------------------------------------------------------------------------------

function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
