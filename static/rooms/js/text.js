// Words the page shows: Django's JavaScript catalogue (gettext), error texts and people's labels.

import { interpolate } from "./korean.js";

// The catalogue script defines these globals; fall back to English if it failed to load.
export const gettext = (text) => (window.gettext ? window.gettext(text) : text);
export const ngettext = (one, many, n) => (window.ngettext ? window.ngettext(one, many, n) : n === 1 ? one : many);
// Not Django's interpolate: ours also puts the right Korean particle after a value
// ("%s을(를)" -> "김치찌개를").
export { interpolate };

/** The sentence shown next to a control for an error code (the server's or the page's own). */
export function errorText(code, config) {
  switch (code) {
    case "empty_item": return gettext("Type an idea first.");
    case "item_too_long": return interpolate(gettext("Use at most %s characters."), [config.maxItemLength]);
    case "duplicate_item": return gettext("That one is already on the list.");
    case "unknown_item": return gettext("That idea is no longer on the list.");
    case "too_many_items": return gettext("The list is full. Remove an idea first.");
    case "invalid_name": return interpolate(gettext("A name is 1 to %s characters."), [config.maxNameLength]);
    case "nothing_to_pick": return gettext("Nothing to pick from: add an idea, lift a veto, or find something everyone can eat.");
    case "invalid_tag": return gettext("A tag is 1 to 12 characters: at most 3 on an idea, and at most 5 things you can't eat.");
    case "rate_limited": return gettext("Easy there! Wait a few seconds and try again.");
    case "message_too_large": return gettext("That is too long.");
    case "server_busy": return gettext("The server is busy. Try again.");
    case "not_connected": return gettext("Not connected. Try again in a moment.");
    case "room_locked": return gettext("The host locked the list: no new ideas for now.");
    case "not_host": return gettext("Only the host can do that.");
    case "unknown_participant": return gettext("That person is no longer here.");
    case "not_decided": return gettext("Pick a place first.");
    case "invalid_order": return interpolate(gettext("An order is 1 to %s characters."), [config.maxOrderLength]);
    case "invalid_amount": return gettext("Type the total in whole numbers, up to 10,000,000.");
    case "no_share": return gettext("You have no share of this bill.");
    case "not_in_group": return gettext("This room belongs to no lunch group.");
    case "invalid_deadline": return gettext("Choose a time from 30 seconds to an hour from now.");
    case "not_in_runoff": return gettext("During the runoff, only the tied ideas can be voted for.");
    case "runoff_in_progress": return gettext("Wait for the runoff to end.");
    case "deadline_missed": return gettext("Time is up, but there was nothing to pick: add an idea or lift a veto.");
    case "too_many_connections": return gettext("Too many open tabs for this room. Close one and try again.");
    default: return gettext("Something went wrong. Try again.");
  }
}

/** An amount as people write it: "13,500원" on a Korean page, "13,500 KRW" otherwise
 * (rooms/summary.py amount_format says the same for the message). */
export function amountText(amount, currency) {
  const digits = String(amount).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const korean = (document.documentElement.lang || "").startsWith("ko");
  return currency === "KRW" && korean ? digits + "원" : digits + " " + currency;
}

/** The comparison form of an item name, close to the server's (case, spaces, NFC). */
export function itemKey(name) {
  return name.normalize("NFC").replace(/\s+/g, " ").trim().toLowerCase();
}

/**
 * Everyone the state names, by id: id -> label. Two people with the same name are told
 * apart by a number in joining order ("Kim", "Kim (2)"). Without ids (an older server)
 * the map is empty and names are shown as they come.
 */
export function peopleLabels(room) {
  const names = new Map();
  if (!room) return names;
  for (const person of room.participants) names.set(person.id, person.name);
  for (const item of room.items) {
    if (item.added_by_id != null && item.added_by) names.set(item.added_by_id, item.added_by);
    (item.voter_ids || []).forEach((id, i) => names.has(id) || names.set(id, item.voters[i]));
    (item.vetoer_ids || []).forEach((id, i) => names.has(id) || names.set(id, item.vetoed_by[i]));
  }
  for (const person of (room.room && room.room.going) || []) names.has(person.id) || names.set(person.id, person.name);
  const byName = new Map();
  for (const id of Array.from(names.keys()).sort((a, b) => a - b)) {
    const name = names.get(id);
    byName.set(name, [...(byName.get(name) || []), id]);
  }
  const labels = new Map();
  for (const [name, ids] of byName) {
    ids.forEach((id, i) => labels.set(id, i === 0 ? name : name + " (" + (i + 1) + ")"));
  }
  return labels;
}

/** The labels of the people behind `ids` (parallel to `names`), or the names themselves. */
export function labelsOf(labels, ids, names) {
  if (!ids) return names.slice();
  return ids.map((id, i) => labels.get(id) || names[i]);
}
