"""``python -m airflow_provider_sftp_resume.cli``: the same as the ``sftp-resume`` console script."""

from __future__ import annotations

from airflow_provider_sftp_resume.cli.main import main

if __name__ == "__main__":  # importing the module (pkgutil walks, docs tools) runs nothing
    raise SystemExit(main())
