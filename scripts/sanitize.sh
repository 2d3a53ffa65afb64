#!/usr/bin/env bash
# Builds the whole project with AddressSanitizer + UndefinedBehaviorSanitizer
# (gcc, -Db_sanitize=address,undefined -Db_lundef=false) in build-asan and
# runs the test suite there — unit, gst and e2e — with leak detection on.
# Prints the same summary as scripts/run-tests.py: `N passed, N failed, N skipped`.
#
#   scripts/sanitize.sh                 unit + gst + e2e suites (default; not the
#                                       'not-sanitized' suite, see tests/meson.build)
#   scripts/sanitize.sh --suite unit    any `meson test` selection instead
#
# Processes: our executables (tests, test server/client, launcher,
# gst-rtmp-client, examples) are built sanitized and check leaks at exit;
# gst-launch-1.0/gst-inspect-1.0 get the ASan runtime preloaded
# (GRTMP_ASAN_PRELOAD, see tests/interop/rtmptest.py gst_env) so they can
# load the sanitized plugin: memory errors and UB are fatal there too.
#
# Environment: SANITIZE_BUILD_DIR (default build-asan), SANITIZE_JOBS
# (ninja -j, default 2), SANITIZE_SETUP_ARGS (extra `meson setup` options
# for a new build dir). docs/hardening.md explains the options and the
# leak suppression list.
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
# fast_unwind_on_malloc=0: GLib and GStreamer are built without frame
# pointers, so the fast unwinder stops at g_malloc; the slow one gives whole
# allocation stacks, which the suppressions below need.
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1:fast_unwind_on_malloc=0:intercept_tls_get_addr=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# One-time allocations of GLib/GIO/GStreamer (plugin registry, type
# classes, loaded modules) that LeakSanitizer cannot see through are not
# leaks of ours; the file lists the ones seen, each with its reason.
SUPP="$(pwd)/scripts/lsan.supp"
if [ -s "$SUPP" ]; then
  export LSAN_OPTIONS="suppressions=$SUPP:print_suppressions=0"
fi
# GLib's slice allocator hides leaks from the sanitizer; plain malloc
# makes every GLib allocation visible.
export G_SLICE=always-malloc
export G_DEBUG=gc-friendly

export GRTMP_ASAN_PRELOAD="$(${CC:-gcc} -print-file-name=libasan.so)"
# (tests/meson.build sets GST_REGISTRY_FORK=no for the gst-check tests of a
# sanitized build: the unsanitized gst-plugin-scanner cannot load the plugin.)

if [ $# -eq 0 ]; then
  # tests/meson.build puts what is not yet clean under sanitizers in the
  # 'not-sanitized' suite (docs/hardening.md lists them and why).
  set -- --suite unit --suite gst --suite e2e --no-suite not-sanitized
fi
# Sanitized code runs 2-3x slower: give meson's per-test timeouts room.
exec python3 scripts/run-tests.py "$BUILD" --timeout-multiplier 3 "$@"
