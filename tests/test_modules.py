"""The code's layout holds: public modules, one command table, each refusal named once."""

from __future__ import annotations

import ast
import inspect
import pathlib
import re

from rooms import commands, protocol
from rooms.errors import MESSAGES
from rooms.services.changes import ACTOR_CHECKS

ROOT = pathlib.Path(__file__).resolve().parent.parent

# Private helpers another module borrows: none since groups/ became an app (issue 28).
BORROWED: set[tuple[str, str]] = set()


def _private(name: str) -> bool:
    # `Model._meta` is Django's documented Options API, not a private name of ours.
    return name.startswith("_") and not name.startswith("__") and name != "_meta"


def _underscored_imports(path: pathlib.Path) -> set[tuple[str, str]]:
    """(file, name) for each underscored name the module takes from another module: imported
    by name, or read as an attribute of a module it imported."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    relative = path.relative_to(ROOT).as_posix()
    modules: set[str] = set()
    found: set[tuple[str, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _private(alias.name):
                    found.add((relative, alias.name))
                elif node.level or (node.module or "").startswith(("rooms", "lunchsite")):
                    modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            ours = [a for a in node.names if a.name.startswith(("rooms", "lunchsite"))]
            modules.update((a.asname or a.name).split(".")[0] for a in ours)
    for node in ast.walk(tree):
        read = isinstance(node, ast.Attribute) and _private(node.attr)
        if read and isinstance(node.value, ast.Name) and node.value.id in modules:
            found.add((relative, node.attr))
    return found


def test_no_module_takes_another_s_underscored_name() -> None:
    """What a module keeps private stays in it: no other module imports or reads it."""
    found: set[tuple[str, str]] = set()
    for package in ("rooms", "groups", "lunchsite"):  # groups: once it is an app of its own
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found |= _underscored_imports(path)
    assert found <= BORROWED, sorted(found - BORROWED)


def test_every_action_is_in_the_command_table_with_a_callable() -> None:
    """The protocol's actions and the command table's are the same, each with a callable."""
    assert commands.ACTIONS.keys() == protocol.COMMANDS.keys()
    for action, entry in commands.ACTIONS.items():
        assert callable(entry.service), action
        assert entry.change is None or callable(entry.change), action


def test_every_check_names_an_error_code_the_client_can_be_told() -> None:
    """Each rule of each everyday change refuses with a documented code."""
    sample = {
        "name": "pho",
        "kind": "vote",
        "going": True,
        "locked": True,
        "order": "짬뽕",
        "paid": True,
        "done": True,
        "tags": ["soup"],
    }
    everyday = [entry for entry in commands.ACTIONS.values() if entry.change is not None]
    assert {entry.service.__name__ for entry in everyday} == {
        "item_add",
        "item_remove",
        "item_tag",
        "mark_toggle",
        "participant_avoid",
        "participant_rename",
        "participant_going",
        "participant_done",
        "room_extend",
        "order_set",
        "share_paid",
    }
    for entry in everyday:
        parameters = inspect.signature(entry.change).parameters
        change = entry.change(**{name: sample[name] for name in parameters})
        for check in (*ACTOR_CHECKS, *change.checks):
            assert check.code in MESSAGES, check


def test_each_everyday_refusal_is_written_once() -> None:
    """No service restates an everyday rule in Python: the codes a Check names are raised
    nowhere else under rooms/services/ (the one mapper raises them from the verdict)."""
    codes = {
        "room_locked",
        "duplicate_item",
        "too_many_items",
        "unknown_item",
        "not_in_runoff",
        "runoff_in_progress",
    }
    raised = re.compile(r'ClientError\("(\w+)"')
    for path in (ROOT / "rooms" / "services").glob("*.py"):
        for code in raised.findall(path.read_text(encoding="utf-8")):
            assert code not in codes, (path.name, code)
