"""
Download a partner's file resumably, then let a downstream DAG run on it as an asset.

``example_sftp_resume_asset_producer`` downloads ``remote_path`` to :data:`LANDING` with
``outlets=[PARTNER_DUMP]``: when the download has been verified and published, Airflow records an
event on the asset, and ``example_sftp_resume_asset_consumer`` (``schedule=[PARTNER_DUMP]``) is
queued to run. The event's ``extra`` carries the file's ``local_path``, ``size`` and ``sha256``;
the consumer checks the file against them before using it.

Create the connection ``sftp_resume_example`` (type **SFTP**) as for
``example_sftp_resume_download``. On Airflow 2.11 the asset is a Dataset (same code, through
``airflow.providers.common.compat``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Asset, Param, task

from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator

LANDING = "/tmp/sftp-resume-example/landing/dump.tar.gz"
PARTNER_DUMP = Asset(f"file://{LANDING}")

with DAG(
    dag_id="example_sftp_resume_asset_producer",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "sftp", "asset"],
    params={"remote_path": Param("/outgoing/dump.tar.gz", type="string")},
) as producer:
    ResumableSFTPDownloadOperator(
        task_id="fetch",
        sftp_conn_id="sftp_resume_example",
        remote_path="{{ params.remote_path }}",
        local_path=LANDING,
        create_intermediate_dirs=True,
        retries=5,
        retry_delay=timedelta(seconds=30),
        outlets=[PARTNER_DUMP],
    )


with DAG(
    dag_id="example_sftp_resume_asset_consumer",
    schedule=[PARTNER_DUMP],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "sftp", "asset"],
) as consumer:

    @task
    def check_landed_file(**context: Any) -> dict[str, Any]:
        """Check the landed file against the producer's event (``triggering_dataset_events`` on 2.11)."""
        events = context.get("triggering_asset_events") or context.get("triggering_dataset_events") or {}
        checked: dict[str, Any] = {}
        for asset_events in events.values():
            for event in asset_events:
                path = event.extra["local_path"]
                with open(path, "rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
                if digest != event.extra["sha256"]:
                    raise ValueError(f"{path} changed since it was downloaded")
                checked[path] = digest
        return checked

    check_landed_file()
