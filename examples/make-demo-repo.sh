#!/usr/bin/env bash
# Make a small scratch git repository with an uncommitted change, for `make demo`.
set -euo pipefail
dir="$1"
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
git init --quiet
git config user.email demo@example.invalid
git config user.name "aethr demo"
cat > greet.py <<'PY'
import sys


def greet(name: str) -> str:
    return f"Hello, {name}!"


if __name__ == "__main__":
    print(greet(sys.argv[1] if len(sys.argv) > 1 else "world"))
PY
printf '# greet\n\nPrints a greeting: `python greet.py NAME`.\n' > README.md
git add greet.py README.md
git commit --quiet -m "A tiny greeting script"
# The uncommitted change the workflow will see in git_diff:
sed -i 's/Hello, {name}!/Hello, {name}! Welcome./' greet.py
echo "Made the demo repository $dir (one commit, one uncommitted change)."
