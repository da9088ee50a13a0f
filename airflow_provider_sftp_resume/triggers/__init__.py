"""Triggers of airflow-provider-sftp-resume."""

from __future__ import annotations

from airflow_provider_sftp_resume.triggers.stable import SFTPFileStableTrigger

__all__ = ["SFTPFileStableTrigger"]
