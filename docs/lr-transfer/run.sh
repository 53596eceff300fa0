#!/usr/bin/env bash
# The learning-rate transfer study (docs/lr-transfer/README.md): for GPT, nGPT and νGPT, final validation loss
# against learning rate at widths d 64, 128, 256, 384 (head size 64, 4 layers, 1,200 steps) and, at d 128, at run
# lengths of 300, 1,200 and 4,800 steps (16× in tokens), on the debian-docs corpus (≈35M training tokens: no run
# sees a token twice). Each point is one ngpt-compare; finished runs are reused, so running this again continues
# where it stopped (the runs take several hours on 2 cores: run it in the background, again after an interruption).
# Each point's report.md, summary.json and plots are copied into docs/lr-transfer/<point>/; analyse.py then fits
# the optima and exponents.
#
#   docs/lr-transfer/run.sh [POINT ...]      (default: every point, in the order below; a point whose results are
#                                            in docs/lr-transfer/ is skipped unless REDO=1)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${NGPT_COMPARE:-.build/release/ngpt-compare}
[ -x "$bin" ] || swift build -c release --product ngpt-compare

# Grids: rates ×√2 apart around a centre per arm, extended by ×√2 steps (up to two) while an arm's best rate is at
# an end of its grid. The first points (d64, d128, d128-s300, d256) use five rates around each arm's default rule
# at that width (GPT 1.5e-3·256/d, nGPT 8e-3·256/d; νGPT's rate is given at its base sizes, 5e-3 everywhere). The
# last two (d384, d128-s4800) use three rates around the optimum the earlier points predict (results.md: at d 384
# the d 128 → 256 trend carried on, GPT 8.5e-4, nGPT 6e-3, νGPT 4.2e-3; at 4,800 steps, d 128's optima moved by the
# run-length trend, GPT 3e-3, nGPT 1.1e-2, νGPT 6.2e-3), since each of their runs costs 8–14 minutes; the extension
# still moves a grid whose best rate is at an end.
grid() {  # centre, points (5 or 3)
  python3 -c "import sys; c=float(sys.argv[1]); f=(0.5, 0.7071, 1, 1.4142, 2) if sys.argv[2]=='5' else (0.7071, 1, 1.4142); print(','.join('%.3g' % (c*x) for x in f))" "$1" "${2:-5}"
}

# After a point has run, the arms whose best rate is at an end of their grid, each with its grid extended by one
# ×√2 step past that end ("gpt=1.5e-3,2.1e-3,…"); nothing when every optimum is bracketed.
extend() {
  python3 - "$1" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
for arm in s["arms"]:
    rates = sorted(arm["learningRates"])
    if len(rates) > 1 and arm["lr"] in (rates[0], rates[-1]):
        edge = rates[0] / 2 ** 0.5 if arm["lr"] == rates[0] else rates[-1] * 2 ** 0.5
        print("%s=%s" % (arm["name"], ",".join("%.3g" % r for r in sorted(rates + [edge]))))
PY
}

point() {  # name dim steps seeds [gpt-centre ngpt-centre nu-centre points]
  local name=$1 d=$2 steps=$3 seeds=$4
  if [ -f "docs/lr-transfer/$name/summary.json" ] && [ -z "${REDO:-}" ]; then
    echo "== $name: done (docs/lr-transfer/$name; REDO=1 to run it again)"
    return
  fi
  local heads=$((d / 64)) mlp
  mlp=$(python3 -c "print(round($2 * 8 / 3))")
  local -A grids=(
    [gpt]=$(grid "${5:-$(python3 -c "print(1.5e-3 * 256 / $d)")}" "${8:-5}")
    [ngpt]=$(grid "${6:-$(python3 -c "print(8e-3 * 256 / $d)")}" "${8:-5}")
    [ngpt-nu]=$(grid "${7:-5e-3}" "${8:-5}")
  )
  for round in 1 2 3; do
    echo "== $name: d $d, $steps steps, seeds $seeds (round $round)"
    "$bin" --dir "checkpoints/lr-transfer/$name" --seeds "$seeds" --arms gpt,ngpt,ngpt-nu \
      --arm-lr "gpt=${grids[gpt]}" --arm-lr "ngpt=${grids[ngpt]}" --arm-lr "ngpt-nu=${grids[ngpt-nu]}" \
      --corpus debian-docs --dim "$d" --heads "$heads" --mlp-hidden "$mlp" --layers 4 --context 256 \
      --batch-size 8 --steps "$steps" --eval-every $((steps / 12)) --eval-windows 256 --log-every 100
    local wider
    wider=$(extend "checkpoints/lr-transfer/$name/summary.json")
    [ -z "$wider" ] && break
    while IFS== read -r arm rates; do grids[$arm]=$rates; echo "   $arm's best is at an end of its grid: $rates"; done <<< "$wider"
  done
  mkdir -p "docs/lr-transfer/$name"
  cp "checkpoints/lr-transfer/$name"/{report.md,summary.json} "docs/lr-transfer/$name/"
  cp "checkpoints/lr-transfer/$name"/*.svg "docs/lr-transfer/$name/"
  [ -n "${SEED2:-}" ] && seeds "$name" "$d" "$steps"
  return 0
}

# A second seed at each arm's best rate of the grid (seed 1's runs are reused): the speedup's seed range at a
# point whose grid ran with one seed. Its report and summary go to docs/lr-transfer/<point>/seeds/.
seeds() {  # name dim steps
  local name=$1 d=$2 steps=$3 heads=$(($2 / 64)) mlp rates
  mlp=$(python3 -c "print(round($2 * 8 / 3))")
  rates=$(python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(' '.join('--arm-lr %s=%.3g' % (a['name'], a['lr']) for a in s['arms']))" "docs/lr-transfer/$name/summary.json")
  echo "== $name: seeds 1,2 at the best rates ($rates)"
  # shellcheck disable=SC2086
  "$bin" --dir "checkpoints/lr-transfer/$name" --seeds 1,2 --arms gpt,ngpt,ngpt-nu $rates \
    --corpus debian-docs --dim "$d" --heads "$heads" --mlp-hidden "$mlp" --layers 4 --context 256 \
    --batch-size 8 --steps "$steps" --eval-every $((steps / 12)) --eval-windows 256 --log-every 100
  mkdir -p "docs/lr-transfer/$name/seeds"
  cp "checkpoints/lr-transfer/$name"/{report.md,summary.json} "checkpoints/lr-transfer/$name"/*.svg \
    "docs/lr-transfer/$name/seeds/"
}

all=(d64 d128 d128-s300 d256 d384 d128-s4800)
for p in "${@:-${all[@]}}"; do
  case $p in
    d64) point d64 64 1200 1,2 ;;
    d128) point d128 128 1200 1 ;;
    d256) point d256 256 1200 1 ;;
    d384) SEED2=1 point d384 384 1200 1 8.5e-4 6e-3 4.2e-3 3 ;;
    d128-s300) point d128-s300 128 300 1 ;;
    d128-s4800) point d128-s4800 128 4800 1 3e-3 1.1e-2 6.2e-3 3 ;;
    *) echo "unknown point $p (${all[*]})" >&2; exit 2 ;;
  esac
done
