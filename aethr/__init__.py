"""aethr: run explicit AI coding workflows written in YAML."""

__version__ = "0.2.0"
CONFIG_NAME = ".aethr.yaml"  # the workflow file: the only file aethr creates in a project
