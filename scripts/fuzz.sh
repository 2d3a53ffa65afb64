#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang and runs each for SECONDS
# (default 60), one after the other, seeded from golden/ (docs/hardening.md
# says which vectors seed which target). Prints one line per target:
#   fuzz: <target> seconds=S execs=N corpus=C findings=F
# and a last line `e2e: N passed, M failed` (passed = targets that ran clean).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_WORK_DIR (corpora
# and crash artifacts, default $FUZZ_BUILD_DIR/fuzz-work; corpora grow
# across runs), FUZZ_JOBS (ninja -j, default 2), FUZZ_ARGS (extra libFuzzer
# flags), FUZZ_KNOWN_BUGS=0 (also stop on the open bugs listed in
# fuzz/known-bugs.supp and FUZZ_KNOWN_CRITICALS, which are skipped by default
# so that fuzzing goes on past them). Exit: 0 all clean, 1 findings or build failure, 77 no clang or no
# libFuzzer runtime (skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$(pwd)

SECS=${1:-60}
[ $# -gt 0 ] && shift
ALL_TARGETS=(fuzz_chunk_reader fuzz_amf0 fuzz_handshake_server fuzz_handshake_client fuzz_session fuzz_flv)
TARGETS=("$@")
[ ${#TARGETS[@]} -eq 0 ] && TARGETS=("${ALL_TARGETS[@]}")
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
WORK=${FUZZ_WORK_DIR:-$BUILD/fuzz-work}
JOBS=${FUZZ_JOBS:-2}

# ---- toolchain: clang++ with the libFuzzer runtime (Debian: clang, libclang-rt-14-dev)
CXX_FUZZ=${CXX_FUZZ:-clang++}
CC_FUZZ=${CC_FUZZ:-clang}
if ! command -v "$CXX_FUZZ" >/dev/null 2>&1; then
  echo "fuzz: SKIP: $CXX_FUZZ not found (install clang libclang-rt-14-dev)"
  exit 77
fi
probe_dir=$(mktemp -d)
trap 'rm -rf "$probe_dir"' EXIT
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' >"$probe_dir/p.cpp"
if ! "$CXX_FUZZ" -fsanitize=fuzzer,address,undefined "$probe_dir/p.cpp" -o "$probe_dir/p" >/dev/null 2>&1; then
  echo "fuzz: SKIP: $CXX_FUZZ cannot link -fsanitize=fuzzer,address,undefined (install libclang-rt-14-dev)"
  exit 77
fi

# ---- build (a separate clang build dir; only the fuzz targets are built)
if [ ! -f "$BUILD/build.ninja" ]; then
  CC=$CC_FUZZ CXX=$CXX_FUZZ meson setup "$BUILD" -Dfuzzing=true --buildtype=debugoptimized \
    -Dinterop_tests=false -Dgstreamer=disabled -Dlauncher=disabled -Dbenchmarks=disabled >"$probe_dir/setup.log" 2>&1 ||
    { cat "$probe_dir/setup.log"; echo "fuzz: meson setup failed"; echo "e2e: 0 passed, ${#TARGETS[@]} failed"; exit 1; }
fi
if ! ninja -C "$BUILD" -j"$JOBS" fuzz-targets >"$probe_dir/build.log" 2>&1; then
  tail -50 "$probe_dir/build.log"
  echo "fuzz: build failed"
  echo "e2e: 0 passed, ${#TARGETS[@]} failed"
  exit 1
fi

# ---- seeds from golden/ (a prefix byte selects the target's options; see docs/hardening.md)
G=$SRC/golden
seed() {  # seed TARGET NAME PREFIX_HEX FILE...
  local t=$1 name=$2 pfx=$3
  shift 3
  local out="$WORK/seeds/$t/$name"
  { [ -n "$pfx" ] && printf "$pfx"; cat "$@"; } >"$out"
}
make_seeds() {
  local t=$1 f b
  rm -rf "$WORK/seeds/$t"
  mkdir -p "$WORK/seeds/$t"
  case $t in
    fuzz_chunk_reader)
      for f in "$G"/chunk/*.bin "$G"/captures/*-c2s.bin "$G"/captures/*-s2c.bin; do
        seed "$t" "$(basename "$f")" '\x00' "$f"
        seed "$t" "small-$(basename "$f")" '\x08' "$f"      # small limits
        seed "$t" "sliced-$(basename "$f")" '\x03\x00\x06\xff' "$f"  # 1, 7, rest
      done ;;
    fuzz_amf0)
      for f in "$G"/amf0/*.bin "$G"/command/*.bin; do
        seed "$t" "$(basename "$(dirname "$f")")-$(basename "$f")" '' "$f"
      done ;;
    fuzz_handshake_server)
      for s in simple digest_scheme0 digest_scheme1; do
        c2="$G/handshake/c2_$s.bin"; [ -f "$c2" ] || c2="$G/handshake/c2_digest_scheme0.bin"
        seed "$t" "hs-$s" '\x00' "$G/handshake/c0c1_$s.bin" "$c2"
        seed "$t" "hs-$s-digest" '\x08' "$G/handshake/c0c1_$s.bin" "$c2"
      done
      for f in "$G"/captures/*-c0c1.bin; do
        b=${f%-c0c1.bin}
        seed "$t" "$(basename "$b")" '\x08' "$f" "$b-c2.bin"
        seed "$t" "$(basename "$b")-bytewise" '\x01\x00' "$f" "$b-c2.bin"
      done ;;
    fuzz_handshake_client)
      for f in "$G"/handshake/s0s1s2_*.bin "$G"/captures/*-s0s1s2.bin; do
        seed "$t" "$(basename "$f")" '\x00' "$f"
        seed "$t" "simple-$(basename "$f")" '\x08' "$f"
      done ;;
    fuzz_session)
      for f in "$G"/captures/*-c0c1.bin; do
        b=${f%-c0c1.bin}
        seed "$t" "raw-$(basename "$b")" '\x00\x00' "$f" "$b-c2.bin" "$b-c2s.bin"
        seed "$t" "hs-$(basename "$b")" '\x01\x00' "$b-c2s.bin"
        seed "$t" "auth-$(basename "$b")" '\x05\x00' "$b-c2s.bin"
      done
      seed "$t" "ffmpeg-publish-ext" '\x01\x00' "$G/chunk/ffmpeg51_publish_ext.bin"
      seed "$t" "ffmpeg-publish-ext-small" '\x09\x02\x7f\xff' "$G/chunk/ffmpeg51_publish_ext.bin"
      for f in "$G"/chunk/*.bin; do
        seed "$t" "published-$(basename "$f")" '\x02\x00' "$f"
      done
      seed "$t" "connected" '\x03\x00' /dev/null ;;
    fuzz_flv)
      for f in "$G"/flv/*.bin "$G"/flv/*.flv "$G"/media/*.bin; do
        seed "$t" "$(basename "$f")" '\x00' "$f"
      done
      seed "$t" "av_small-sliced" '\x02\x0a\xff' "$G/flv/av_small.flv" ;;
  esac
}

max_len() {
  case $1 in
    fuzz_handshake_server|fuzz_handshake_client) echo 8192 ;;
    fuzz_session|fuzz_chunk_reader) echo 32768 ;;
    *) echo 16384 ;;
  esac
}

passed=0
failed=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
ubsan="print_stacktrace=1:halt_on_error=1"
# Open lib bugs that already have a regression test (fuzz/known-bugs.supp).
[ "${FUZZ_KNOWN_BUGS:-1}" != 0 ] && ubsan="$ubsan:suppressions=$SRC/fuzz/known-bugs.supp"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-$ubsan}
# GLib criticals abort a target unless they are an open, reported bug: list
# '|'-separated message substrings here while one is open (R4, a set GError
# reused after a framing error, was listed until its fix in 06bfc00).
if [ "${FUZZ_KNOWN_BUGS:-1}" != 0 ]; then
  export FUZZ_KNOWN_CRITICALS=${FUZZ_KNOWN_CRITICALS:-}
fi
for t in "${TARGETS[@]}"; do
  exe="$BUILD/fuzz/$t"
  if [ ! -x "$exe" ]; then
    echo "fuzz: $t: no such target"
    failed=$((failed + 1))
    continue
  fi
  make_seeds "$t"
  corpus="$WORK/corpus/$t"
  art="$WORK/artifacts/$t"
  mkdir -p "$corpus" "$art"
  before=$(ls "$art" | wc -l)
  dict=()
  case $t in fuzz_amf0|fuzz_session) dict=(-dict="$SRC/fuzz/rtmp.dict") ;; esac
  log="$WORK/$t.log"
  # shellcheck disable=SC2086
  "$exe" -max_total_time="$SECS" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$art/" "${dict[@]}" ${FUZZ_ARGS:-} \
    "$corpus" "$WORK/seeds/$t" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  corp=$(ls "$corpus" | wc -l)
  after=$(ls "$art" | wc -l)
  findings=$((after - before))
  [ "$rc" -ne 0 ] && [ "$findings" -eq 0 ] && findings=1
  echo "fuzz: $t seconds=$SECS execs=${execs:-0} corpus=$corp findings=$findings"
  if [ "$findings" -ne 0 ]; then
    failed=$((failed + 1))
    grep -E 'ERROR: |runtime error|INVARIANT|SUMMARY|Test unit written' "$log" | head -8 | sed 's/^/  /'
    echo "  log: $log"
  else
    passed=$((passed + 1))
  fi
done
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
