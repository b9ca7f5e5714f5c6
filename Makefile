# The two commands a newcomer runs on a fresh machine (see README.md):
#   make demo   set up, then train -> convert -> recognize -> benchmark on the bundled sample (offline, CPU)
#   make test   set up, then run the test suite (without the slow tests: make test-slow)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   := runs/demo
FONTS  := fonts-bwht fonts-dkg-handwriting fonts-breip fonts-femkeklaver fonts-humor-sans
WEB    := deploy/web

.PHONY: demo test test-slow setup system-deps clean pretrained ship verifier benchmarks benchmarks-doc

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

# For the tests: handwriting fonts (generated camera scenes), Chromium (the web app in a real browser),
# Xvfb (the camera window on a virtual display), libusb (tflite-support, which reads the TFLite
# metadata back, loads libusb-1.0.so.0) and Fashion-MNIST (the data tests; the verifier's negatives),
# from Debian/Ubuntu packages (needs root or sudo).
system-deps: $(WEB)/node_modules/.package-lock.json
	@missing=""; ls /usr/share/fonts/opentype/bwht/*.otf >/dev/null 2>&1 || missing="$(FONTS)"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v xvfb-run >/dev/null || missing="$$missing xvfb"; \
	ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0 ' || missing="$$missing libusb-1.0-0"; \
	ls /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz >/dev/null 2>&1 || missing="$$missing dataset-fashion-mnist"; \
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
	$(BIN)/python -m pytest -m "not slow"

# The slow tests only (CI runs them after `make test`); `$(BIN)/python -m pytest` runs both at once.
test-slow: setup system-deps
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache

# Train both models with their recipes on full MNIST, then ship them (convert to every format, checked on
# the validation split). On a GPU a few minutes; on 2 CPU cores hours for 'standard' alone.
# The shipped models came from a sweep on one GPU instead, chosen on validation: docs/training.md.
MNIST ?= ../shared/data/mnist
PHOTOS ?= ../shared/data/photos
pretrained: setup
	for m in standard tiny; do \
	  $(BIN)/edgedigits train --model $$m --data $(MNIST) --out runs/train/$$m-full || exit 1; \
	  $(MAKE) --no-print-directory ship MODEL=$$m || exit 1; \
	done

RUN ?= runs/train/$(MODEL)-full
ship:
	mkdir -p train/pretrained/$(MODEL)
	for f in model.keras config.json model_card.md metrics.json curves.png confusion.png; do \
	  cp $(RUN)/$$f train/pretrained/$(MODEL)/$$f; done
	rm -rf deploy/models/$(MODEL)
	$(BIN)/edgedigits convert train/pretrained/$(MODEL)/model.keras --out deploy/models/$(MODEL) --data $(MNIST)

# The digit verifier of the camera pipeline (train/verifier.py): generated data, trained on the CPU in about
# 15 minutes on 2 cores, epoch chosen on the validation split; its files shipped in deploy/models/verifier.
verifier: setup system-deps
	$(BIN)/python -m edgedigits.train.verifier --data $(MNIST) --out runs/verifier
	mkdir -p deploy/models/verifier
	cp runs/verifier/verifier.fp32.tflite runs/verifier/verifier.fp32.onnx runs/verifier/verifier.json deploy/models/verifier/

# The figures in docs/benchmarks.md and the README (about 5 minutes on 2 cores; needs full MNIST and the
# real photos of ../shared/data/photos).
benchmarks: setup
	for m in standard tiny; do \
	  $(BIN)/edgedigits benchmark deploy/models/$$m --data $(MNIST) --runs 1000 --json docs/benchmark-$$m.json \
	    --markdown docs/benchmark-$$m.md --plot docs/benchmark-$$m.png || exit 1; done
	$(BIN)/edgedigits benchmark camera --codec IYUV --json docs/benchmark-camera.json > docs/benchmark-camera.txt
	$(BIN)/edgedigits benchmark camera --codec MJPG --json docs/benchmark-camera-mjpg.json >> docs/benchmark-camera.txt
	$(BIN)/edgedigits benchmark web --json docs/benchmark-web.json > docs/benchmark-web.txt
	for d in single multi pages nodigits; do \
	  $(BIN)/edgedigits benchmark photos $(PHOTOS)/$$d --json docs/benchmark-photos-$$d.json \
	    --markdown docs/benchmark-photos-$$d.md --plot docs/benchmark-photos-$$d.png > /dev/null || exit 1; done
	$(MAKE) --no-print-directory benchmarks-doc

# docs/benchmarks.md from the reports above (each names its machine and CPU; rerun one part, then this).
benchmarks-doc:
	{ echo "# Benchmarks"; echo; echo "Generated by \`make benchmarks\` on the development machine (2 CPU cores, no GPU;"; \
	  echo "each part names the CPU it ran on: these shared machines differ)."; \
	  echo "Latency is batch 1 through the deploy runners, one thread, each row in a fresh process; accuracy on"; \
	  echo "the full MNIST test set. Ratios are to Keras \`predict_on_batch\` measured in the same run."; echo; \
	  echo "## standard"; echo; cat docs/benchmark-standard.md; echo; echo "![standard](benchmark-standard.png)"; echo; \
	  echo "## tiny"; echo; cat docs/benchmark-tiny.md; echo; echo "![tiny](benchmark-tiny.png)"; echo; \
	  echo "## Camera pipeline (\`edgedigits benchmark camera\`)"; echo; echo '```'; cat docs/benchmark-camera.txt; echo '```'; echo; \
	  echo "## Web app in headless Chromium (\`edgedigits benchmark web\`)"; echo; echo '```'; cat docs/benchmark-web.txt; echo '```'; \
	  for d in single multi pages nodigits; do echo; echo "## Real photos: $$d (\`edgedigits benchmark photos\`)"; echo; \
	    cat docs/benchmark-photos-$$d.md; echo; echo "![confusion, $$d](benchmark-photos-$$d.png)"; done; \
	} > docs/benchmarks.md
