"""`python -m aethr`, and the `aethr` script's entry point."""

import gc
import os
import signal
import sys


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run() -> None:
    # Start-up (Typer, pydantic, YAML, and in live runs LiteLLM) allocates heavily and frees
    # little: collecting during it is wasted time. This is the first thing aethr does, before
    # importing any of that; `runner` (or the live backend, after its first call) turns the
    # collector back on with start-up's objects frozen.
    gc.disable()
    # SIGTERM is an interrupt like Ctrl-C from the very first line: a signal at any moment,
    # even while the modules below are still importing, exits 130 with one line.
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        from aethr.boundary import main
    except KeyboardInterrupt:
        sys.stderr.write("aethr: interrupted\n")
        sys.stderr.flush()
        os._exit(130)
    main()


if __name__ == "__main__":
    run()
