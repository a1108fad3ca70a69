#!/usr/bin/env bash
# One grid of run_paper_tables.sh with every (model, sampler) arm in its own process, all at once: for a
# machine with many cores and one GPU (the ml-1m cells ran this way on an H100 machine with 16 cores).
#
#   LIMIT=420 bash benchmarks/parallel_grid.sh ml-1m "LightGCN:3:rns,dns,dnsmn,mixgcf,dens,ahns MF:3:rns,dns"
#
# Each job is MODEL:SEEDS:SAMPLERS. Every process is cut off after LIMIT seconds (default: none); the cells it
# finished stay cached, so the same command resumes, and `CACHED_ONLY=1 bash benchmarks/run_paper_tables.sh
# GRID` writes the tables from whatever finished, listing the missing cells. Logs: $LOGS (default
# runs/parallel-<grid>/).
set -uo pipefail
grid="${1:?usage: $0 GRID 'MODEL:SEEDS:SAMPLERS ...'}"
jobs="${2:?usage: $0 GRID 'MODEL:SEEDS:SAMPLERS ...'}"
logs="${LOGS:-runs/parallel-$grid}"
mkdir -p "$logs"
limit=()
if [[ -n "${LIMIT:-}" ]]; then
  limit=(timeout "$LIMIT")
fi
for job in $jobs; do
  model="${job%%:*}"
  rest="${job#*:}"
  seeds="${rest%%:*}"
  for sampler in $(tr , ' ' <<<"${rest#*:}"); do
    SEEDS="$seeds" SAMPLERS="$sampler" MODELS="$model" ${limit[@]+"${limit[@]}"} \
      bash benchmarks/run_paper_tables.sh "$grid" >"$logs/$model-$sampler.log" 2>&1 &
  done
done
wait
ls "benchmarks/results/$grid/cells" | grep -vc analysis | xargs echo "finished cells:"
