// The room page's client: one WebSocket, the server's state rendered with textContent only.
// Named functions: connect (socket + reconnect), handleMessage (events in), renderState (DOM).
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("room-config").textContent);
  // The Django JavaScriptCatalog defines these; fall back to English if it failed to load.
  const gettext = window.gettext || ((text) => text);
  const interpolate = window.interpolate || ((fmt, args) => fmt.replace(/%s/g, () => String(args.shift())));
  const ngettext = window.ngettext || ((one, many, n) => (n === 1 ? one : many));

  const NAME_KEY = "lunchsite.name";
  const RECONNECT_BASE_MS = 500;
  const RECONNECT_MAX_MS = 8000;
  const WARN_SECONDS = 60;
  const REEL_LINGER_MS = 1500;
  const CONNECT_TIMEOUT_MS = 10000;
  const CLOSE_SCREENS = { 4403: "full", 4404: "gone", 4410: "expired" };
  const ERROR_SCREENS = { room_full: "full", room_not_found: "gone", room_expired: "expired" };
  const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

  const $ = (id) => document.getElementById(id);

  let socket = null;
  let version = -1;
  let attempts = 0;
  let reconnectTimer = null;
  let finished = false;
  let me = { id: null, name: "" };
  let lastState = null;
  let lastAction = "add";
  let expiresAt = Date.parse(config.expiresAt);
  // Server time minus page time: countdowns agree even when a phone's clock is off.
  const clockOffset = Date.parse(config.serverNow) - Date.now();
  let spin = null; // {timer} while the pick animation runs
  let reelTimer = null;
  let sentName = "";

  // --- Messages shown to people --------------------------------------------------

  function errorText(code) {
    switch (code) {
      case "empty_item": return gettext("Type an idea first.");
      case "item_too_long": return interpolate(gettext("Use at most %s characters."), [config.maxItemLength]);
      case "duplicate_item": return gettext("That one is already on the list.");
      case "unknown_item": return gettext("That idea is no longer on the list.");
      case "too_many_items": return gettext("The list is full. Remove an idea first.");
      case "invalid_name": return interpolate(gettext("A name is 1 to %s characters."), [config.maxNameLength]);
      case "nothing_to_pick": return gettext("Nothing to pick from: add an idea or lift a veto.");
      case "rate_limited": return gettext("Easy there! Wait a few seconds and try again.");
      case "message_too_large": return gettext("That is too long.");
      case "server_busy": return gettext("The server is busy. Try again.");
      default: return gettext("Something went wrong. Try again.");
    }
  }

  function announce(text) {
    $("announcer").textContent = text;
  }

  // --- Connection ----------------------------------------------------------------

  function connect() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (finished) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const name = storedName() || $("name-input").value;
    const url = scheme + "//" + location.host + config.wsPath + "?name=" + encodeURIComponent(name);
    setConnection("connecting", gettext("Connecting…"));
    const ws = new WebSocket(url);
    socket = ws;
    // A handshake that hangs (a dead Wi-Fi) is given up on, which schedules the next try.
    const openTimer = setTimeout(() => ws.close(), CONNECT_TIMEOUT_MS);
    ws.addEventListener("open", () => {
      clearTimeout(openTimer);
      if (ws !== socket) return;
      attempts = 0;
      setConnection("online", gettext("Connected"));
    });
    ws.addEventListener("message", (event) => {
      if (ws !== socket) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      handleMessage(message);
    });
    ws.addEventListener("close", (event) => {
      clearTimeout(openTimer);
      if (ws !== socket) return;
      socket = null;
      if (CLOSE_SCREENS[event.code]) {
        showScreen(CLOSE_SCREENS[event.code]);
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (finished || reconnectTimer) return;
    // Exponential backoff with jitter, so ten phones do not knock at the same instant.
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** attempts);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    attempts += 1;
    setConnection("offline", interpolate(gettext("Offline. Reconnecting in %s s…"), [Math.max(1, Math.round(delay / 1000))]));
    reconnectTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (finished || socket) return;
    attempts = 0;
    connect();
  }

  function send(command) {
    lastAction = command.action;
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(command));
      return true;
    }
    showError(command.action, gettext("Not connected. Try again in a moment."));
    return false;
  }

  function setConnection(status, text) {
    const box = $("connection");
    box.dataset.status = status;
    $("connection-text").textContent = text;
  }

  // --- Events from the server ----------------------------------------------------

  function handleMessage(message) {
    switch (message.type) {
      case "welcome":
        me = message.you;
        rememberName(me.name);
        if (document.activeElement !== $("name-input")) $("name-input").value = me.name;
        break;
      case "state":
        // Never step back: a late copy of an older state is dropped.
        if (typeof message.version === "number" && message.version > version) {
          version = message.version;
          renderState(message);
        }
        break;
      case "picked":
        playSpin(message.item, message.by);
        break;
      case "error":
        if (ERROR_SCREENS[message.code]) {
          showScreen(ERROR_SCREENS[message.code]);
        } else {
          showError(lastAction, errorText(message.code));
        }
        break;
      default:
        break;
    }
  }

  function showError(action, text) {
    const target = action === "rename" ? "name-error" : action === "pick" ? "pick-error" : "item-error";
    for (const id of ["name-error", "pick-error", "item-error"]) {
      $(id).textContent = id === target ? text : "";
    }
  }

  function clearErrors() {
    for (const id of ["name-error", "pick-error", "item-error"]) $(id).textContent = "";
  }

  // --- Rendering -----------------------------------------------------------------

  function renderState(state) {
    announceChanges(lastState, state);
    lastState = state;
    const self = state.participants.find((person) => person.id === me.id);
    if (self && self.name !== me.name) {
      // Renamed here or in another tab of this browser (the same participant).
      me.name = self.name;
      if (document.activeElement !== $("name-input")) $("name-input").value = me.name;
    }
    expiresAt = Date.parse(state.room.expires_at);
    tick();
    renderParticipants(state.participants);
    renderItems(state);
    if (!spin) renderDecision(state.room.decision);
  }

  function renderParticipants(participants) {
    $("people-count").textContent = participants.length + "/" + config.maxParticipants;
    const chips = participants.map((person) => {
      const chip = document.createElement("li");
      chip.className = "chip";
      chip.textContent = person.name;
      if (person.id === me.id) {
        chip.classList.add("me");
        const tag = document.createElement("span");
        tag.className = "chip-tag";
        tag.textContent = gettext("you");
        chip.append(" ", tag);
      }
      return chip;
    });
    $("participants").replaceChildren(...chips);
  }

  function renderItems(state) {
    const list = $("items");
    const most = Math.max(1, state.participants.length, ...state.items.map((item) => item.votes));
    const decided = state.room.decision && !spin ? state.room.decision.item : null;
    // Rows are kept and updated in place, keyed by name: a tap that lands while another
    // person's change arrives still hits the same button (and keyboard focus stays put).
    const existing = new Map(Array.from(list.children, (row) => [row.dataset.name, row]));
    const rows = state.items.map((item) => {
      const row = existing.get(item.name) || itemRow(item.name);
      existing.delete(item.name);
      updateRow(row, item, most, decided);
      return row;
    });
    existing.forEach((row) => row.remove());
    rows.forEach((row, index) => {
      if (list.children[index] !== row) list.insertBefore(row, list.children[index] || null);
    });
    $("items-empty").hidden = state.items.length > 0;
    $("items-count").textContent = state.items.length ? String(state.items.length) : "";
  }

  function itemRow(itemName) {
    const row = document.createElement("li");
    row.className = "item";
    row.dataset.name = itemName;
    const head = element("div", "item-head");
    head.append(element("span", "item-name", itemName), element("span", "item-meta"));
    const bar = element("div", "bar");
    bar.setAttribute("aria-hidden", "true");
    bar.append(element("span", "bar-fill"));
    const actions = element("div", "item-actions");
    actions.append(actionButton("vote", itemName), actionButton("veto", itemName), actionButton("remove", itemName));
    row.append(head, actions, bar, element("div", "item-marks"));
    return row;
  }

  function updateRow(row, item, most, decided) {
    const vetoed = item.vetoed_by.length > 0;
    row.classList.toggle("vetoed", vetoed);
    row.classList.toggle("winner", decided === item.name);
    row.querySelector(".item-meta").textContent = item.added_by
      ? interpolate(gettext("added by %s"), [item.added_by]) : "";
    // CSSOM, not a style attribute: allowed by our Content-Security-Policy.
    row.querySelector(".bar-fill").style.width = Math.round((100 * item.votes) / most) + "%";

    const marks = [];
    if (item.voters.length) marks.push(element("span", "voters", "👍 " + item.voters.join(", ")));
    if (vetoed) {
      marks.push(element("span", "vetoes", "✋ " + interpolate(gettext("vetoed by %s"), [item.vetoed_by.join(", ")])));
    }
    row.querySelector(".item-marks").replaceChildren(...marks);

    setButton(row.querySelector("button.vote"), "👍 " + String(item.votes),
      interpolate(ngettext("Vote for %s (%s vote)", "Vote for %s (%s votes)", item.votes), [item.name, item.votes]),
      item.voters.includes(me.name));
    setButton(row.querySelector("button.veto"), "✋", interpolate(gettext("Veto %s"), [item.name]),
      item.vetoed_by.includes(me.name));
    setButton(row.querySelector("button.remove"), "✕", interpolate(gettext("Remove %s"), [item.name]), null);
  }

  function setButton(button, text, label, pressed) {
    if (button.textContent !== text) button.textContent = text;
    button.title = label;
    button.setAttribute("aria-label", label);
    if (pressed !== null) button.setAttribute("aria-pressed", pressed ? "true" : "false");
  }

  function actionButton(action, itemName) {
    const button = element("button", "icon-button " + action);
    button.type = "button";
    button.dataset.action = action;
    button.addEventListener("click", () => {
      clearErrors();
      send({ action: action, item: itemName });
    });
    return button;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderDecision(decision) {
    const banner = $("decision");
    if (!decision) {
      banner.hidden = true;
      return;
    }
    $("decision-item").textContent = decision.item;
    $("decision-by").textContent = decision.by ? interpolate(gettext("picked by %s"), [decision.by]) : "";
    banner.hidden = false;
  }

  function announceChanges(before, after) {
    if (!before) return;
    const had = new Set(before.items.map((item) => item.name));
    const has = new Set(after.items.map((item) => item.name));
    const added = after.items.filter((item) => !had.has(item.name));
    const removed = before.items.filter((item) => !has.has(item.name));
    const parts = [];
    for (const item of added) parts.push(interpolate(gettext("%s was added."), [item.name]));
    for (const item of removed) parts.push(interpolate(gettext("%s was removed."), [item.name]));
    if (parts.length) announce(parts.join(" "));
  }

  // --- Pick animation --------------------------------------------------------------

  function playSpin(winner, by) {
    if (spin) clearTimeout(spin.timer);
    clearTimeout(reelTimer);
    const names = lastState ? lastState.items.filter((item) => !item.vetoed_by.length).map((item) => item.name) : [];
    if (!names.includes(winner)) names.push(winner);
    const reel = $("reel");
    const text = $("reel-text");
    reel.hidden = false;
    reel.classList.remove("landed");
    $("decision").hidden = true;
    $("pick-error").textContent = "";
    $("pick").disabled = true;
    spin = { timer: null };
    const finish = () => {
      text.textContent = winner;
      reel.classList.add("landed");
      spin = null;
      $("pick").disabled = false;
      // The banner takes over; the landed reel stays a moment so the eye can follow.
      reelTimer = setTimeout(() => { reel.hidden = true; }, REEL_LINGER_MS);
      const known = lastState && lastState.room.decision;
      const decision = known && known.item === winner ? known : { item: winner, by: by };
      renderDecision(decision);
      if (lastState) renderItems(lastState);
      announce(interpolate(gettext("We're eating %s!"), [winner]));
    };
    if (reducedMotion.matches) {
      spin.timer = setTimeout(finish, 200);
      return;
    }
    // Every page has the same items in the same order, so each plays the same sequence,
    // slowing down until it stops on the server's choice.
    const loops = Math.max(2, Math.ceil(14 / names.length));
    const steps = loops * names.length + names.indexOf(winner) + 1;
    let step = 0;
    const advance = () => {
      text.textContent = names[step % names.length];
      step += 1;
      if (step >= steps) {
        finish();
        return;
      }
      const progress = step / steps;
      spin.timer = setTimeout(advance, 45 + 260 * progress * progress);
    };
    advance();
  }

  // --- Time --------------------------------------------------------------------------

  function tick() {
    if (finished) return;
    const remaining = Math.max(0, Math.round((expiresAt - (Date.now() + clockOffset)) / 1000));
    const minutes = Math.floor(remaining / 60);
    const seconds = String(remaining % 60).padStart(2, "0");
    $("countdown-time").textContent = minutes + ":" + seconds;
    $("countdown-time").setAttribute("datetime", new Date(expiresAt).toISOString());
    const warn = remaining <= WARN_SECONDS;
    $("countdown").dataset.level = warn ? "warn" : "ok";
    $("warning").hidden = !warn;
  }

  // --- Screens for rooms we cannot be in ------------------------------------------------

  function showScreen(kind) {
    if (finished) return;
    finished = true;
    clearTimeout(reconnectTimer);
    if (spin) clearTimeout(spin.timer);
    if (socket) socket.close(1000);
    socket = null;
    $("room").hidden = true;
    if (kind === "expired" && lastState && lastState.room.decision) {
      const note = $("screen-expired-decision");
      note.textContent = interpolate(gettext("You decided on %s."), [lastState.room.decision.item]);
      note.hidden = false;
    }
    const screen = $("screen-" + kind);
    screen.hidden = false;
    document.body.dataset.screen = kind;
    screen.querySelector("h1").focus();
  }

  // --- Nickname ------------------------------------------------------------------------

  function storedName() {
    try {
      return localStorage.getItem(NAME_KEY) || "";
    } catch (error) {
      return "";
    }
  }

  function rememberName(name) {
    try {
      localStorage.setItem(NAME_KEY, name);
    } catch (error) {
      // Private mode: the name lives as long as the page.
    }
  }

  function saveName(event) {
    if (event) event.preventDefault();
    const input = $("name-input");
    const name = input.value.replace(/\s+/g, " ").trim();
    if (!name || name.length > config.maxNameLength) {
      showError("rename", errorText("invalid_name"));
      return;
    }
    $("name-error").textContent = "";
    input.value = name;
    rememberName(name);
    // Enter fires both submit and change: send each new name once.
    if (name !== me.name && name !== sentName) {
      sentName = name;
      send({ action: "rename", name: name });
    }
  }

  // --- Sharing -----------------------------------------------------------------------------

  function copyText(text, statusId, done) {
    const status = $(statusId);
    const fallback = () => {
      // Plain-http pages (a laptop on the office LAN) have no async clipboard.
      const field = $("share-link");
      const previous = field.value;
      field.value = text;
      field.select();
      let ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (error) {
        ok = false;
      }
      field.value = previous;
      status.textContent = ok ? done : gettext("Select the link and copy it.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(() => { status.textContent = done; }, fallback);
    } else {
      fallback();
    }
  }

  function share(data, statusId, copyFallbackText) {
    if (navigator.share) {
      navigator.share(data).catch(() => {});
    } else {
      copyText(copyFallbackText, statusId, gettext("Copied. Paste it in your group chat."));
    }
  }

  // --- Wiring ---------------------------------------------------------------------------------

  function start() {
    $("name-input").value = storedName() || config.suggestedName;
    rememberName($("name-input").value);

    $("add-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = $("item-input");
      const value = input.value.trim();
      if (!value) {
        showError("add", errorText("empty_item"));
        input.focus();
        return;
      }
      clearErrors();
      if (send({ action: "add", item: value })) input.value = "";
      input.focus();
    });
    $("name-form").addEventListener("submit", saveName);
    $("name-input").addEventListener("change", () => saveName(null));
    $("pick").addEventListener("click", () => {
      clearErrors();
      const mode = document.querySelector('input[name="mode"]:checked');
      send({ action: "pick", mode: mode ? mode.value : "top" });
    });
    $("extend").addEventListener("click", () => send({ action: "extend" }));
    $("copy-link").addEventListener("click", () => copyText(config.roomUrl, "copy-status", gettext("Link copied.")));
    if (navigator.share) {
      $("share-link-button").hidden = false;
      $("share-link-button").addEventListener("click", () =>
        share({ title: document.title, text: gettext("Help us pick lunch!"), url: config.roomUrl }, "copy-status", config.roomUrl));
    }
    $("share-decision").addEventListener("click", () => {
      const item = $("decision-item").textContent;
      const text = interpolate(gettext("We're eating %s!"), [item]);
      share({ title: document.title, text: text, url: config.roomUrl }, "decision-status", text + " " + config.roomUrl);
    });
    $("share-link").addEventListener("focus", (event) => event.target.select());

    // Back online or back to the tab: do not wait for the backoff timer.
    window.addEventListener("online", reconnectNow);
    window.addEventListener("offline", () => {
      // The socket may take minutes to notice; start over as soon as the network is back.
      if (socket) socket.close();
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") reconnectNow();
    });
    setInterval(tick, 1000);
    tick();
    connect();
  }

  start();
})();
