#!/usr/bin/env bash
# The converged, controlled comparison of the semantic samplers (issue "Semantic negatives that actually
# win"): every arm early-stopped on validation NDCG@20 under an epoch cap that no cell's best epoch reaches
# (each cell records best_epoch, epochs_trained and the cap), 3 seeds on one fixed split (split_seed 2020),
# paired by seed. Run from the repository root with the project's environment active:
#
#   bash benchmarks/run_semantic_grid.sh [ml-100k|toys|ml-1m|yelp]   (default: ml-100k)
#
# Arms, all at N = dnsmn_n = 2:
#   rns                 uniform negatives
#   dnsmn               DNS(16, 2)
#   dnsmn32             DNS(32, 2): the same-size uniform pool, the control every text arm must beat
#   guarddns            32 uniform candidates, the 16 whose text is closest to the user's training items
#                       dropped (false-negative guard), DNS(16, 2) on the rest
#   guarddns-inv        the same, dropping the 16 farthest instead (control: the text signal reversed)
#   semdns              DNS(16 uniform + 16 semantic, 2): the 16 drawn from the 64 items nearest to the
#                       positive's text (all-MiniLM-L6-v2 item vectors, built once per dataset)
#   semdns-perm         semdns with its neighbour rows shuffled across items (same pools, not tied to i)
#   aligndns            DNS(32, 2) ranked by e_u steered by beta * g(text(i)), g a ridge map from item text
#                       to the stop-gradient CF item embeddings refitted every epoch (beta: the yaml default),
#                       uncentred (aligndns_center=False, as this arm and the ones below were first run)
#   aligndns-pos        the same with beta = +0.5 (steered toward the text-placed positive)
#   aligndns-perm       aligndns queried with the text of a random other item (control: g(h) not tied to i)
#   aligndns-far        the same with beta = -1.0 (validation screen of beta)
#   aligndns-cf         aligndns steered by the positive's own CF embedding e_i (control: no text at all)
#   aligndns-both       aligndns steered by e_i + g(text(i)) (unit vectors summed): text as a correction to
#                       the CF placement, credited only where it beats aligndns-cf
#   aligndns16, aligndns16-cf   the same two at M = 16: the budget of DNS(16,2)
#   dnsmn64, aligndns64, aligndns64-cf   DNS(64,2) and the same two at M = 64 (is the steering a guard that
#                       pays where the uniform pool is too hard?)
#   aligndns-center, aligndns-center-cf   aligndns and its e_i control steered by the positive's place
#                       relative to the catalogue mean (aligndns_center: g's bias no longer steers);
#                       aligndns-center is the default design, --sampler=hnlm
#   aligndns16-center, aligndns64-center   the default design at M = 16 / 64, against dnsmn / dnsmn64
#   aligndns64-center-cf   its centred e_i control at M = 64 (no text read)
#   aligndns-center-far, aligndns-center-mild   the default design at beta = -1.0 / -0.25 (validation
#                       screen of beta once centred)
#   guardq80, guardq90, guardq95   catalogue veto: 20 uniform candidates, of which the first 16 not among
#                       the user's closest 20% / 10% / 5% of the catalogue by text taste (guarddns_quantile
#                       0.8 / 0.9 / 0.95), DNS(16,2) on those 16 (validation screen of q)
#   guardq90-perm       guardq90 with every item's text read from a random other item (control: the same
#                       veto size and structure, not tied to the item)
# and, with ORACLE=1 (LightGCN; diagnostic only, never a reported model: the held-out splits shape training),
#   dnsmn-oracle, dnsmn32-oracle   DNS(16,2) / DNS(32,2) whose candidates never include a held-out
#                       positive: the ceiling of any false-negative guard
# Cells are cached under benchmarks/results/converged/<dataset>/cells/, so a rerun resumes; SAMPLERS=a,b and
# RUN_SEEDS=2020 split a grid between processes (one per core); CACHED_ONLY=1 only writes the tables.
set -euo pipefail
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

DATA="${DATA:-../shared/data}"
OUT="${OUT:-benchmarks/results/converged}"
MODELS="${MODELS:-LightGCN,MF}"
ARMS="rns,dnsmn,dnsmn32:dnsmn,guarddns,guarddns-inv:guarddns,semdns,semdns-perm:semdns,aligndns"
ARMS+=",aligndns-pos:aligndns,aligndns-far:aligndns,aligndns-perm:aligndns,aligndns-cf:aligndns"
ARMS+=",aligndns16:aligndns,aligndns16-cf:aligndns,guardq80:guarddns,guardq90:guarddns,guardq95:guarddns"
ARMS+=",guardq90-perm:guarddns,aligndns-both:aligndns,dnsmn64:dnsmn,aligndns64:aligndns,aligndns64-cf:aligndns"
ARMS+=",aligndns-center:aligndns,aligndns-center-cf:aligndns,aligndns16-center:aligndns,aligndns64-center:aligndns"
ARMS+=",aligndns-center-far:aligndns,aligndns-center-mild:aligndns,aligndns64-center-cf:aligndns"
WHICH=()
[[ "${CACHED_ONLY:-0}" == "1" ]] && WHICH+=(--cached_only)
[[ -n "${RUN_SEEDS:-}" ]] && WHICH+=(--run_seeds "$RUN_SEEDS")

