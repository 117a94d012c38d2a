#!/usr/bin/env bash
# opsctl's main job, end to end, on a demo project:
#   check the machine, scaffold a project (Git + DVC, sample data versioned),
#   see what is stale, run the pipeline, see metrics, push the data to the
#   project's remote and list where every piece of data is.
# The demo project goes to $OPSCTL_DEMO_DIR (default: /tmp/opsctl-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
if [ "${OPSCTL_SKIP_SETUP:-0}" != 1 ]; then
    bash scripts/setup-machine.sh
    bash scripts/bootstrap.sh
fi
export PATH="$repo/.venv/bin:$PATH"
demo=${OPSCTL_DEMO_DIR:-/tmp/opsctl-demo}

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; "$@"; }

if [ -e "$demo" ]; then
    if [ -f "$demo/.opsctl/demo" ]; then
        rm -rf "$demo"
    else
        echo "demo: $demo exists and was not made by this script; set OPSCTL_DEMO_DIR elsewhere" >&2
        exit 1
    fi
fi

step opsctl doctor || echo "(doctor's warnings are fine for the demo: it runs stages on the host)"
step opsctl init "$demo" --name churn-demo --data executor=local --defaults
mkdir -p "$demo/.opsctl" && : > "$demo/.opsctl/demo"
cd "$demo"
step git log --stat --oneline
step opsctl status
# The pipeline engine (`opsctl run`, stages in containers) is not built yet: DVC runs it on the host.
step dvc repro
step opsctl status
step dvc metrics show
step opsctl data status
step opsctl data push
step opsctl data ls
printf '\nDemo project: %s\n' "$demo"
