#!/usr/bin/env bash
# Create ./.venv with the package and its test tools; install OpenSSH's sshd when possible.
# Safe to run again: it only does what is missing. Used by demo.sh (--demo), run-tests.sh and .ci/run.
#   scripts/bootstrap.sh               ./.venv with the latest Airflow 3 and every extra the tests,
#                                      the deployment suite, CI and the plot script need
#   scripts/bootstrap.sh --demo        ./.venv with what ./demo.sh needs: the package and its
#                                      dependencies, no extras; sshd only (no ProFTPD). A venv that
#                                      already has the full set is left as it is.
#   scripts/bootstrap.sh --airflow 2   ./.venv-airflow2 with the latest Airflow 2.11.x (and the provider
#                                      versions pip's resolver finds that still support it)
#   scripts/bootstrap.sh --airflow oldest
#                                      ./.venv-oldest with the oldest versions pyproject.toml allows
#                                      (scripts/oldest-constraints.txt: Airflow 2.11.0, ssh provider 4.1.0,
#                                      sftp provider 5.3.0, ...)
#   --venv PATH                        (with any of the above) use PATH instead, e.g. a throwaway venv
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
pins=()
# The deployment suite (PostgreSQL, Celery) runs on Airflow 3 only.
extras=test,package,openlineage,docs,deployment,amazon
demo=false
while [ $# -gt 0 ]; do
    case "$1" in
        --airflow)
            case "${2:-}" in
                2) venv=.venv-airflow2; pins=("apache-airflow>=2.11,<3"); extras=test,package,openlineage,docs,amazon ;;
                oldest) venv=.venv-oldest; pins=(-c scripts/oldest-constraints.txt); extras=test,package,openlineage,amazon ;;
                3) ;;
                *) echo "bootstrap: --airflow takes 2, 3 or oldest" >&2; exit 2 ;;
            esac
            shift 2 ;;
        --demo) demo=true; shift ;;
        --venv)
            [ -n "${2:-}" ] || { echo "bootstrap: --venv takes a path" >&2; exit 2; }
            override_venv=$2; shift 2 ;;
        *) echo "bootstrap: unknown argument $1 (see the comment at the top of scripts/bootstrap.sh)" >&2; exit 2 ;;
    esac
done
venv=${override_venv:-$venv}
if [ "$demo" = true ]; then extras=""; fi

want_sshd() { [ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1; }
# ProFTPD with mod_sftp (issue 10): a second real SFTP server, with ProFTPD's own defaults.
want_proftpd() { [ -x /usr/sbin/proftpd ] && [ -e /usr/lib/proftpd/mod_sftp.so ]; }
SERVER_PACKAGES="openssh-server openssh-client proftpd-core proftpd-mod-crypto"

# The demo needs sshd only; the tests need ProFTPD too.
if [ "$demo" = true ]; then
    want_proftpd() { true; }
    SERVER_PACKAGES="openssh-server openssh-client"
fi

if ! want_sshd || ! command -v ssh-keygen >/dev/null 2>&1 || ! want_proftpd; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "bootstrap: installing Debian's $SERVER_PACKAGES"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $SERVER_PACKAGES >/dev/null
    elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $SERVER_PACKAGES >/dev/null
    else
        echo "bootstrap: sshd not available and cannot install it; the embedded asyncssh server will be used"
    fi
fi

python=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
        "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
        python=$candidate
        break
    fi
done
if [ -z "$python" ]; then
    echo "bootstrap: Python 3.11 or newer is required (apt-get install python3 python3-venv)" >&2
    exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "bootstrap: creating $venv with $python"
    "$python" -m venv "$venv"
fi
# The stamp names what is installed: a digest of pyproject.toml and the constraints, then one of the
# extras and pins. The demo's set (no extras) is part of every other set, so --demo accepts any
# stamp of the current pyproject.toml and never shrinks a venv the tests use.
sources=$( (cat pyproject.toml scripts/oldest-constraints.txt) | sha256sum | cut -c1-16)
selection=$(echo "$extras ${pins[@]+"${pins[@]}"}" | sha256sum | cut -c1-16)
stamp=$venv/.installed-$sources-$selection
if [ "$demo" = true ] && compgen -G "$venv/.installed-$sources-*" >/dev/null; then
    exit 0
fi
if [ ! -f "$stamp" ]; then
    if [ -n "$extras" ]; then
        what="the package and the extras $extras"
        target=".[$extras]"
    else
        what="the package and its dependencies (what the demo needs)"
        target="."
    fi
    echo "bootstrap: installing $what into $venv (a few minutes the first time)"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q -e "$target" ${pins[@]+"${pins[@]}"}
    rm -f "$venv"/.installed-*
    touch "$stamp"
fi
# Bytecode for the package's own modules, as pip writes it for a wheel install. An editable install
# has none, and where PYTHONDONTWRITEBYTECODE is set (as on this project's CI machines) every process
# would compile the sources again at each start: a segment worker process 0.07 CPU-s of its 0.4 s
# start. A stale file is harmless (Python checks the source's mtime and compiles in memory).
"$venv/bin/python" -m compileall -q airflow_provider_sftp_resume >/dev/null
