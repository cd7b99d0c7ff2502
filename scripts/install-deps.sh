#!/usr/bin/env bash
# Installs the Debian 12 packages qtune needs (idempotent: does nothing when all are present).
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh demo       also what the demo needs (KJV text, sentencepiece trainer, jq)
#   scripts/install-deps.sh reference  also Debian's PyTorch (to regenerate reference dumps, run peers)
#   scripts/install-deps.sh fuzz       also clang with libFuzzer and its OpenMP (the fuzz/ harnesses)
#   scripts/install-deps.sh dit        also Fashion-MNIST (IDX files under /usr/share/datasets/fashion-mnist)
set -euo pipefail

pkgs=(g++ cmake ninja-build pkg-config make libfmt-dev nlohmann-json3-dev libcli11-dev libsentencepiece-dev
      libopenblas-dev libdnnl-dev ocl-icd-opencl-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libpng-dev
      libopenmpi-dev openmpi-bin)  # MPI: data-parallel finetune under mpirun (the MpiCli tests)
# ocl-icd-opencl-dev: Debian's oneDNN is built with the OpenCL GPU runtime, so its CMake config
# requires OpenCL's headers and library; apt only recommends them and we install without recommends.
for extra in "$@"; do
  case "$extra" in
    demo) pkgs+=(bible-kjv sentencepiece jq) ;;
    reference) pkgs+=(python3-torch python3-numpy libopenblas0-pthread) ;;
    fuzz) pkgs+=(clang libclang-rt-14-dev libomp-dev llvm ccache) ;;  # llvm: llvm-symbolizer for the reports
    dit) pkgs+=(dataset-fashion-mnist) ;;
    *) echo "install-deps.sh: unknown extra '$extra' (use: demo, reference, fuzz, dit)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 2; }
  sudo="sudo"
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
