"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_sftp_resume import __version__


def get_provider_info() -> dict[str, Any]:
    """
    Return the provider's metadata (hooks, operators, sensors, triggers, versions).

    Every module holding a hook, operator, sensor or trigger is listed under its kind (a test walks
    the package and fails on a module left out). There is deliberately no ``connection-types``
    entry: Airflow keys hooks by connection type, one hook per type, and discovers providers in
    package-name order, so listing the stock ``sftp`` type here would take the ``sftp`` connection
    form and its Test button away from the stock ``SFTPHook`` (this package's name sorts first),
    and a type of our own would add a second SFTP connection type. ``ResumableSFTPHook`` reads the
    stock ``sftp`` connection as it is.
    """
    return {
        "package-name": "airflow-provider-sftp-resume",
        "name": "SFTP Resume",
        "description": (
            "Resumable, verified, fast SFTP transfers for Airflow, on the stock `sftp` connection."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "SFTP Resume",
                "external-doc-url": "https://pypi.org/project/airflow-provider-sftp-resume/",
                "tags": ["protocol"],
            }
        ],
        "hooks": [
            {
                "integration-name": "SFTP Resume",
                "python-modules": ["airflow_provider_sftp_resume.hooks.sftp"],
            }
        ],
        "operators": [
            {
                "integration-name": "SFTP Resume",
                "python-modules": [
                    "airflow_provider_sftp_resume.operators.base",
                    "airflow_provider_sftp_resume.operators.sftp",
                    "airflow_provider_sftp_resume.operators.directory",
                    "airflow_provider_sftp_resume.operators.upload",
                ],
            }
        ],
        "transfers": [
            {
                "source-integration-name": "SFTP Resume",
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": "airflow_provider_sftp_resume.transfers.sftp_to_s3",
                "how-to-guide": "https://pypi.org/project/airflow-provider-sftp-resume/",
            }
        ],
        "sensors": [
            {
                "integration-name": "SFTP Resume",
                "python-modules": ["airflow_provider_sftp_resume.sensors.stable"],
            }
        ],
        "triggers": [
            {
                "integration-name": "SFTP Resume",
                "python-modules": ["airflow_provider_sftp_resume.triggers.stable"],
            }
        ],
    }
