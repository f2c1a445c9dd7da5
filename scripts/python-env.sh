#!/usr/bin/env bash
# Makes (or brings up to date) the virtual environment that builds and tests the
# Python package: python/requirements-test.txt, pinned, torch included (about
# 5 GB and a few minutes the first time; a second or two, nothing fetched, when
# already satisfied). Prints the environment's path.
#
# PYTHON picks the interpreter that makes it (default python3, 3.11 or later);
# GDQ_VENV another place for it (default .venv).
set -euo pipefail
unset CDPATH # a cd that prints its folder would spoil the path printed below
cd "$(dirname "$0")/.."

venv=$(realpath -m "${GDQ_VENV:-.venv}")
reqs=python/requirements-test.txt
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv" >&2
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" >&2
echo "$venv"
