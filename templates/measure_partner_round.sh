#!/usr/bin/env bash
# Time what a partner does first, in a fresh virtual environment: copier copy with defaults,
# install the result (posintegrator from this checkout), run its tests. Figures in
# docs/plugin-tutorial.md. Usage: templates/measure_partner_round.sh [pip|uv]
set -euo pipefail
installer="${1:-pip}"
repository="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
python3.11 -m venv tools && tools/bin/pip install -q copier uv
if [ "$installer" = uv ]; then
    tools/bin/uv venv -q --python python3.11 venv
    install() { VIRTUAL_ENV="$work/venv" tools/bin/uv pip install -q "$@"; }
else
    python3.11 -m venv venv
    install() { venv/bin/pip install -q "$@"; }
fi
start=$(date +%s)
tools/bin/copier copy --defaults --quiet "$repository/templates/pos_plugin" pos_acme
copied=$(date +%s)
install -e "$repository" -e './pos_acme[test]'
installed=$(date +%s)
(cd pos_acme && ../venv/bin/pytest -q -p no:cacheprovider | tail -1)
tested=$(date +%s)
echo "$installer: copy $((copied - start))s, install $((installed - copied))s," \
    "tests $((tested - installed))s, total $((tested - start))s" \
    "(load average $(cut -d' ' -f1 /proc/loadavg))"
