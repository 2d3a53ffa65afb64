// The launcher's per-stream wiring. rtmpserversrc adds one pad per published
// stream; the router hangs branches behind it:
//
//   src_N ─► [tee] ─► queue ─► grtmpbranchguard ─► filesink       (recording)
//                 └─► queue leaky=downstream ─► guard ─► rtmpclientsink  (each -relay-to)
//
// (the tee only when there is more than one branch or any relay, so a relay
// can be re-attached after a failure). A branch ends on EOS (publisher left,
// or shutdown) or on an error of one of its elements; it is removed from the
// main loop. Failed relays come back with exponential backoff (1 s .. 30 s)
// while their stream is live.
//
// Threads: pad-added/pad-removed arrive on the element's threads, EOS probes
// and guard callbacks on streaming threads; they only link (pad-added) or
// hand work to the main loop. Everything else runs on the main loop.
// mutex_ guards streams_ and the state read by snapshot(); it is never held
// across a GStreamer state change.
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "grtmp/server.h"
#include "options.h"

namespace grtmp::launcher {

struct RelaySnapshot {
  std::string url;         // full destination URL
  std::string stream_key;  // source stream
  std::string state;       // connecting, connected, failed, retrying, stopped
  uint32_t retries = 0;
};

struct RouterSnapshot {
  std::map<std::string, std::string> recording_by_key;  // stream key -> file being written
  std::vector<RelaySnapshot> relays;
  std::map<std::string, uint32_t> pads_by_key;  // streams the source element has a pad for
  uint32_t recordings_active = 0;
};

class Router {
 public:
  Router(const Options& options, GstElement* pipeline, GstElement* src);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Connects to the source's pad-added / pad-removed signals.
  void attach();

  // Main loop: an ERROR message. Returns true when it came from a branch
  // (handled: logged, branch removed, relay retried); false = not ours.
  bool handle_error(GstMessage* message);

  // Main loop, periodically: "codecs detected" from the registry.
  void tick(Server* server);

  // Main loop: ends every branch with EOS (recordings are finalized), then
  // calls done() once all recordings are closed or after timeout_ms.
  void shutdown(guint timeout_ms, std::function<void()> done);

  RouterSnapshot snapshot() const;

  // After the pipeline went to NULL: pending main-loop work becomes a no-op
  // (the caller drains the main context, releasing what it holds).
  void stop();

  // Destination for one stream: base URL + "/" + stream name unless the URL
  // already names a stream (rtmp://host/app/name[?query]). A destination
  // carries one stream at a time: the first live stream that maps to it
  // (others are logged "relay skipped").
  static std::string relay_destination(const std::string& base, const std::string& stream_name);
  // {dir}/{app}_{stream}_{YYYYMMDD}_{HHMMSS}.flv (unsafe characters -> '_').
  static std::string recording_basename(const std::string& app, const std::string& name, GDateTime* when);

  struct Stream;
  struct Branch;
  struct Relay;

 private:
  static void pad_added_cb(GstElement* element, GstPad* pad, gpointer user_data);
  static void pad_removed_cb(GstElement* element, GstPad* pad, gpointer user_data);
  void on_pad_added(GstPad* pad);
  void on_pad_removed(GstPad* pad);

  std::shared_ptr<Branch> make_record_branch(const std::shared_ptr<Stream>& s);
  std::shared_ptr<Branch> make_relay_branch(const std::shared_ptr<Stream>& s, const std::shared_ptr<Relay>& r);
  bool start_branch(const std::shared_ptr<Stream>& s, const std::shared_ptr<Branch>& b);
  void teardown(const std::shared_ptr<Branch>& b, const char* reason);
  void finish(const std::shared_ptr<Branch>& b);
  void schedule_retry(const std::shared_ptr<Relay>& r);
  void retry_relay(const std::shared_ptr<Relay>& r);
  void stream_gone(const std::shared_ptr<Stream>& s);
  void maybe_release_tee(const std::shared_ptr<Stream>& s);
  // Stops the drain limits of a gone stream's branches (router stopping).
  void cancel_drain(const std::shared_ptr<Stream>& s);
  void maybe_done();
  std::string unique_record_path(const std::string& app, const std::string& name);

  static GstPadProbeReturn eos_probe(GstPad* pad, GstPadProbeInfo* info, gpointer user_data);
  static GstPadProbeReturn metadata_probe(GstPad* pad, GstPadProbeInfo* info, gpointer user_data);
  static GstPadProbeReturn idle_unlink_probe(GstPad* pad, GstPadProbeInfo* info, gpointer user_data);
  static bool on_guard_accepted(void* user_data);
  static void on_guard_failed(void* user_data, GstFlowReturn ret);

  const Options& options_;
  GstElement* pipeline_;
  GstElement* src_;
  gulong pad_added_id_ = 0, pad_removed_id_ = 0;

  mutable std::mutex mutex_;
  std::map<GstPad*, std::shared_ptr<Stream>> streams_;  // by source pad (live ones)
  std::vector<std::shared_ptr<Stream>> ending_;          // pad gone, branches still closing
  std::vector<std::string> reserved_paths_;              // recording files in use
  std::map<std::string, std::weak_ptr<Stream>> relay_claims_;  // destination URL -> stream relayed there
  uint32_t branch_counter_ = 0;

  bool shutting_down_ = false;
  bool stopped_ = false;  // main loop only
  std::function<void()> shutdown_done_;
  guint shutdown_timer_ = 0;
};

}  // namespace grtmp::launcher
