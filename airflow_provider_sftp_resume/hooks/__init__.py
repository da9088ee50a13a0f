"""Hooks of airflow-provider-sftp-resume."""

from __future__ import annotations

from airflow_provider_sftp_resume.hooks.sftp import ResumableSFTPHook

__all__ = ["ResumableSFTPHook"]