# each arm's own settings, passed only when the arm runs (the harness rejects one for an arm it does not run)
ARM_CONFIG=(dnsmn32:dnsmn_candidates=32 guarddns-inv:guarddns_invert=True semdns-perm:semdns_permute=True
  dnsmn-oracle:diagnostic_oracle_candidates=True dnsmn32-oracle:diagnostic_oracle_candidates=True
  dnsmn32-oracle:dnsmn_candidates=32 aligndns-pos:aligndns_beta=0.5 aligndns-perm:aligndns_permute=True
  aligndns-far:aligndns_beta=-1.0 aligndns-cf:aligndns_source=cf aligndns-both:aligndns_source=both
  aligndns16:aligndns_candidates=16 aligndns16-cf:aligndns_candidates=16 aligndns16-cf:aligndns_source=cf
  dnsmn64:dnsmn_candidates=64 aligndns64:aligndns_candidates=64 aligndns64-cf:aligndns_candidates=64
  aligndns64-cf:aligndns_source=cf aligndns-center:aligndns_center=True
  aligndns-center-cf:aligndns_center=True aligndns-center-cf:aligndns_source=cf
  aligndns16-center:aligndns_candidates=16 aligndns64-center:aligndns_candidates=64
  aligndns-center-far:aligndns_beta=-1.0 aligndns-center-mild:aligndns_beta=-0.25
  aligndns64-center-cf:aligndns_candidates=64 aligndns64-center-cf:aligndns_source=cf)
# aligndns_center became the yaml default after these arms ran uncentred: they pin the old value, and
# --adopt_pinned keeps their finished cells (a cell is adopted only if nothing else about it differs)
for arm in aligndns aligndns-pos aligndns-far aligndns-perm aligndns-cf aligndns-both aligndns16 aligndns16-cf \
  aligndns64 aligndns64-cf; do
  ARM_CONFIG+=("$arm:aligndns_center=False")
done
for arm in guardq80:0.8 guardq90:0.9 guardq95:0.95 guardq90-perm:0.9; do
  ARM_CONFIG+=("${arm%%:*}:guarddns_candidates=20" "${arm%%:*}:guarddns_drop=4" "${arm%%:*}:guarddns_quantile=${arm#*:}")
done
ARM_CONFIG+=(guardq90-perm:guarddns_permute=True)
if [[ "${ORACLE:-0}" == "1" ]]; then
  ARMS="dnsmn-oracle:dnsmn,dnsmn32-oracle:dnsmn"
  MODELS=LightGCN
fi

grid() {
  local dataset=$1 arms="${SAMPLERS:-$ARMS}" extra=() setting
  shift
  for setting in "${ARM_CONFIG[@]}"; do
    [[ ",$arms," == *",${setting%%:*}"[,:]* ]] && extra+=(--arm_config "$setting")
  done
  echo "=== $dataset ($(date -u +%H:%M:%S) UTC)"
  recbole-hnlm bench --dataset "$dataset" --models "$MODELS" --samplers "$arms" --seeds 3 \
    --out "$OUT" --baseline rns --split_seed=2020 --embedding_size=64 --eval_step=5 \
    --show_progress=False --state=WARNING --adopt_pinned aligndns_center=False \
    ${extra[@]+"${extra[@]}"} ${WHICH[@]+"${WHICH[@]}"} "$@"
}

case "${1:-ml-100k}" in
  # ml-100k: ~1 s per LightGCN epoch here; patience 6 validations (30 epochs) under a cap of 500
  ml-100k) grid ml-100k --epochs 500 --stopping_step=6 ;;
  # toys (2014 5-core stand-in, keywords as text): ~4 s per epoch; patience 4 validations under a cap of 300
  toys) grid toys --data_path "$DATA" --text_fields="['keywords']" --epochs 300 --stopping_step=4 ;;
  ml-1m) grid ml-1m --data_path "$DATA" --epochs 200 --stopping_step=4 ;;
  # yelp (RLMRec's own split, IDs only: no item text, so only the classic arms run): the baselines under
  # this protocol; patience 4 validations under a cap of 300
  yelp) SAMPLERS="${SAMPLERS:-rns,dnsmn,dnsmn32:dnsmn}" grid yelp --data_path "$DATA" --epochs 300 --stopping_step=4 ;;
  *) echo "unknown grid $1" >&2; exit 2 ;;
esac
