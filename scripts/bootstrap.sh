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
    exec python3 scripts/run-tests.py "$BUILD_DIR"
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
