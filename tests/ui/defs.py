"""Definitions the UI tests run."""

from __future__ import annotations

from pathlib import Path

FORMY = """
name: formy
version: 1
description: Every kind of input.
inputs:
  who: {type: string, required: true, description: Who to greet}
  times: {type: integer, default: 2}
  mode: {type: string, enum: [fast, slow], default: slow}
  loud: {type: boolean, default: false}
  extra: {type: object}
tasks:
  - name: greet
    kind: shell
    command:
      - python3
      - -c
      - "import sys; print('hello', sys.argv[1], sys.argv[2])"
      - "{{ inputs.who }}"
      - "{{ inputs.mode }}"
  - name: after
    kind: log
    message: "done with {{ inputs.times }}"
"""

# Prints a numbered line every 0.3 s for ``lines`` lines: for watching logs stream.
TICKER = """
name: ticker
version: 1
inputs:
  lines: {type: integer, default: 12}
tasks:
  - name: tick
    kind: shell
    command:
      - python3
      - -u
      - -c
      - |
        import sys, time
        for i in range(int(sys.argv[1])):
            print('tick', i, flush=True)
            time.sleep(0.3)
      - "{{ inputs.lines }}"
"""

# Fails unless the marker file exists: a retry after creating it succeeds.
FLAKY = """
name: flaky
version: 1
inputs:
  marker: {type: string, required: true}
tasks:
  - name: first
    kind: noop
  - name: check
    kind: shell
    command:
      - python3
      - -c
      - |
        import os, sys
        print('looking for', sys.argv[1])
        sys.exit(0 if os.path.exists(sys.argv[1]) else 3)
      - "{{ inputs.marker }}"
  - name: last
    kind: log
    message: "found it"
"""

# A task on a queue no worker serves: it stays queued (queue depths, pause/unpause).
STUCK = """
name: stuck
version: 1
tasks:
  - name: root
    kind: noop
  - name: waiting
    kind: noop
    queue: nowhere
  - name: later
    kind: noop
"""

# A wider graph for the screenshots.
FANOUT = """
name: nightly-report
version: 1
description: Fetch, transform and publish the nightly numbers.
inputs:
  day: {type: string, default: "2025-01-31"}
layers:
  - {name: gather, priority: 0}
  - {name: build, priority: 10}
  - {name: ship, priority: 20}
tasks:
  - {name: fetch-orders, kind: sleep, seconds: 0.6, depends_on: [], layer: gather}
  - {name: fetch-users, kind: sleep, seconds: 0.9, depends_on: [], layer: gather}
  - {name: fetch-prices, kind: sleep, seconds: 0.4, depends_on: [], layer: gather}
  - {name: join, kind: noop, depends_on: [fetch-orders, fetch-users], layer: build}
  - {name: price, kind: sleep, seconds: 0.5, depends_on: [join, fetch-prices], layer: build}
  - name: check
    kind: shell
    command: ["python3", "-c", "print('rows ok'); print('{\\"rows\\": 1200}')"]
    depends_on: [join]
    layer: build
  - {name: report, kind: log, message: "report for {{ inputs.day }}", depends_on: [price, check],
     layer: ship}
  - {name: publish, kind: sleep, seconds: 0.3, depends_on: [report], layer: ship}
"""

ALL = {
    "formy": FORMY,
    "ticker": TICKER,
    "flaky": FLAKY,
    "stuck": STUCK,
    "nightly-report": FANOUT,
}


def write_definitions(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in ALL.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder
