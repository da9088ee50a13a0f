"""Run one test DAG with dag.test() in a separate process, so a test can SIGKILL it mid-download."""

from __future__ import annotations

import json
import sys

from tests.e2e.test_dag_retries import make_dag
from tests.support.airflow_env import run_dag_test

if __name__ == "__main__":
    dag_id, kwargs = sys.argv[1], json.loads(sys.argv[2])
    run_dag_test(make_dag(dag_id, **kwargs))
