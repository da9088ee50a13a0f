"""
Copy a partner's file from SFTP straight into S3, resumable from any worker.

The bytes go from the SFTP reader into a multipart upload of ``s3_key``: no local file, so this
works on the KubernetesExecutor or Celery workers without a shared volume. The resume state is a
small object under ``_sftp_resume/`` in the bucket; a retry on another worker, with an empty disk,
checks the kept parts against the source and continues. The object appears only when complete.

Connections:

- ``sftp_resume_example`` (type ``sftp``, see ``example_sftp_resume_download``);
- ``aws_resume_example`` (type ``aws``): credentials as usual; for MinIO or another S3-compatible
  store, ``{"endpoint_url": "http://minio:9000"}`` in its extra.

Params: ``sftp_path``, ``s3_bucket``, ``s3_key``. Requires the ``amazon`` extra.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_sftp_resume.transfers import ResumableSFTPToS3Operator

with DAG(
    dag_id="example_sftp_to_s3",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "sftp", "s3"],
    params={
        "sftp_path": Param("/outgoing/dump.tar.gz", type="string"),
        "s3_bucket": Param("landing", type="string"),
        "s3_key": Param("partner/dump.tar.gz", type="string"),
    },
) as dag:
    ResumableSFTPToS3Operator(
        task_id="copy",
        sftp_conn_id="sftp_resume_example",
        s3_conn_id="aws_resume_example",
        sftp_path="{{ params.sftp_path }}",
        s3_bucket="{{ params.s3_bucket }}",
        s3_key="{{ params.s3_key }}",
        retries=5,
        retry_delay=timedelta(seconds=30),
    )
