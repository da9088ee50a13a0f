"""Sensors of airflow-provider-sftp-resume."""

from __future__ import annotations

from airflow_provider_sftp_resume.sensors.stable import SFTPFileStableSensor

__all__ = ["SFTPFileStableSensor"]
