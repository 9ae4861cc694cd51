# flowplatform — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: run test test-postgres lint venv migrations-check bench clean serve-prod

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	touch $@

venv: $(VENV)/.installed

## Serve API + WebSockets + admin on 127.0.0.1:8000 with an embedded worker (SQLite).
run: venv
	$(PY) manage.py serve

## The whole suite on SQLite; with DATABASE_URL/REDIS_URL set, on PostgreSQL and Redis too
## (and with MIGRATION_DATABASE_URL, as the application's role under row-level security).
test: venv
	$(PY) manage.py setupdbrole --if-configured
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m pytest $(PYTEST_ARGS)

## Production serving (docs/deploy.md): gunicorn + uvicorn worker processes, graceful
## SIGTERM. Needs DATABASE_URL (PostgreSQL), REDIS_URL, SECRET_KEY, ALLOWED_HOSTS; migrate first.
serve-prod: venv
	VENV=$(VENV) bin/serve-prod

lint: venv
	$(VENV)/bin/ruff check .

clean:
	rm -rf var $(VENV)
