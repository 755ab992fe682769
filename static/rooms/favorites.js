// "Our usual places" on a group's room page (issue 10): the group's favourites as one-tap adds.
// It only fills and submits the page's own add form, so the room's socket code stays the one
// place that sends; and it hides the places already on the list.
(function () {
  "use strict";

  const data = document.getElementById("group-favorites");
  const box = document.getElementById("favorites-box");
  const list = document.getElementById("favorite-list");
  const form = document.getElementById("add-form");
  const input = document.getElementById("item-input");
  if (!data || !box || !list || !form || !input) return;
  const favorites = JSON.parse(data.textContent);
  if (!Array.isArray(favorites) || favorites.length === 0) return;

  // Close to the server's folding (rooms/text.py item_key): enough to hide a chip.
  const fold = (name) => name.normalize("NFC").replace(/\s+/g, " ").trim().toLowerCase();

  function addFavorite(name) {
    input.value = name;
    // Safari has requestSubmit from 16 on, and iPhones left on iOS 15 are many: there, a
    // submit event, which the page's own handler (room.js addIdea) takes the same way.
    if (form.requestSubmit) form.requestSubmit();
    else form.dispatchEvent(new Event("submit", { cancelable: true }));
  }

  function renderFavorites() {
    const listed = new Set(
      Array.from(document.querySelectorAll("#items .item-name"), (node) => fold(node.textContent))
    );
    list.replaceChildren();
    for (const name of favorites) {
      if (listed.has(fold(name))) continue;
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "chip favorite-add";
      button.textContent = "+ " + name;
      button.setAttribute("aria-label", interpolate(gettext("Add %s"), [name]));
      button.addEventListener("click", () => addFavorite(name));
      item.append(button);
      list.append(item);
    }
    box.hidden = list.childElementCount === 0;
  }

  const items = document.getElementById("items");
  if (items) new MutationObserver(renderFavorites).observe(items, { childList: true, subtree: true, characterData: true });
  renderFavorites();
})();
