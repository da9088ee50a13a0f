#!/usr/bin/env bash
# Run the test suite. Default: everything except the slow suites (README.md gives the count and time it was last measured at).
#   ./run-tests.sh            default suite
#   ./run-tests.sh -m slow    only the slow suites (fault campaigns, deployments)
#   ./run-tests.sh -m ''      everything
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
marker=(-m "not slow")
for arg in "$@"; do
    if [ "$arg" = "-m" ]; then marker=(); fi
done
exec .venv/bin/python -m pytest "${marker[@]}" "$@"
