"""`python -m aethr`, and the `aethr` script's entry point."""

import gc


def run() -> None:
    # Start-up (Typer, pydantic, YAML, and in live runs LiteLLM) allocates heavily and frees
    # little: collecting during it is wasted time. This is the first thing aethr does, before
    # importing any of that; `runner` (or the live backend, after its first call) turns the
    # collector back on with start-up's objects frozen.
    gc.disable()
    from aethr.cli import main

    main()


if __name__ == "__main__":
    run()
