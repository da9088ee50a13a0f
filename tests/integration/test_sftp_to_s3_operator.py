"""The operator's surface: a drop-in for the stock SFTPToS3Operator, its knobs checked at parse time,
lineage named as the amazon provider names S3 datasets, and a clear error without the amazon extra."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from airflow_provider_sftp_resume.transfers import ResumableSFTPToS3Operator

STOCK_ARGUMENTS = {"sftp_path": "/out/a.csv", "s3_bucket": "landing", "s3_key": "in/a.csv"}


def test_the_stock_operators_arguments_are_accepted() -> None:
    operator = ResumableSFTPToS3Operator(
        task_id="copy",
        sftp_conn_id="sftp_default",
        s3_conn_id="aws_default",
        use_temp_file=False,
        fail_on_file_not_exist=False,
        **STOCK_ARGUMENTS,
    )
    assert {"sftp_path", "s3_bucket", "s3_key"} <= set(operator.template_fields)
    assert operator.s3_conn_id == "aws_default"
    assert (
        ResumableSFTPToS3Operator(task_id="b", aws_conn_id="other", **STOCK_ARGUMENTS).s3_conn_id == "other"
    )


@pytest.mark.parametrize(
    ("knob", "match"),
    [
        ({"part_size": 1024}, "outside S3's limits"),
        ({"s3_checksum": "MD5"}, "s3_checksum must be one of"),
        ({"verify": "nonsense"}, "Unknown verify check"),
        ({"post_action": "move"}, "needs archive_dir"),
    ],
)
def test_bad_knobs_fail_when_the_dag_is_parsed(knob: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ResumableSFTPToS3Operator(task_id="copy", **STOCK_ARGUMENTS, **knob)  # type: ignore[arg-type]


def test_lineage_names_the_sftp_source_and_the_s3_object(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    conn = {"conn_type": "sftp", "host": "127.0.0.1", "port": 2222, "login": "u"}
    monkeypatch.setenv("AIRFLOW_CONN_SFTP_DEFAULT", json.dumps(conn))
    lineage = ResumableSFTPToS3Operator(task_id="copy", **STOCK_ARGUMENTS).get_openlineage_facets_on_start()
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file://127.0.0.1:2222", "/out/a.csv")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("s3://landing", "in/a.csv")]


def test_without_the_amazon_provider_the_rest_imports_and_the_operator_names_the_extra() -> None:
    # The amazon provider's code and boto are made unimportable; its installed metadata
    # (get_provider_info, read by Airflow's provider discovery) is left alone.
    script = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.startswith(("airflow.providers.amazon.aws", "boto3", "botocore")):
                    raise ImportError(f"No module named {name!r}")
        sys.meta_path.insert(0, Block())
        import airflow_provider_sftp_resume.operators, airflow_provider_sftp_resume.hooks
        import airflow_provider_sftp_resume.transfers
        try:
            from airflow_provider_sftp_resume.transfers import ResumableSFTPToS3Operator
        except ImportError as exc:
            print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "pip install 'airflow-provider-sftp-resume[amazon]'" in done.stdout
