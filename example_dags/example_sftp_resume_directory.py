"""
Mirror a partner's drop directory: wait until they stopped writing, download, then archive remotely.

1. ``SFTPFileStableSensor`` waits (deferred: no worker slot held) until every file matching the glob
   has kept its size and mtime for ``quiet_period`` seconds: the partner has finished writing.
2. ``ResumableSFTPDirectoryDownloadOperator`` downloads the matches, four at a time, each file
   resumable on its own. After a dropped connection the task fails once every other file has
   finished; the retry skips the complete files and resumes the rest.
3. Each remote file is moved into ``archive_dir`` on the server right after its local copy is
   complete and verified (``post_action="move"``; ``"delete"`` removes it instead). A file that
   failed stays where it was, so nothing is lost.

Connection: ``sftp_resume_example`` (see ``example_sftp_resume_download``). Params: ``remote_glob``,
``local_dir`` and ``archive_dir``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_sftp_resume.operators import ResumableSFTPDirectoryDownloadOperator
from airflow_provider_sftp_resume.sensors import SFTPFileStableSensor

with DAG(
    dag_id="example_sftp_resume_directory",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "sftp"],
    params={
        "remote_glob": Param("/outgoing/*.csv", type="string"),
        "local_dir": Param("/tmp/sftp-resume-example/mirror", type="string"),
        "archive_dir": Param("/outgoing/archive", type="string"),
    },
) as dag:
    wait = SFTPFileStableSensor(
        task_id="wait_until_written",
        sftp_conn_id="sftp_resume_example",
        path="{{ params.remote_glob }}",
        quiet_period=60,
        poke_interval=15,
        timeout=6 * 3600,
        deferrable=True,
    )
    mirror = ResumableSFTPDirectoryDownloadOperator(
        task_id="mirror",
        sftp_conn_id="sftp_resume_example",
        remote_path="{{ params.remote_glob }}",
        local_dir="{{ params.local_dir }}",
        concurrency=4,
        post_action="move",
        archive_dir="{{ params.archive_dir }}",
        retries=5,
        retry_delay=timedelta(seconds=30),
    )
    wait >> mirror
