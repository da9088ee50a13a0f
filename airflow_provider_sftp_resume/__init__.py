"""
airflow-provider-sftp-resume: resumable, verified SFTP transfers for Apache Airflow.

- :mod:`airflow_provider_sftp_resume.core`: the transfer engine (no Airflow import)
- :mod:`airflow_provider_sftp_resume.hooks`: :class:`ResumableSFTPHook`
- :mod:`airflow_provider_sftp_resume.operators`: :class:`ResumableSFTPDownloadOperator`
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
