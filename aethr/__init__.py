"""aethr: run explicit AI coding workflows written in YAML."""

__version__ = "0.2.0"
