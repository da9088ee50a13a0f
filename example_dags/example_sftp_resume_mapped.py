"""
Fan out over a remote directory with dynamic task mapping: one resumable download task per file.

A first task lists the remote directory (the stock ``SFTPHook.get_files_by_pattern``) and returns one
``{"remote_path", "local_path"}`` per matching file; ``ResumableSFTPDownloadOperator`` is mapped over
that list with ``expand_kwargs``. Every file has its own task instance, its own ``.part`` and its own
retries: when one file's connection drops, only that task instance is retried and it resumes; the
others are not touched. Use this when each file deserves its own line in the grid (and its own
retries and logs); use ``ResumableSFTPDirectoryDownloadOperator`` for many small files in one task.

Connection: ``sftp_resume_example`` (see ``example_sftp_resume_download``). Params: ``remote_dir``,
``pattern`` and ``local_dir``.
"""

from __future__ import annotations

import posixpath
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_sftp_resume.hooks import ResumableSFTPHook
from airflow_provider_sftp_resume.operators import ResumableSFTPDownloadOperator

with DAG(
    dag_id="example_sftp_resume_mapped",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "sftp"],
    params={
        "remote_dir": Param("/outgoing", type="string"),
        "pattern": Param("*.csv.gz", type="string"),
        "local_dir": Param("/tmp/sftp-resume-example/mapped", type="string"),
    },
) as dag:

    @task
    def list_remote_files(params: dict[str, str] | None = None) -> list[dict[str, str]]:
        """One mapping entry per remote file matching the pattern (names only: no directories)."""
        assert params is not None
        hook = ResumableSFTPHook(ssh_conn_id="sftp_resume_example")
        names = hook.get_files_by_pattern(params["remote_dir"], params["pattern"])
        return [
            {
                "remote_path": posixpath.join(params["remote_dir"], name),
                "local_path": posixpath.join(params["local_dir"], posixpath.basename(name)),
            }
            for name in sorted(names)
        ]

    ResumableSFTPDownloadOperator.partial(
        task_id="fetch",
        sftp_conn_id="sftp_resume_example",
        create_intermediate_dirs=True,
        retries=5,
        retry_delay=timedelta(seconds=30),
        max_active_tis_per_dagrun=4,
    ).expand_kwargs(list_remote_files())
