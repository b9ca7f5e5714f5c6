# The two commands a newcomer runs on a fresh machine (see README.md):
#   make demo   set up, then train -> convert -> recognize -> benchmark on the bundled sample (offline, CPU)
#   make test   set up, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   := runs/demo
FONTS  := fonts-bwht fonts-dkg-handwriting fonts-breip fonts-femkeklaver fonts-humor-sans
WEB    := deploy/web

.PHONY: demo test setup system-deps clean pretrained ship

$(BIN)/edgedigits: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

# The web app's runtime, pinned by the lockfile (needs Node.js and npm).
$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	@if command -v npm >/dev/null; then cd $(WEB) && npm ci --ignore-scripts --no-audit --no-fund; \
	else echo "note: the web app tests need Node.js and npm"; fi

setup: $(BIN)/edgedigits

# For the tests: handwriting fonts (generated camera scenes) and Chromium (the web app in a real
# browser), from Debian/Ubuntu packages (needs root or sudo).
system-deps: $(WEB)/node_modules/.package-lock.json
	@missing=""; ls /usr/share/fonts/opentype/bwht/*.otf >/dev/null 2>&1 || missing="$(FONTS)"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) >/dev/null; \
	  else echo "note: for every test, install: sudo apt-get install $$missing"; fi; \
	fi

demo: setup
	$(BIN)/edgedigits train --data sample --out $(DEMO)/train-$$(date +%Y%m%d-%H%M%S)
	@ls -d $(DEMO)/train-* | tail -1 > $(DEMO)/.last
	$(BIN)/edgedigits convert $$(cat $(DEMO)/.last)/model.keras --out $(DEMO)/converted --data sample --tolerance 1.0
	$(BIN)/edgedigits deploy --manifest $(DEMO)/converted --source docs/example.jpg --headless --save $(DEMO)/annotated
	$(BIN)/edgedigits benchmark $(DEMO)/converted --data sample --runs 200 --plot $(DEMO)/benchmark.png
	@echo "run folder: $$(cat $(DEMO)/.last)   converted: $(DEMO)/converted   annotated: $(DEMO)/annotated"

test: setup system-deps
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache

# How the shipped pretrained models were made: full MNIST, 30 epochs (about 40 min on 2 CPU cores
# for 'standard'), then converted to every format and checked on the validation split.
MNIST ?= ../shared/data/mnist
pretrained: setup
	for m in standard tiny; do \
	  $(BIN)/edgedigits train --model $$m --data $(MNIST) --out runs/train/$$m-full || exit 1; \
	  $(MAKE) --no-print-directory ship MODEL=$$m || exit 1; \
	done

ship:
	mkdir -p train/pretrained/$(MODEL)
	for f in model.keras model_card.md metrics.json curves.png confusion.png; do \
	  cp runs/train/$(MODEL)-full/$$f train/pretrained/$(MODEL)/$$f; done
	rm -rf deploy/models/$(MODEL)
	$(BIN)/edgedigits convert train/pretrained/$(MODEL)/model.keras --out deploy/models/$(MODEL) --data $(MNIST)
