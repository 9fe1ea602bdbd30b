#!/usr/bin/env bash
# Export funnelrun at a git revision (default HEAD) as package `funnelrun_base` under DIR, for
#   .venv/bin/python scripts/bench_throughput.py --baseline DIR
# which then times the same NSF built from that revision beside the working tree's, interleaved.
# Read-only for the repository (git archive); usage: scripts/make_baseline.sh DIR [REV]
set -euo pipefail
dir=${1:?usage: scripts/make_baseline.sh DIR [REV]}
rev=${2:-HEAD}
rm -rf "$dir/funnelrun_base"
mkdir -p "$dir"
git archive "$rev" funnelrun | tar -x -C "$dir"
mv "$dir/funnelrun" "$dir/funnelrun_base"
grep -rl "funnelrun" "$dir/funnelrun_base" --include='*.py' | xargs sed -i -E \
  's/(from|import) funnelrun([. ])/\1 funnelrun_base\2/g'
echo "baseline funnelrun@$rev in $dir/funnelrun_base"
