// "grtmpbranchguard": a launcher-private pass-through element placed in
// front of each branch's sink (queue ! guard ! sink). Whatever the sink
// returns, the guard answers GST_FLOW_OK upstream, so a failing relay
// destination or a full disk never reaches the tee, the rtmpserversrc pad,
// the publisher, the players or the other branches. It counts what went
// through (bytes, buffers, first/last timestamp) and tells its owner about
// the first accepted buffer and the first failure (from the streaming
// thread: the callbacks must only hand work over).
#pragma once

#include <gst/gst.h>

#include <cstdint>

namespace grtmp::launcher {

struct GuardCallbacks {
  // After every accepted buffer until it returns true ("connected" once).
  bool (*on_accepted)(void* user_data) = nullptr;
  // Once, on the first flow error (not OK, not FLUSHING).
  void (*on_failed)(void* user_data, GstFlowReturn ret) = nullptr;
  void* user_data = nullptr;
};

struct GuardStats {
  uint64_t bytes = 0;
  uint64_t buffers = 0;
  GstClockTime first_ts = GST_CLOCK_TIME_NONE;
  GstClockTime last_ts = GST_CLOCK_TIME_NONE;
  bool failed = false;
};

// Registers the element type in this process (not a plugin); idempotent.
void guard_register();
GstElement* guard_new(const char* name);
void guard_set_callbacks(GstElement* guard, const GuardCallbacks& callbacks);
GuardStats guard_stats(GstElement* guard);

}  // namespace grtmp::launcher
