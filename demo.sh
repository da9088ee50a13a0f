#!/usr/bin/env bash
# Set everything up and show the product: a local SFTP server, the example DAG, one injected
# interruption, Airflow's retry resuming from the kept bytes, and the verified result.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
