#!/usr/bin/env bash
# opsctl's main job, end to end, on a demo project:
#   check the machine, scaffold a project (Git + DVC, sample data versioned),
#   see what is stale, build the image and run the pipeline in containers
#   (on the host when no Docker engine is reachable), change a param and run
#   again, compare the two runs and their plots, run a sweep, check the data, register and promote the
#   model with its reference profile, compare new data with it (drift), show its
#   lineage, push the data to the project's remote and list where every piece
#   of data is.
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

# Stages run in containers when a Docker engine is reachable; otherwise on the host, and we say why.
executor=local
base_args=()
if engine=$(docker info --format '{{.ServerVersion}}' 2>&1); then
    executor=docker
    base=${OPSCTL_DEMO_BASE_IMAGE:-}
    if [ -z "$base" ]; then
        if docker image inspect python:3.11-slim >/dev/null 2>&1 || timeout 120 docker pull -q python:3.11-slim >/dev/null 2>&1; then
            base=python:3.11-slim
        else
            # No registry reachable (as on the CI machines): a local Debian image with python3,
            # pandas and scikit-learn, built once per machine from Debian packages (~2 min).
            echo "demo: python:3.11-slim can't be pulled here; using a local image from Debian packages" >&2
            bash scripts/build-test-images.sh --only python
            base=opsctl-test/python:3
        fi
    fi
    base_args=(--data "base_image=$base")
    # The locally built image already holds the requirements; pip would need the network.
    [ "$base" = opsctl-test/python:3 ] && base_args+=(--data install_requirements=false)
    echo "demo: Docker engine $engine reachable: stages run in containers of $base" >&2
else
    echo "demo: no Docker engine reachable ($(echo "$engine" | tail -1)); stages run on the host (executor local)" >&2
fi

step opsctl doctor || echo "(doctor's warnings are fine for the demo)"
step opsctl init "$demo" --name churn-demo --defaults --data "executor=$executor" "${base_args[@]}"
mkdir -p "$demo/.opsctl" && : > "$demo/.opsctl/demo"
cd "$demo"
step git log --stat --oneline
step opsctl status
step opsctl dag
[ "$executor" = docker ] && step opsctl build
step opsctl run
step opsctl status
step dvc status            # DVC agrees: nothing left to do
step dvc metrics show
step git add -A
step git commit -qm "First run of the pipeline"
step opsctl run -S train.n_estimators=50 --dry-run
step opsctl run -S train.n_estimators=50
step dvc metrics diff
step opsctl runs list
# The two runs, side by side: n_estimators 100 vs 50, and what it did to the metrics.
mapfile -t runs < <(opsctl runs list --json | python3 -c 'import json, sys; print("\n".join(r["id"][:8] for r in json.load(sys.stdin)))')
step opsctl runs compare "${runs[1]}" "${runs[0]}"
step opsctl runs show "${runs[0]}"
step opsctl plots show --run "${runs[1]}" --run "${runs[0]}"   # the ROC curve and confusion matrix of both runs
step opsctl plots show --html .opsctl/plots.html   # the same, exact, in one self-contained page (.opsctl/ is not in Git)
step git add -A
step git commit -qm "Train with 50 trees"
# The review of that commit, as a pull request would get it: params, metrics with deltas and
# their trend, the changed model, the checks on its data, both ROC curves; a gate on accuracy.
step opsctl report --base HEAD~1 --fail-on 'metrics.accuracy.delta<-0.05' -o .opsctl/report.md
step sed -n 1,30p .opsctl/report.md
# A sweep: six experiments, each in its own work tree (this one is not touched), in parallel;
# prepare and featurize have the same inputs in all six, so they are not run again.
step opsctl exp run -S train.n_estimators=50,150 -S train.max_depth=4,6,8 -j 2 --name trees
step opsctl exp show trees
best=$(opsctl exp show trees --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["experiments"][0]["run"])')
step opsctl exp apply "$best"
step dvc status            # the best experiment's outputs and dvc.lock, here: nothing to do
step git add -A
step git commit -qm "The best of the sweep"
# Data checks: the ones the template declares pass; a broken raw row stops the run (exit 5)
# before any stage reads it, and DVC still points at the good version, which comes back.
step opsctl data validate
cp data/raw/churn.csv /tmp/opsctl-demo-churn.csv
sed -i '11s/^\(C[0-9]*\),\([01]\),\([a-z]*\),[0-9]*,/\1,\2,\3,-5,/' data/raw/churn.csv   # tenure -5 in row 10
step sed -n 11p data/raw/churn.csv
if step opsctl run; then echo "demo: the broken row was not caught" >&2; exit 1; else code=$?; fi
[ "$code" = 5 ] || { echo "demo: opsctl run exited $code, expected 5 (a stage failed)" >&2; exit 1; }
step dvc checkout --force data/raw/churn.csv    # the .dvc file still names the good data
step opsctl data validate
step opsctl run
# The model is registered with the profile of its training data, the reference drift is measured against.
step opsctl model register churn models/model.pkl --profile monitor/churn.profile.json
step opsctl model promote churn 0.0.1 --to prod
# Drift: a batch of new customers like the ones it was trained on passes (exit 0); a batch
# of newer, pricier month-to-month customers drifts (exit 6, the drifted columns named).
step opsctl monitor drift data/incoming/batch.csv
python3 - <<'EOF_PY'
import csv
with open("data/incoming/batch.csv", newline="") as f:
    rows = list(csv.DictReader(f))
for r in rows:
    r["tenure_months"] = str(int(r["tenure_months"]) // 4)
    r["monthly_charges"] = f"{float(r['monthly_charges']) * 1.5:.2f}"
    r["total_charges"] = f"{float(r['monthly_charges']) * int(r['tenure_months']):.2f}"
    r["contract"], r["internet_service"], r["payment_method"] = "month-to-month", "fiber", "electronic_check"
with open("data/incoming/shifted.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
EOF_PY
if step opsctl monitor drift data/incoming/shifted.csv --reference churn@v0.0.1; then
    echo "demo: the shifted batch did not drift" >&2; exit 1
else code=$?; fi
[ "$code" = 6 ] || { echo "demo: opsctl monitor drift exited $code, expected 6 (drift)" >&2; exit 1; }
# A scheduled CI job would now fail on the report's drift gate (exit 6), the drifted batch at the top.
if step opsctl report --fail-on drift --no-plots -o .opsctl/drift-report.md; then
    echo "demo: the report's drift gate passed" >&2; exit 1
else code=$?; fi
[ "$code" = 6 ] || { echo "demo: opsctl report exited $code, expected 6 (a gate failed)" >&2; exit 1; }
step opsctl monitor history
step opsctl model show churn
step opsctl lineage churn@v0.0.1
step opsctl data status
step opsctl data push
step opsctl data ls
printf '\nDemo project: %s (%s executor)\n' "$demo" "$executor"
printf 'The dashboard over it: cd %s && opsctl ui   (? lists the keys, q quits)\n' "$demo"
