#!/usr/bin/env bash
# Set everything up and show the product: a local SFTP server, the example DAG, one injected
# interruption, Airflow's retry resuming from the kept bytes, and the verified result.
# Installs only what the demo needs (scripts/bootstrap.sh --demo: the package and its dependencies,
# OpenSSH's sshd); ./run-tests.sh later adds the test tools to the same ./.venv.
#   SFTP_RESUME_DEMO_VENV=/tmp/demo-venv ./demo.sh    use another venv (created if missing)
set -euo pipefail
cd "$(dirname "$0")"
venv=${SFTP_RESUME_DEMO_VENV:-.venv}
bash scripts/bootstrap.sh --demo --venv "$venv"
exec "$venv/bin/python" scripts/demo.py "$@"
