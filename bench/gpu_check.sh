#!/usr/bin/env bash
# The GPU check of issue 19, in one call of at most 8 minutes on a lent GPU machine (bench/README.md).
#
#   here, once:      .venv/bin/python bench/gpu_pack.py      # wheels + photos into .gpu/ (ignored by git)
#   device tool:     run, carry [".gpu"], timeout_s 540, command: bash bench/gpu_check.sh
#   out of time?     copy the returned gpu_check.jsonl to .gpu/previous.jsonl and run again: done rows are kept
#
# 1. a 4-epoch fine-tune of the default model (EfficientNet-Lite0, real weights) on the photos, on the GPU
#    (decoded-image cache, augmentation on the GPU), then its evaluation and export;
# 2. training img/s on real JPEGs against synthetic data, per model and mode (bench/gpu_check.py), until 7 min;
# 3. if 2 minutes are left: the same fine-tune with "batch_size": "auto" and "compile": true (a compile per freeze
#    stage and per batch shape costs more than it saves on 240 pictures: it checks that they work on a GPU).
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

finetune() {  # name, batch size (a number or "auto"), compile (true or false)
    local name=$1 batch=$2 compile=$3 t0 run_dir
    grep -q "\"key\": \"finetune $name\"" .gpu/previous.jsonl 2>/dev/null && return 0
    cat > "/tmp/$name.json" <<JSON
{"name": "gpu $name", "data": {"source": ".gpu/hymenoptera", "split_seed": 0},
 "freeze": {"strategy": "fine_tune", "head_epochs": 1, "lr_spread": 10}, "optimizer": {"lr": 0.001},
 "augment": {"preset": "light"}, "early_stopping": {"patience": 0}, "epochs": 4, "batch_size": $batch,
 "compile": $compile}
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
finetune batch32 32 false
left=$(( 420 - ($(date +%s) - started) ))
python3 bench/gpu_check.py --data .gpu/hymenoptera --out "$OUT" --budget-s "$left" --previous "$OUT/gpu_check.jsonl"
if [ $(( $(date +%s) - started )) -lt 360 ]; then
    finetune auto-compiled auto true
else
    echo "no time left for the batch-size-auto + compile fine-tune: run again with .gpu/previous.jsonl"
fi
python3 - "$OUT" <<'PY'
import json, sys
from pathlib import Path
rows = [json.loads(line) for line in (Path(sys.argv[1]) / "gpu_check.jsonl").read_text().splitlines()]
lines = ["| fine-tune on the GPU (EfficientNet-Lite0, 4 epochs) | batch | lr | test accuracy | s per epoch | wall s |",
         "| --- | --- | --- | --- | --- | --- |"]
for r in rows:
    if r["key"].startswith("finetune"):
        lines.append(f"| {r['key']} | {r['batch_size']} | {r['lr']:.3g} | {r['test_accuracy']:.3f} | "
                     f"{', '.join(map(str, r['epoch_seconds']))} | {r['wall_s']} |")
table = "\n".join(lines) + "\n"
print(table)
with open(Path(sys.argv[1]) / "gpu_check.md", "a") as fh:
    fh.write("\n" + table)
PY
echo "gpu_check.sh: $(( $(date +%s) - started )) s"
