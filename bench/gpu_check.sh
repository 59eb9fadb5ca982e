#!/usr/bin/env bash
# The GPU check of issue 19, in one call of at most 8 minutes on a lent GPU machine (bench/README.md).
#
#   here, once:      .venv/bin/python bench/gpu_pack.py      # wheels + photos into .gpu/ (ignored by git)
#   device tool:     run, carry [".gpu"], timeout_s 540, command: bash bench/gpu_check.sh
#   out of time?     copy the returned gpu_check.jsonl to .gpu/previous.jsonl and run again: done rows are kept
#
# 1. a 4-epoch fine-tune of the default model (EfficientNet-Lite0, real weights) on the photos, on the GPU
#    (decoded-image cache, augmentation on the GPU, torch.compile), then its evaluation and export;
#    then the same with "batch_size": "auto";
# 2. training img/s on real JPEGs against synthetic data, per model and mode (bench/gpu_check.py).
set -uo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl \
    || { echo "error: the wheels in .gpu/whl did not install (run bench/gpu_pack.py here first)"; exit 1; }
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 TRANSFERLAB_HOME=/tmp/transferlab
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"

finetune() {  # name, batch size (a number or "auto")
    local name=$1 batch=$2 t0 run_dir
    grep -q "\"key\": \"finetune $name\"" .gpu/previous.jsonl 2>/dev/null && return 0
    cat > "/tmp/$name.json" <<JSON
{"name": "gpu $name", "data": {"source": ".gpu/hymenoptera", "split_seed": 0},
 "freeze": {"strategy": "fine_tune", "head_epochs": 1, "lr_spread": 10}, "optimizer": {"lr": 0.001},
 "augment": {"preset": "light"}, "early_stopping": {"patience": 0}, "epochs": 4, "batch_size": $batch,
 "compile": true}
JSON
    [ "$batch" = auto ] && sed -i 's/"batch_size": auto/"batch_size": "auto"/' "/tmp/$name.json"
    t0=$(date +%s.%N)
    python3 -m tlcore train "/tmp/$name.json" 2>&1 | tee "$OUT/finetune-$name.log" | grep -v "step [0-9]*/"
    run_dir=$(sed -n 's/^run .*, folder \(.*\)$/\1/p' "$OUT/finetune-$name.log" | head -1)
    python3 -m tlcore evaluate "$run_dir" --json > "$OUT/evaluation-$name.json"
    python3 -m tlcore export "$run_dir" "/tmp/export-$name" > "$OUT/export-$name.log" 2>&1
    python3 - "$name" "$run_dir" "$t0" "$OUT" <<'PY'
import json, sys, time
from pathlib import Path
name, run_dir, t0, out = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
history = json.loads((run_dir / "history.json").read_text())
evaluation = json.loads((out / f"evaluation-{name}.json").read_text())
config = json.loads((run_dir / "config.json").read_text())
row = {"key": f"finetune {name}", "test_accuracy": evaluation["accuracy"], "batch_size": config["batch_size"],
       "lr": config["optimizer"]["lr"], "epoch_seconds": [round(h["epoch_seconds"], 2) for h in history],
       "val_acc": [round(h["val_acc"], 4) for h in history], "images_per_s": [round(h["images_per_s"]) for h in history],
       "wall_s": round(time.time() - t0, 1), "exported": sorted(p.name for p in Path(f"/tmp/export-{name}").iterdir())}
print(json.dumps(row))
with open(out / "gpu_check.jsonl", "a") as fh:
    fh.write(json.dumps(row) + "\n")
PY
}
[ -f .gpu/previous.jsonl ] && cp .gpu/previous.jsonl "$OUT/gpu_check.jsonl"
finetune batch32 32
finetune auto auto
left=$(( 420 - ($(date +%s) - started) ))
python3 bench/gpu_check.py --data .gpu/hymenoptera --out "$OUT" --budget-s "$left" --previous "$OUT/gpu_check.jsonl"
echo "gpu_check.sh: $(( $(date +%s) - started )) s"
