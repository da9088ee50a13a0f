"""
Transfer operators between SFTP and other stores: :class:`ResumableSFTPToS3Operator`.

It needs the amazon provider (``pip install 'airflow-provider-sftp-resume[amazon]'``); it is
imported on first use, so this package imports without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_sftp_resume.transfers.sftp_to_s3 import ResumableSFTPToS3Operator

__all__ = ["ResumableSFTPToS3Operator"]


def __getattr__(name: str) -> Any:
    if name == "ResumableSFTPToS3Operator":
        from airflow_provider_sftp_resume.transfers.sftp_to_s3 import ResumableSFTPToS3Operator

        return ResumableSFTPToS3Operator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
