#!/usr/bin/env python3
"""
Screenshot the Airflow UI's task instance page: the log of the try that failed on the cut, above the
log of the retry that resumed.

It drives Debian's headless ``chromium`` with Playwright against a running deployment, normally the
one the deployment test starts (``SFTP_RESUME_SCREENSHOT=docs/images/airflow-ui-resumed-try.png
./run-tests.sh -m deployment -k local`` runs it there). The UI user's credentials come from the
environment (``AIRFLOW_UI_USERNAME``, ``AIRFLOW_UI_PASSWORD``), never from the command line.

    scripts/screenshot_ui.py --base-url http://127.0.0.1:8080 --dag-id example_sftp_resume_download \\
        --run-id manual__... --task-id fetch --out docs/images/airflow-ui-resumed-try.png
"""

from __future__ import annotations

import argparse
import base64
import html
import os
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx
from playwright.sync_api import Page, sync_playwright

#: Chromium flags for a quiet, sandbox-less, headless run in a container or CI machine.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Airflow's UI reads the JWT from this cookie after a login (``COOKIE_NAME_JWT_TOKEN``).
TOKEN_COOKIE = "_token"


def find_chromium() -> str:
    """Debian's chromium binary."""
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise SystemExit("chromium is not installed (apt-get install chromium)")


def login_token(base_url: str, username: str, password: str) -> str:
    """Log in through the auth manager's token endpoint, as the UI's login form does."""
    response = httpx.post(
        f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


def _capture(page: Page, url: str, wait_for_text: str, fold: tuple[str, ...] = ()) -> bytes:
    """Open ``url``, wait for ``wait_for_text``, fold the tracebacks under ``fold`` lines, return a PNG."""
    page.goto(url, wait_until="networkidle")
    page.get_by_text(wait_for_text).first.wait_for(timeout=60_000)
    for text in fold:
        # The log view shows a traceback under each exception line; fold it so the log fits.
        page.get_by_text(text).first.click()
    # Clicking may have scrolled the log sideways; show the start of the lines (the timestamps).
    page.evaluate("document.querySelectorAll('*').forEach((e) => { e.scrollLeft = 0; })")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    return page.screenshot(full_page=False)


def screenshot(base_url: str, dag_id: str, run_id: str, task_id: str, out: Path) -> None:
    """
    Save one PNG: the task instance page on the failed first try's log, above the same page on the
    retry's log.

    :param base_url: the API server (it also serves the UI)
    :param dag_id: the DAG
    :param run_id: the DAG run
    :param task_id: the task
    :param out: the PNG to write
    """
    token = login_token(base_url, os.environ["AIRFLOW_UI_USERNAME"], os.environ["AIRFLOW_UI_PASSWORD"])
    page_url = f"{base_url}/dags/{quote(dag_id)}/runs/{quote(run_id)}/tasks/{quote(task_id)}"
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile,  # a new, empty --user-data-dir
            executable_path=find_chromium(),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1500, "height": 640},
        )
        try:
            context.add_cookies([{"name": TOKEN_COOKIE, "value": token, "url": base_url}])
            page = context.new_page()
            panels = [
                (
                    "Try 1: the link is cut mid-transfer; the try fails with a retriable error",
                    _capture(
                        page,
                        f"{page_url}?try_number=1",
                        "Starting download",
                        ("TransferInterrupted:", "SFTPConnectionLost:"),
                    ),
                ),
                (
                    "Try 2, after retry_delay: the kept bytes are verified and the download resumes",
                    _capture(page, f"{page_url}?try_number=2", "Resuming at"),
                ),
            ]
            # Stack the two pictures in one page and photograph it: no image library needed.
            body = "".join(
                f'<h2>{html.escape(caption)}</h2><img src="data:image/png;base64,'
                f'{base64.b64encode(png).decode()}">'
                for caption, png in panels
            )
            page.set_viewport_size({"width": 1500, "height": 600})
            page.set_content(
                "<style>body{margin:0;font-family:sans-serif;background:#fff}"
                "h2{margin:0;padding:10px 16px;font-size:20px;background:#1f2937;color:#fff}"
                "img{display:block}</style>" + body
            )
            page.screenshot(path=str(out), full_page=True)
        finally:
            context.close()
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--dag-id", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--task-id", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    for name in ("AIRFLOW_UI_USERNAME", "AIRFLOW_UI_PASSWORD"):
        if not os.environ.get(name):
            parser.error(f"set {name} in the environment")
    screenshot(args.base_url, args.dag_id, args.run_id, args.task_id, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
