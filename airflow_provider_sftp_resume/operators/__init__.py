"""Operators of airflow-provider-sftp-resume."""

from __future__ import annotations

from airflow_provider_sftp_resume.operators.sftp import ResumableSFTPDownloadOperator

__all__ = ["ResumableSFTPDownloadOperator"]
