#!/usr/bin/env bash
# Every kernel comparison on a real GPU, with a first timing of each kernel, in one command.
#
#   kernels/gpu-check.sh --build   here (Rust, no GPU): builds the library's test binary in
#                                  release mode, strips it and packs it (xz) into
#                                  target-gpu/lakebuild-tests.xz, small enough to carry to
#                                  the GPU machine (64 MiB at most).
#   kernels/gpu-check.sh           on the GPU machine (the NVIDIA driver, no Rust): unpacks
#                                  it and runs every test of src/jp_equity/model/gpu/ — the
#                                  shim comparisons, then the same ones through cudarc on
#                                  GPU 0, fp32 and fp16 — with LAKEBUILD_REQUIRE_GPU=1 (no
#                                  GPU is a failure here, not a skip) and
#                                  LAKEBUILD_KERNEL_TIMING=1 (each kernel's launches and
#                                  time, per test) and LAKEBUILD_KERNEL_REPORT=1 (every
#                                  comparison's relative L2 and cosine, shim and GPU).
#                                  Output: target-gpu/gpu-check.log, and
#                                  $OUT/gpu-check.log when $OUT is set.
set -euo pipefail
cd "$(dirname "$0")/.."
pack=target-gpu/lakebuild-tests.xz
if [[ "${1:-}" == "--build" ]]; then
  mkdir -p target-gpu
  exe="$(cargo test --release --lib --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "lakebuild" and m["profile"]["test"]:
        print(m["executable"])
')"
  [[ -n "$exe" ]] || { echo "gpu-check: the release test binary was not built" >&2; exit 1; }
  strip -o target-gpu/lakebuild-tests "$exe"
  xz -T0 -9 -c target-gpu/lakebuild-tests > "$pack"
  rm -f target-gpu/lakebuild-tests
  ls -l "$pack"
  exit 0
fi
[[ -f "$pack" ]] || { echo "gpu-check: $pack is missing: run kernels/gpu-check.sh --build on a machine with Rust" >&2; exit 1; }
log=target-gpu/gpu-check.log
bin="$(mktemp)"
trap 'rm -f "$bin"' EXIT
xz -dc "$pack" > "$bin"
chmod +x "$bin"
{
  echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo 'nvidia-smi: not found')"
  LAKEBUILD_REQUIRE_GPU=1 LAKEBUILD_KERNEL_TIMING=1 LAKEBUILD_KERNEL_REPORT=1 "$bin" jp_equity::model::gpu:: --test-threads=1 --nocapture
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
[[ -n "${OUT:-}" ]] && cp "$log" "$OUT/gpu-check.log"
exit "$status"
