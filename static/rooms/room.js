// The room page's client: one WebSocket, the server's state rendered with textContent.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("room-config").textContent);
  let socket = null;
  let version = -1;
  let retry = 0;

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(scheme + "//" + location.host + config.wsPath);
    socket.onopen = () => { retry = 0; setStatus("online"); };
    socket.onmessage = (event) => handleMessage(JSON.parse(event.data));
    socket.onclose = (event) => {
      setStatus("offline");
      if (event.code >= 4400 && event.code < 4500) return;
      retry += 1;
      setTimeout(connect, Math.min(10000, 500 * 2 ** retry));
    };
  }

  function send(command) { if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(command)); }

  function handleMessage(message) {
    if (message.type === "state" && message.version > version) { version = message.version; renderState(message); }
    else if (message.type === "error") document.getElementById("error").textContent = message.message;
    else if (message.type === "picked") document.getElementById("decision").textContent = message.item;
  }

  function setStatus(text) { document.getElementById("status").textContent = text; }

  function renderState(state) {
    const people = document.getElementById("participants");
    people.replaceChildren(...state.participants.map((p) => li(p.name)));
    const items = document.getElementById("items");
    items.replaceChildren(...state.items.map((item) => {
      const row = li(item.name + " (" + item.votes + ")");
      row.append(button("vote", () => send({ action: "vote", item: item.name })));
      row.append(button("veto", () => send({ action: "veto", item: item.name })));
      row.append(button("remove", () => send({ action: "remove", item: item.name })));
      return row;
    }));
    document.getElementById("decision").textContent = state.room.decision ? state.room.decision.item : "";
  }

  function li(text) { const el = document.createElement("li"); el.textContent = text; return el; }
  function button(text, onClick) { const el = document.createElement("button"); el.textContent = text; el.type = "button"; el.addEventListener("click", onClick); return el; }

  document.getElementById("add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("item-input");
    document.getElementById("error").textContent = "";
    send({ action: "add", item: input.value });
    input.value = "";
  });
  document.getElementById("pick").addEventListener("click", () => send({ action: "pick" }));
  connect();
})();
