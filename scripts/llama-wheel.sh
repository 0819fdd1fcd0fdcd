#!/usr/bin/env bash
# Build (once) and install llama-cpp-python into the venv whose python is $1.
#
# PyPI has no Linux wheel for llama-cpp-python, so pip compiles it (~6 min). Its default build
# uses -march=native, which on CPUs that advertise AMX (Sapphire Rapids and later Xeons, and VMs on
# them) emits AMX tile instructions that die with SIGILL ("Illegal instruction") when llama.cpp runs
# them from its OpenMP worker threads. So on x86 we build with GGML_NATIVE=OFF and switch on exactly
# the SIMD features /proc/cpuinfo reports, AMX excluded. pip's own wheel cache ignores CMAKE_ARGS, so
# the wheel is kept in our own cache, keyed by version and flags.
set -euo pipefail
PY="$1"
VERSION="${LLAMA_CPP_VERSION:-0.3.36}"
CACHE="${VLMDYN_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vlmdyn/wheels}"
if "$PY" -c "import llama_cpp, sys; sys.exit(0 if llama_cpp.__version__ == '$VERSION' else 1)" 2>/dev/null; then
  exit 0
fi
flags=""
if [ "$(uname -m)" = "x86_64" ] && [ -r /proc/cpuinfo ]; then
  have() { grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -qx "$1"; }
  flags="-DGGML_NATIVE=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  have sse4_2 && flags="$flags -DGGML_SSE42=ON"
  have avx && flags="$flags -DGGML_AVX=ON"
  have avx2 && flags="$flags -DGGML_AVX2=ON"
  have fma && flags="$flags -DGGML_FMA=ON"
  have f16c && flags="$flags -DGGML_F16C=ON"
  have bmi2 && flags="$flags -DGGML_BMI2=ON"
  have avx_vnni && flags="$flags -DGGML_AVX_VNNI=ON"
  if have avx512f && have avx512cd && have avx512vl && have avx512dq && have avx512bw; then
    flags="$flags -DGGML_AVX512=ON"
    have avx512vbmi && flags="$flags -DGGML_AVX512_VBMI=ON"
    have avx512_vnni && flags="$flags -DGGML_AVX512_VNNI=ON"
    have avx512_bf16 && flags="$flags -DGGML_AVX512_BF16=ON"
  fi
fi
key="$(printf '%s %s' "$VERSION" "$flags" | sha256sum | cut -c1-12)"
dir="$CACHE/llama-cpp-python-$VERSION-$key"
if ! ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "compiling llama-cpp-python $VERSION (once, about 6 minutes; cached in $dir)" >&2
  mkdir -p "$dir.tmp"
  CMAKE_ARGS="$flags ${CMAKE_ARGS:-}" "$PY" -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
    -w "$dir.tmp" "llama-cpp-python==$VERSION"
  rm -rf "$dir" && mv "$dir.tmp" "$dir"
fi
"$PY" -m pip install -q "$dir"/llama_cpp_python-*.whl
