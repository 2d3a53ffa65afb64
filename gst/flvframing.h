// FLV framing shared by the elements.
//
// Packetizer: RTMP messages of one stream -> a live `video/x-flv` stream
// (rtmpserversrc pads, rtmpclientsrc): streamheader caps (FLV file header,
// onMetaData, sequence headers, all flagged HEADER), the same headers
// in-band, then one whole tag per buffer (11-byte header + shared payload
// + previous tag size as three GstMemory blocks), timestamps rebased to
// the pipeline's running time and kept monotonic across 32-bit wraps.
//
// Depacketizer: `video/x-flv` buffers (flvmux, rtmpserversrc, files) ->
// RTMP messages (rtmpserversink, rtmpclientsink).
#pragma once

#include <gst/gst.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "grtmp/bytes.h"
#include "grtmp/flv.h"
#include "grtmp/message.h"
#include "grtmp/registry.h"

namespace grtmp::gst {

// RAII for GStreamer references.
struct BufferUnref {
  void operator()(GstBuffer* b) const { gst_buffer_unref(b); }
};
struct CapsUnref {
  void operator()(GstCaps* c) const { gst_caps_unref(c); }
};

// A GstMemory that references `b` (zero copy); nullptr for empty bytes.
GstMemory* memory_from_bytes(const Bytes& b);
// One FLV tag as a buffer of three memories: tag header, payload (shares
// the payload's GBytes) and previous tag size.
GstBuffer* tag_buffer(uint8_t tag_type, uint32_t timestamp_ms, const Bytes& payload);
// The 13-byte FLV file header (with PreviousTagSize0).
GstBuffer* file_header_buffer(bool has_audio, bool has_video);
// `video/x-flv, streamheader=<headers>`; headers get GST_BUFFER_FLAG_HEADER.
GstCaps* flv_caps(const std::vector<GstBuffer*>& headers);

// Wrap-aware extension of 32-bit millisecond timestamps to 64 bits.
class TimestampExtender {
 public:
  int64_t extend(uint32_t ts) {
    if (!started_) {
      started_ = true;
      last_ = ts;
      ext_ = ts;
      return ext_;
    }
    ext_ += int32_t(ts - last_);
    last_ = ts;
    return ext_;
  }
  void reset() { started_ = false; }

 private:
  bool started_ = false;
  uint32_t last_ = 0;
  int64_t ext_ = 0;
};

class FlvPacketizer {
 public:
  // What one call produced, in push order: a caps item applies to the
  // buffers after it. The caller owns the references.
  struct Item {
    GstCaps* caps = nullptr;      // exactly one of caps / buffer is set
    GstBuffer* buffer = nullptr;
  };
  struct Output {
    std::vector<Item> items;
    // Set once, with the first caps: the running time of stream time 0.
    // Push a TIME segment {start 0, base segment_base} before the buffers.
    GstClockTime segment_base = GST_CLOCK_TIME_NONE;
    std::vector<std::string> warnings;  // publisher misbehaviour, for GST_ELEMENT_WARNING
    Output() = default;
    Output(const Output&) = delete;
    Output& operator=(const Output&) = delete;
    ~Output();
    bool empty() const { return items.empty(); }
    void add(GstCaps* c) { items.push_back({c, nullptr}); }
    void add(GstBuffer* b) { items.push_back({nullptr, b}); }
    void clear();
  };

  // How long to hold frames waiting for the sequence headers.
  static constexpr int64_t kHeaderWaitUs = G_USEC_PER_SEC;
  static constexpr int64_t kHeaderWaitMs = 1000;
  static constexpr size_t kMaxPendingBytes = 16u << 20;
  // Publisher timestamp jumps beyond these re-anchor (with a warning).
  static constexpr int64_t kMaxBackwardMs = 1000;
  static constexpr int64_t kMaxForwardMs = 10000;

  // `running_time` returns the pipeline's running time now (or
  // GST_CLOCK_TIME_NONE without a clock: timestamps then start at 0).
  explicit FlvPacketizer(std::function<GstClockTime()> running_time);

