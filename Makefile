# The everyday commands. `make run` and `make test` install what they need first.
.PHONY: run dev test lint format bench

# Serves the office network (all interfaces, DEBUG off) and prints the address to share.
run:
	./scripts/run.sh

# Development: DEBUG on, autoreload, loopback only.
dev:
	./scripts/dev.sh

test:
	./scripts/test.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

# The bench's table, then the simulated hosts (root only; skipped with the reason elsewhere).
bench:
	./scripts/bench.sh
	./scripts/bench.sh hosts
