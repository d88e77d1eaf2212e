"""Renderings of a review's structured findings for CI: GitHub review comments placed on
the pull request's diff, SARIF for code scanning, and workflow-command annotations.

`findings` holds the schema a reviewing step answers in; `diffmap` reads the unified diff
into the lines GitHub accepts comments on; `review`, `sarif` and `annotations` turn
findings into each format; `outputs` picks one for `--output-format`. Nothing here calls a
GitHub API: the recipe posts what these write.
"""
