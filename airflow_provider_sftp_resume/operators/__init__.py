"""Operators of airflow-provider-sftp-resume."""

from __future__ import annotations

from airflow_provider_sftp_resume.operators.directory import ResumableSFTPDirectoryDownloadOperator
from airflow_provider_sftp_resume.operators.sftp import ResumableSFTPDownloadOperator
from airflow_provider_sftp_resume.operators.upload import ResumableSFTPUploadOperator

__all__ = [
    "ResumableSFTPDirectoryDownloadOperator",
    "ResumableSFTPDownloadOperator",
    "ResumableSFTPUploadOperator",
]
