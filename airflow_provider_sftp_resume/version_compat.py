"""
Airflow-version switches, as Airflow asks providers to keep them: a copy in the provider itself.

Everything else goes through ``airflow.providers.common.compat``; this module holds only what that
layer does not cover.
"""

from __future__ import annotations


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    """Return Airflow's version as ``(major, minor, micro)``."""
    from airflow import __version__
    from packaging.version import Version

    airflow_version = Version(__version__)
    return airflow_version.major, airflow_version.minor, airflow_version.micro


AIRFLOW_V_3_2_PLUS: bool = get_base_airflow_version_tuple() >= (3, 2, 0)


def exponential_backoff(multiplier: float = 2.0) -> float | bool:
    """
    Return the value of ``retry_exponential_backoff`` that makes retry delays grow by ``multiplier``.

    Airflow 3.2 and later take the multiplier itself (``True`` would mean 1, a constant delay);
    earlier versions, 2.11 included, take a flag that doubles the delay and reject a number.

    :param multiplier: growth factor per retry; only 2.0 is possible before Airflow 3.2
    :raises ValueError: for another multiplier before Airflow 3.2
    """
    if AIRFLOW_V_3_2_PLUS:
        return multiplier
    if multiplier != 2.0:
        raise ValueError("Airflow before 3.2 can only double the retry delay (multiplier 2.0)")
    return True


__all__ = ["AIRFLOW_V_3_2_PLUS", "exponential_backoff"]
