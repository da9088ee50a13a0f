"""``python -m airflow_provider_sftp_resume.cli``: the same as the ``sftp-resume`` console script."""

from __future__ import annotations

from airflow_provider_sftp_resume.cli.main import main

raise SystemExit(main())
