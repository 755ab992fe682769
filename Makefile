# The everyday commands. `make run` and `make test` install what they need first.
.PHONY: run test lint format bench

run:
	./scripts/run.sh

test:
	./scripts/test.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format:
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench:
	./scripts/bench.sh
