# The everyday commands. `make run` and `make test` install what they need first.
.PHONY: run dev test test-fast test-js typecheck migrations-check lint format bench messages lock \
	lock-upgrade lock-check audit

# Serves the office network (all interfaces, DEBUG off) and prints the address to share.
run:
	./scripts/run.sh

# Development: DEBUG on, autoreload, loopback only.
dev:
	./scripts/dev.sh

# Everything, on SQLite then PostgreSQL: browsers, daphne processes, faults (20 to 30 minutes).
test:
	./scripts/test.sh

# The fast tier (docs/testing.md): in-process tests on SQLite, and the page's state module in
# Node.js; no browser, daphne, Redis or second database. Extra pytest arguments: ARGS="-k vote".
test-fast:
	./scripts/test-fast.sh $(ARGS)

# The page's modules in Node.js's test runner (tests/js/).
test-js:
	node --test tests/js/

# mypy with django-stubs ([tool.mypy] in pyproject.toml) on the project's packages present.
TYPED_PACKAGES = $(wildcard lunchsite rooms groups)
typecheck:
	.venv/bin/mypy $(TYPED_PACKAGES)

# Fails when a model changed without its migration (prints what makemigrations would write).
migrations-check:
	DJANGO_DEBUG=1 .venv/bin/python manage.py makemigrations --check --dry-run

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# The bench's table, then office scale (10,000 connections), faults under 5,000 clients, and
# the simulated hosts (root only; skipped with the reason elsewhere). docs/performance.md says
# how to run each alone.
bench:
	./scripts/bench.sh
	./scripts/bench.sh office
	./scripts/bench.sh faults
	./scripts/bench.sh hosts

# After changing a page's or the script's words: refresh and compile the catalogues (docs/i18n.md).
messages:
	./scripts/messages.sh

# The dependency locks (docs/dependencies.md): after editing pyproject.toml; the weekly update;
# whether they match pyproject.toml (CI).
lock:
	./scripts/lock.sh

lock-upgrade:
	./scripts/lock.sh --upgrade

lock-check:
	./scripts/lock.sh --check

# Known vulnerabilities in the locked versions (pip-audit, or what works where it cannot).
audit:
	.venv/bin/python scripts/audit.py
