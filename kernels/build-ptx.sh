#!/usr/bin/env bash
# Compiles every kernels/*.cu with nvcc 13.0 (warnings are errors):
#   - compute_80 PTX into kernels/ptx/<file>.ptx (checked in, embedded in the binary);
#   - sm_90 cubins with ptxas -v, whose register / shared memory / spill report becomes
#     the table kernels/ptx/resources.md (copied into kernels/README.md).
# `--check` regenerates into a temporary folder and fails if the checked-in PTX differs.
# nvcc: $NVCC, else `nvcc` on PATH, else the pinned PyPI wheels' (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")"
check=0
[[ "${1:-}" == "--check" ]] && check=1
if [[ -z "${NVCC:-}" ]]; then
  if command -v nvcc >/dev/null; then
    NVCC=nvcc
  else
    wheel="$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))' 2>/dev/null || true)"
    NVCC="$wheel/bin/nvcc"
  fi
fi
if [[ ! -x "$(command -v "$NVCC" || true)" ]]; then
  echo "build-ptx: nvcc not found: set NVCC, or pip install the pinned nvidia-cuda-nvcc wheels (.ci/run)" >&2
  exit 1
fi
include="$(dirname "$(dirname "$(command -v "$NVCC")")")/include"
out=ptx
if [[ $check == 1 ]]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"
flags=(-std=c++17 -I"$include" -I. -Werror all-warnings -Xptxas -warn-spills -Xptxas -Werror)
report="$(mktemp)"
for cu in *.cu; do
  name="${cu%.cu}"
  "$NVCC" -ptx -arch=compute_80 "${flags[@]}" -o "$out/$name.ptx" "$cu"
  "$NVCC" -cubin -arch=sm_90 "${flags[@]}" -Xptxas -v -o "$out/$name.sm_90.cubin" "$cu" 2>>"$report"
  rm -f "$out/$name.sm_90.cubin"
done
python3 - "$report" > "$out/resources.md" <<'PY'
import re, sys
rows, cur = [], None
for line in open(sys.argv[1]):
    m = re.search(r"Compiling entry function '(\w+)'", line)
    if m:
        cur = {"name": m.group(1)}
        rows.append(cur)
        continue
    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m and cur:
        cur["stack"], cur["spill"] = m.group(1), f"{m.group(2)} / {m.group(3)}"
    m = re.search(r"Used (\d+) registers", line)
    if m and cur:
        s = re.search(r"(\d+) bytes smem", line)
        cur["regs"], cur["smem"] = m.group(1), s.group(1) if s else "0"
print("| kernel (sm_90) | registers | static shared memory (bytes) | stack (bytes) | spill stores / loads (bytes) |")
print("| --- | --- | --- | --- | --- |")
for r in sorted(rows, key=lambda r: r["name"]):
    print(f"| `{r['name']}` | {r.get('regs', '?')} | {r.get('smem', '?')} | {r.get('stack', '?')} | {r.get('spill', '?')} |")
PY
rm -f "$report"
# kernels/README.md carries the same table between its resource markers.
readme_table() {
  python3 - "$1" "$2" <<'PY'
import sys
readme, table = open(sys.argv[1]).read(), open(sys.argv[2]).read()
start, end = "<!-- resources: kernels/build-ptx.sh writes this table -->\n", "<!-- /resources -->"
a, b = readme.find(start), readme.find(end)
if a < 0 or b < a:
    sys.exit("build-ptx: kernels/README.md lacks the resource markers")
print(readme[: a + len(start)] + table + readme[b:], end="")
PY
}
if [[ $check == 1 ]]; then
  status=0
  if ! readme_table README.md "$out/resources.md" | cmp -s - README.md; then
    echo "build-ptx --check: the resource table in kernels/README.md is not ptxas's: run kernels/build-ptx.sh and commit" >&2
    status=1
  fi
  for cu in *.cu; do
    name="${cu%.cu}"
    if ! cmp -s "$out/$name.ptx" "ptx/$name.ptx"; then
      echo "build-ptx --check: kernels/ptx/$name.ptx is not what kernels/$cu compiles to: run kernels/build-ptx.sh and commit" >&2
      status=1
    fi
  done
  for ptx in ptx/*.ptx; do
    base="$(basename "$ptx" .ptx)"
    if [[ ! -f "$base.cu" ]]; then
      echo "build-ptx --check: kernels/$ptx has no kernels/$base.cu" >&2
      status=1
    fi
  done
  exit $status
fi
readme_table README.md ptx/resources.md > README.md.new && mv README.md.new README.md
echo "PTX in kernels/ptx/, resources in kernels/ptx/resources.md and kernels/README.md"
