"""
Download one large file from a partner's SFTP server, resuming after interruptions.

Before running it, create an Airflow connection ``sftp_resume_example`` of type **SFTP**: host,
port, login, and either a password or the ``key_file`` / ``private_key`` extra; pin the server with
the ``host_key`` extra (its public host key, ``ssh-ed25519 AAAA...``). Then trigger the DAG with the
params ``remote_path`` and ``local_path`` (both are templated into the operator).

When the link drops, the try fails with a retriable error, Airflow retries it after ``retry_delay``
(growing exponentially), and the retry continues from the bytes already on disk once it has proved
they still match the remote file.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator
from airflow_provider_sftp_resume.version_compat import exponential_backoff

with DAG(
    dag_id="example_sftp_resume_download",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "sftp"],
    params={
        "remote_path": Param("/outgoing/dump.tar.gz", type="string"),
        "local_path": Param("/tmp/sftp-resume-example/dump.tar.gz", type="string"),
    },
) as dag:
    fetch = ResumableSFTPDownloadOperator(
        task_id="fetch",
        sftp_conn_id="sftp_resume_example",
        remote_path="{{ params.remote_path }}",
        local_path="{{ params.local_path }}",
        create_intermediate_dirs=True,
        stall_timeout=60,
        retries=5,
        retry_delay=timedelta(seconds=30),
        retry_exponential_backoff=exponential_backoff(2.0),  # 2.0 on Airflow 3.2+, True on 2.11
        max_retry_delay=timedelta(minutes=10),
    )
