"""
Copy one file from SFTP straight into S3 (the deployment suite's scale-out scenario).

Connections (the test creates both through the REST API):

- ``sftp_resume_s3_source``: type **SFTP**, the source server (key inline in the ``private_key``
  extra, so no worker needs a key file on its disk);
- ``s3_resume_target``: type **Amazon Web Services**, the S3 endpoint in the ``endpoint_url`` extra.

Params: ``sftp_path``, ``s3_bucket``, ``s3_key``. A retry comes 5 s after a failure: the test kills
a worker mid-transfer and waits for the retry on the other one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_sftp_resume.transfers.sftp_to_s3 import ResumableSFTPToS3Operator

with DAG(
    dag_id="deployment_sftp_to_s3",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["test", "sftp", "s3"],
    params={
        "sftp_path": Param("/outgoing/dump.bin", type="string"),
        "s3_bucket": Param("landing", type="string"),
        "s3_key": Param("incoming/dump.bin", type="string"),
    },
) as dag:
    ResumableSFTPToS3Operator(
        task_id="copy",
        sftp_conn_id="sftp_resume_s3_source",
        sftp_path="{{ params.sftp_path }}",
        s3_conn_id="s3_resume_target",
        s3_bucket="{{ params.s3_bucket }}",
        s3_key="{{ params.s3_key }}",
        stall_timeout=30,
        retries=2,
        retry_delay=timedelta(seconds=5),
    )