  // A (re)publish starts: new timestamps base, wait for a keyframe.
  void publish();
  // A message of the stream (audio, video or script data without
  // @setDataFrame); flags as classify_message() gives them.
  void push(const Message& m, uint8_t flags, Output& out);
  void push(const StreamMessage& sm, Output& out) { push(sm.msg, sm.flags, out); }
  // Checks the header wait deadline (call when a wait times out).
  void tick(Output& out);
  // The publisher left: emits what is pending even without all headers.
  void flush(Output& out);

  // Monotonic time (g_get_monotonic_time) at which tick() must run, or 0.
  int64_t deadline_us() const;
  bool ready() const { return ready_; }
  GstCaps* caps() const { return caps_; }  // borrowed, nullptr until ready
  uint64_t tags_out() const { return tags_out_; }
  uint64_t dropped() const { return dropped_; }
  GstClockTime last_dts() const { return last_out_ms_ < 0 ? GST_CLOCK_TIME_NONE : GstClockTime(last_out_ms_) * GST_MSECOND; }

  ~FlvPacketizer();
  FlvPacketizer(const FlvPacketizer&) = delete;
  FlvPacketizer& operator=(const FlvPacketizer&) = delete;

 private:
  bool complete() const;
  void become_ready(Output& out);
  void anchor(Output& out);
  void rebuild_caps(Output& out, bool initial);
  void emit_frame(const Message& m, uint8_t flags, Output& out);
  int64_t rebase(const Message& m, Output& out, bool& discont);
  int64_t now_ms() const;  // stream time now (ms)

  std::function<GstClockTime()> running_time_;
  bool ready_ = false;
  GstCaps* caps_ = nullptr;

  // What the stream announced and sent so far.
  Bytes metadata_, video_header_, audio_header_;
  bool meta_video_ = false, meta_audio_ = false;
  bool saw_video_ = false, saw_audio_ = false;            // any message of the kind
  bool video_frame_ = false, audio_frame_ = false;        // a non-header frame
  bool video_needs_header_ = false, audio_needs_header_ = false;
  bool flags_video_ = false, flags_audio_ = false;        // in the FLV header sent

  std::deque<std::pair<Message, uint8_t>> pending_;
  size_t pending_bytes_ = 0;
  int64_t first_pending_us_ = 0;

  // Timestamps.
  TimestampExtender ext_;
  bool anchored_ = false;
  GstClockTime base_rt_ = GST_CLOCK_TIME_NONE;  // running time of stream time 0
  bool reanchor_ = false;
  bool anchor_in_valid_ = false;
  int64_t anchor_in_ = 0;    // extended input ms of the anchor frame
  int64_t anchor_out_ = 0;   // output ms (stream time) of the anchor frame
  int64_t last_out_ms_ = -1;
  bool need_keyframe_ = true;
  bool discont_ = true;
  uint64_t offset_ = 0;      // byte offset of the next buffer
  uint64_t tags_out_ = 0;
  uint64_t dropped_ = 0;
};

// FLV byte stream -> messages, for the sinks. Streamheader buffers from the
// caps are parsed once; the same headers repeated in-band (HEADER flag) are
// skipped; a new FLV file header in-band restarts the parser.
class FlvDepacketizer {
 public:
  explicit FlvDepacketizer(uint32_t max_tag_size = 16u << 20) : parser_(max_tag_size) {}
  // Returns false with an error for unparsable FLV.
  bool set_caps(GstCaps* caps, std::vector<Message>& out, GError** error);
  bool push(GstBuffer* buf, std::vector<Message>& out, GError** error);
  void reset();
  bool have_caps_headers() const { return caps_headers_; }

 private:
  bool feed(GstBuffer* buf, std::vector<Message>& out, GError** error);
  flv::TagParser parser_;
  bool caps_headers_ = false;
  std::vector<uint8_t> caps_header_bytes_;
  bool fed_anything_ = false;
};

// "onMetaData" script payload? (AMF0 string marker + name).
bool is_on_metadata(const Bytes& payload);
// Byte-equal payloads.
bool same_bytes(const Bytes& a, const Bytes& b);

}  // namespace grtmp::gst
