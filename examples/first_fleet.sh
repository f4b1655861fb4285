#!/usr/bin/env bash
# The seed's "first fleet" flow, end to end, in a scratch directory:
# create a fleet of 2 from a Worker mold, list, deploy a task, run it, check
# health, then let a worker execute the queued tasks with the sample handler.
set -euo pipefail

# Use the installed console script; fall back to the module when the script's
# directory is not on PATH yet (e.g. pyenv before a rehash).
if ! command -v dalfleet >/dev/null 2>&1; then
  dalfleet() { python3 -m dalfleet "$@"; }
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/dalfleet-first-fleet.XXXXXX")
cd "$work"
echo "# project directory: $work"

set -x
dalfleet init        # the sample Worker mold, mold/worker.mold.dal (and fleets.yaml)
dalfleet create assistant-workers --from-mold mold/worker.mold.dal --count 2
dalfleet list -v
dalfleet deploy assistant-workers "Smoke test task"
dalfleet run assistant-workers
dalfleet health assistant-workers
dalfleet worker assistant-workers --handler dalfleet.handlers:echo --once
dalfleet health assistant-workers
dalfleet export assistant-workers --format k8s
set +x

echo "# fleet file: $work/.dal/fleets.json"
