"""
Deliver a file to a partner's SFTP server, resuming after interruptions.

The bytes go to ``<remote_path>.part`` on the server; after a dropped connection the retry
continues at the offset the server acknowledged, once it has re-read the last 64 KiB the server kept
and found them equal to the local file. When all bytes are there, the remote size and tail are
checked and the file is renamed into place in one step (``posix-rename@openssh.com``), so the partner
never sees a half-written ``remote_path``. Servers that refuse to set modification times (object
storage gateways) only cause a warning.

Connection: ``sftp_resume_example`` (see ``example_sftp_resume_download``). Params: ``local_path``
and ``remote_path``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_sftp_resume.operators import ResumableSFTPUploadOperator

with DAG(
    dag_id="example_sftp_resume_upload",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "sftp"],
    params={
        "local_path": Param("/tmp/sftp-resume-example/export.parquet", type="string"),
        "remote_path": Param("/incoming/export.parquet", type="string"),
    },
) as dag:
    ResumableSFTPUploadOperator(
        task_id="deliver",
        sftp_conn_id="sftp_resume_example",
        local_path="{{ params.local_path }}",
        remote_path="{{ params.remote_path }}",
        create_intermediate_dirs=True,
        retries=5,
        retry_delay=timedelta(seconds=30),
    )
