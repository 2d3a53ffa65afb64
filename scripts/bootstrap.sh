#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine:
#   scripts/bootstrap.sh run    install packages, build, start the launcher
#                               on localhost:1935 with recording on
#   scripts/bootstrap.sh test   install packages, build, run every test
#   scripts/bootstrap.sh deps | build
# Runs as root, or uses sudo for the package step.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  # build
  meson ninja-build g++ pkg-config python3 clang libclang-rt-14-dev
  libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libsoup-3.0-dev
  libgtest-dev libbenchmark-dev
  # runtime of the plugin and launcher
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good glib-networking
  # real peers the tests talk to
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  ffmpeg rtmpdump nginx-light libnginx-mod-rtmp
  # gst-rtmp-client's window mode is tested on a virtual display
  xvfb gstreamer1.0-x
  # test certificates for RTMPS
  openssl
)

deps() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
  # The nginx service is not needed: tests start their own nginx-rtmp.
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now nginx >/dev/null 2>&1 || true; fi
}

BUILD_DIR=${BUILD_DIR:-build}

build() {
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    meson setup "$BUILD_DIR" --buildtype=debugoptimized
  fi
  ninja -C "$BUILD_DIR"
}

case "${1:-}" in
  deps) deps ;;
  build) deps; build ;;
  test)
    deps
    build
    # Two runs: the whole suite under ASan + UBSan + LeakSanitizer
    # (scripts/sanitize.sh, build-asan), then the normal build. The last
    # line sums both. GRTMP_SANITIZE=0 skips the sanitized run.
    summary=$(mktemp)
    export GRTMP_SUMMARY_FILE="$summary"
    # deps installed every peer: a test that finds one missing fails instead
    # of skipping (tests/interop/rtmptest.py missing_peer, tests/gst).
    export GRTMP_REQUIRE_PEERS="${GRTMP_REQUIRE_PEERS:-1}"
    status=0
    if [ "${GRTMP_SANITIZE:-1}" != 0 ]; then
      echo "== sanitized run: ASan + UBSan build in build-asan, unit + gst + e2e suites"
      if ! bash scripts/sanitize.sh; then status=1; fi
      # A build failure ends sanitize.sh before it counts anything.
      grep -q '^build-asan ' "$summary" || { echo "build-asan 0 1 0" >> "$summary"; status=1; }
    fi
    echo "== normal run: $BUILD_DIR, every suite"
    if ! python3 scripts/run-tests.py "$BUILD_DIR"; then status=1; fi
    grep -q "^$BUILD_DIR " "$summary" || { echo "$BUILD_DIR 0 1 0" >> "$summary"; status=1; }
    echo "== total ($(awk '{printf "%s%s: %d passed, %d failed, %d skipped", (NR > 1 ? "; " : ""), $1, $2, $3, $4}' "$summary"))"
    awk '{p+=$2; f+=$3; s+=$4} END {printf "%d passed, %d failed, %d skipped\n", p, f, s}' "$summary"
    rm -f "$summary"
    exit $status
    ;;
  run)
    deps
    build
    shift
    exec "$BUILD_DIR/gst/launcher/gst-rtmp-server" -listen localhost:1935 -log-level info \
      -record-all true -record-dir ./recordings "$@"
    ;;
  *)
    echo "usage: $0 run|test|deps|build" >&2
    exit 2
    ;;
esac
