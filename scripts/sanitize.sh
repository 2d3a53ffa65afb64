#!/usr/bin/env bash
# Builds the whole project with AddressSanitizer + UndefinedBehaviorSanitizer
# (gcc, -Db_sanitize=address,undefined -Db_lundef=false) in build-asan and
# runs the unit tests there with leak detection on. Prints the same summary
# as scripts/run-tests.py: `N passed, N failed, N skipped`.
#
#   scripts/sanitize.sh                 unit suite (default)
#   scripts/sanitize.sh --suite e2e     any `meson test` selection instead
#
# Environment: SANITIZE_BUILD_DIR (default build-asan), SANITIZE_JOBS
# (ninja -j, default 2), SANITIZE_SETUP_ARGS (extra `meson setup` options
# for a new build dir, e.g. -Dlauncher=disabled). docs/hardening.md explains the options and the
# (empty) leak suppression list.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${SANITIZE_BUILD_DIR:-build-asan}
JOBS=${SANITIZE_JOBS:-2}

# gcc leaves float-cast-overflow out of -fsanitize=undefined; peers send
# AMF0 numbers that the code converts to integers, so it is added.
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false \
    -Dcpp_args=-fsanitize=float-cast-overflow -Dcpp_link_args=-fsanitize=float-cast-overflow \
    ${SANITIZE_SETUP_ARGS:-}
fi
ninja -C "$BUILD" -j"$JOBS"

# abort_on_error: a report ends the test with a signal, so meson counts it.
# detect_leaks: LeakSanitizer at exit of every test executable.
# halt_on_error (UBSan): the first undefined behaviour fails the test.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# One-time allocations of GLib/GIO/GStreamer that are reachable only
# through static pointers are not leaks of ours; the file lists the ones
# seen, each with its reason. Empty means none were needed.
SUPP="$(pwd)/scripts/lsan.supp"
if [ -s "$SUPP" ]; then
  export LSAN_OPTIONS="suppressions=$SUPP:print_suppressions=0"
fi
# GLib's slice allocator hides leaks from the sanitizer; plain malloc
# makes every GLib allocation visible.
export G_SLICE=always-malloc
export G_DEBUG=gc-friendly

if [ $# -eq 0 ]; then
  set -- --suite unit
fi
exec python3 scripts/run-tests.py "$BUILD" "$@"
