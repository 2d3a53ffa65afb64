#include "flvframing.h"

#include <cstring>

#include "grtmp/amf0.h"
#include "grtmp/command.h"
#include "grtmp/error.h"
#include "grtmp/media.h"

namespace grtmp::gst {

// ---------------------------------------------------------------- buffers

GstMemory* memory_from_bytes(const Bytes& b) {
  if (b.empty()) return nullptr;
  GBytes* ref = b.ref();
  gsize size = 0;
  gconstpointer data = g_bytes_get_data(ref, &size);
  return gst_memory_new_wrapped(GST_MEMORY_FLAG_READONLY, const_cast<gpointer>(data), size, 0, size, ref,
                                reinterpret_cast<GDestroyNotify>(g_bytes_unref));
}

GstBuffer* tag_buffer(uint8_t tag_type, uint32_t timestamp_ms, const Bytes& payload) {
  // One 15-byte allocation holds the tag header and the previous tag size;
  // the buffer shares it as two memories around the payload.
  const uint32_t size = uint32_t(payload.size());
  GstMemory* frame = gst_allocator_alloc(nullptr, flv::kTagHeaderSize + flv::kPrevTagSizeSize, nullptr);
  GstMapInfo map;
  gst_memory_map(frame, &map, GST_MAP_WRITE);
  auto h = flv::encode_tag_header(tag_type, size, timestamp_ms);
  auto p = flv::encode_prev_tag_size(uint32_t(flv::kTagHeaderSize + size));
  memcpy(map.data, h.data(), h.size());
  memcpy(map.data + flv::kTagHeaderSize, p.data(), p.size());
  gst_memory_unmap(frame, &map);

  GstBuffer* buf = gst_buffer_new();
  gst_buffer_append_memory(buf, gst_memory_share(frame, 0, flv::kTagHeaderSize));
  if (GstMemory* m = memory_from_bytes(payload)) gst_buffer_append_memory(buf, m);
  gst_buffer_append_memory(buf, gst_memory_share(frame, flv::kTagHeaderSize, flv::kPrevTagSizeSize));
  gst_memory_unref(frame);
  return buf;
}

GstBuffer* file_header_buffer(bool has_audio, bool has_video) {
  auto h = flv::file_header(has_audio, has_video);
  return gst_buffer_new_memdup(h.data(), h.size());
}

GstCaps* flv_caps(const std::vector<GstBuffer*>& headers) {
  GstCaps* caps = gst_caps_new_empty_simple("video/x-flv");
  GValue array = G_VALUE_INIT;
  g_value_init(&array, GST_TYPE_ARRAY);
  for (GstBuffer* b : headers) {
    GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_HEADER);
    GValue v = G_VALUE_INIT;
    g_value_init(&v, GST_TYPE_BUFFER);
    g_value_set_boxed(&v, b);
    gst_value_array_append_and_take_value(&array, &v);
  }
  gst_structure_take_value(gst_caps_get_structure(caps, 0), "streamheader", &array);
  return caps;
}

bool is_on_metadata(const Bytes& payload) {
  static const char kName[] = "onMetaData";
  const size_t n = sizeof(kName) - 1;
  if (payload.size() < 3 + n) return false;
  const uint8_t* d = payload.data();
  return d[0] == 0x02 && load_u24(d) == ((0x02u << 16) | n) && memcmp(d + 3, kName, n) == 0;
}

bool same_bytes(const Bytes& a, const Bytes& b) {
  return a.size() == b.size() && (a.size() == 0 || memcmp(a.data(), b.data(), a.size()) == 0);
}

namespace {

// Whether frames of this codec cannot be decoded without a sequence header.
bool video_needs_header(const Bytes& payload) {
  media::VideoInfo vi;
  if (!media::inspect_video(payload.data(), payload.size(), vi)) return false;
  return vi.enhanced || vi.codec_id == media::kVideoAvc || vi.codec_id == media::kVideoHevcLegacy;
}

bool audio_needs_header(const Bytes& payload) {
  media::AudioInfo ai;
  if (!media::inspect_audio(payload.data(), payload.size(), ai)) return false;
  if (ai.sound_format == media::kAudioAac) return true;
  if (!ai.enhanced) return false;
  return ai.fourcc == media::fourcc('O', 'p', 'u', 's') || ai.fourcc == media::fourcc('f', 'L', 'a', 'C') ||
         ai.fourcc == media::fourcc('m', 'p', '4', 'a');
}

}  // namespace

// ---------------------------------------------------------------- packetizer

FlvPacketizer::Output::~Output() { clear(); }

void FlvPacketizer::Output::clear() {
  for (Item& i : items) {
    if (i.caps) gst_caps_unref(i.caps);
    if (i.buffer) gst_buffer_unref(i.buffer);
  }
  items.clear();
  warnings.clear();
}

FlvPacketizer::FlvPacketizer(std::function<GstClockTime()> running_time)
    : running_time_(std::move(running_time)) {}

FlvPacketizer::~FlvPacketizer() {
  if (caps_) gst_caps_unref(caps_);
}

int64_t FlvPacketizer::now_ms() const {
  GstClockTime rt = running_time_ ? running_time_() : GST_CLOCK_TIME_NONE;
  if (!GST_CLOCK_TIME_IS_VALID(rt) || !GST_CLOCK_TIME_IS_VALID(base_rt_) || rt < base_rt_)
    return std::max<int64_t>(last_out_ms_, 0);
  return int64_t((rt - base_rt_) / GST_MSECOND);
}

void FlvPacketizer::publish() {
  // Timestamps of a new publisher restart anywhere: re-anchor on its first
  // frame, and a decoder needs a keyframe again.
  ext_.reset();
  if (anchored_) reanchor_ = true;
  anchor_in_valid_ = false;
  need_keyframe_ = true;
}

int64_t FlvPacketizer::deadline_us() const {
  if (ready_ || pending_.empty()) return 0;
  return first_pending_us_ + kHeaderWaitUs;
}

bool FlvPacketizer::complete() const {
  const bool want_video = meta_video_ || saw_video_;
  const bool want_audio = meta_audio_ || saw_audio_;
  if (!want_video && !want_audio) return false;
  const bool video_ok = !want_video || video_header_ || (video_frame_ && !video_needs_header_);
  const bool audio_ok = !want_audio || audio_header_ || (audio_frame_ && !audio_needs_header_);
  if (!video_ok || !audio_ok) return false;
  // Without metadata we cannot know whether another track follows: wait for
  // the first frame (publishers send every sequence header before it).
  if (!metadata_ && pending_.empty()) return false;
  return true;
}

void FlvPacketizer::rebuild_caps(Output& out, bool initial) {
  if (!initial) {
    // A track that starts after the pad was created (say, audio joining
    // video): the FLV header flags of the new streamheader include it.
    flags_video_ = flags_video_ || video_header_ || saw_video_;
    flags_audio_ = flags_audio_ || audio_header_ || saw_audio_;
  }
  std::vector<GstBuffer*> headers;
  headers.push_back(file_header_buffer(flags_audio_, flags_video_));
  const uint32_t ts = uint32_t(anchor_out_);
  if (metadata_) headers.push_back(tag_buffer(flv::kTagScript, 0, metadata_));
  if (video_header_) headers.push_back(tag_buffer(flv::kTagVideo, ts, video_header_));
  if (audio_header_) headers.push_back(tag_buffer(flv::kTagAudio, ts, audio_header_));
  if (caps_) gst_caps_unref(caps_);
  caps_ = flv_caps(headers);
  out.add(gst_caps_ref(caps_));
  if (initial) {
    // The same header buffers go first in-band, with byte offsets from 0
    // (flvdemux treats offset 0 as the start of a file).
    for (GstBuffer* b : headers) {
      GST_BUFFER_OFFSET(b) = offset_;
      offset_ += gst_buffer_get_size(b);
      GST_BUFFER_OFFSET_END(b) = offset_;
      out.add(b);  // takes our reference
    }
  } else {
    for (GstBuffer* b : headers) gst_buffer_unref(b);
  }
}

void FlvPacketizer::anchor(Output& out) {
  if (!anchored_) {
    // Stream time 0 is "now" in running time: the first tag plays at once.
    GstClockTime rt = running_time_ ? running_time_() : GST_CLOCK_TIME_NONE;
    base_rt_ = GST_CLOCK_TIME_IS_VALID(rt) ? rt : 0;
    out.segment_base = base_rt_;
    anchor_out_ = 0;
  } else if (reanchor_) {
    // A new publisher: continue at "now", never before what went out.
    anchor_out_ = std::max<int64_t>(now_ms(), last_out_ms_ + 1);
  } else {
    return;
  }
  anchored_ = true;
  reanchor_ = false;
  anchor_in_valid_ = false;
}

void FlvPacketizer::become_ready(Output& out) {
  ready_ = true;
  flags_video_ = video_header_ || saw_video_;
  flags_audio_ = audio_header_ || saw_audio_;
  anchor(out);
  rebuild_caps(out, true);
  auto pending = std::move(pending_);
  pending_.clear();
  pending_bytes_ = 0;
  for (auto& [m, flags] : pending) emit_frame(m, flags, out);
}

// The output time (ms) of an audio/video tag: rebased to the first tag,
// monotonic; a publisher clock jump re-anchors at "now" (warning, discont).
int64_t FlvPacketizer::rebase(const Message& m, Output& out, bool& discont) {
  int64_t in = ext_.extend(m.timestamp);
  if (!anchor_in_valid_) {
    anchor_in_ = in;
    anchor_in_valid_ = true;
  }
  int64_t out_ms = anchor_out_ + (in - anchor_in_);
  if (last_out_ms_ >= 0) {
    if (out_ms < last_out_ms_ - kMaxBackwardMs || out_ms > last_out_ms_ + kMaxForwardMs) {
      // A jump in the publisher's clock: continue from where we are.
      out.warnings.push_back("publisher timestamp jumped by " + std::to_string(out_ms - last_out_ms_) +
                             " ms; resynchronising");
      anchor_out_ = std::max<int64_t>(now_ms(), last_out_ms_);
      anchor_in_ = in;
      out_ms = anchor_out_;
      discont = true;
    } else if (out_ms < last_out_ms_) {
      out_ms = last_out_ms_;  // interleaving jitter between tracks: keep DTS monotonic
    }
  }
  last_out_ms_ = out_ms;
  return out_ms;
}

void FlvPacketizer::emit_frame(const Message& m, uint8_t flags, Output& out) {
  const bool video = m.type == kMsgVideo;
  const bool header = (flags & kFlagSequenceHeader) != 0;
  if (!header && need_keyframe_) {
    if (video && !(flags & kFlagKeyframe)) {
      dropped_++;
      return;
    }
    if (video || !flags_video_) need_keyframe_ = false;
  }

  anchor(out);
  bool discont = false;
  int64_t out_ms;
  if (m.type == kMsgDataAmf0 && last_out_ms_ >= 0) {
    // Script data mid-stream goes out where the stream is: servers send
    // onMetaData updates at timestamp 0 (ours, rtmpserversink), which is
    // not a jump of the publisher's clock.
    out_ms = last_out_ms_;
  } else {
    out_ms = rebase(m, out, discont);
  }

  // Script data (onMetaData updates) carries timestamp 0 in the FLV bytes:
  // ffmpeg's FLV reader takes a script tag at a later timestamp for a
  // subtitle stream. The buffer's DTS still follows the stream.
  const uint32_t tag_ts = m.type == kMsgDataAmf0 ? 0 : uint32_t(out_ms);
  GstBuffer* b = tag_buffer(flv::tag_type_for_message(m.type), tag_ts, m.payload);
  GST_BUFFER_DTS(b) = GstClockTime(out_ms) * GST_MSECOND;
  GST_BUFFER_PTS(b) = GST_BUFFER_DTS(b);
  // Only video keyframes (and headers) are sync points when there is video, like flvmux.
  if (!header && (video ? !(flags & kFlagKeyframe) : flags_video_))
    GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DELTA_UNIT);
  if (discont || discont_) {
    GST_BUFFER_FLAG_SET(b, GST_BUFFER_FLAG_DISCONT);
    discont_ = false;
  }
  GST_BUFFER_OFFSET(b) = offset_;
  offset_ += gst_buffer_get_size(b);
  GST_BUFFER_OFFSET_END(b) = offset_;
  out.add(b);
  tags_out_++;
}

void FlvPacketizer::push(const Message& m, uint8_t flags, Output& out) {
  if (m.type != kMsgAudio && m.type != kMsgVideo && m.type != kMsgDataAmf0) return;
  const bool video = m.type == kMsgVideo;
  const bool audio = m.type == kMsgAudio;

  if (m.type == kMsgDataAmf0 && is_on_metadata(m.payload)) {
    if (ready_ && same_bytes(m.payload, metadata_)) return;
    metadata_ = m.payload;
    amf0::Value v;
    if (parse_metadata(m.payload, v, nullptr)) {
      auto present = [&](const char* codec_key, const char* has_key) {
        if (auto b = v.get_boolean(has_key)) return *b;
        const amf0::Value* c = v.get(codec_key);
        return c && !c->is_null_or_undefined();
      };
      meta_video_ = present("videocodecid", "hasVideo");
      meta_audio_ = present("audiocodecid", "hasAudio");
    } else {
      out.warnings.push_back("publisher sent an onMetaData that does not parse");
    }
    if (ready_) {
      rebuild_caps(out, false);
      emit_frame(m, flags, out);
    }
  } else if ((video || audio) && (flags & kFlagSequenceHeader)) {
    Bytes& slot = video ? video_header_ : audio_header_;
    (video ? saw_video_ : saw_audio_) = true;
    if (ready_ && same_bytes(slot, m.payload)) return;
    slot = m.payload;
    if (ready_) {
      rebuild_caps(out, false);
      emit_frame(m, flags, out);
    }
  } else {
    if (video) {
      if (!saw_video_ || !video_frame_) video_needs_header_ = video_needs_header(m.payload);
      saw_video_ = video_frame_ = true;
    } else if (audio) {
      if (!saw_audio_ || !audio_frame_) audio_needs_header_ = audio_needs_header(m.payload);
      saw_audio_ = audio_frame_ = true;
    }
    if (ready_) {
      // A new track without a sequence header (MP3, say): new FLV header flags.
      if (video ? !flags_video_ : !flags_audio_) rebuild_caps(out, false);
      emit_frame(m, flags, out);
      return;
    }
    if (pending_.empty()) first_pending_us_ = g_get_monotonic_time();
    pending_.emplace_back(m, flags);
    pending_bytes_ += m.payload.size();
  }

  if (!ready_) {
    bool force = false;
    if (!pending_.empty()) {
      int64_t span = int64_t(int32_t(pending_.back().first.timestamp - pending_.front().first.timestamp));
      force = span >= kHeaderWaitMs || pending_bytes_ > kMaxPendingBytes ||
              g_get_monotonic_time() >= first_pending_us_ + kHeaderWaitUs;
    }
    if (complete() || force) {
      if (!complete())
        out.warnings.push_back("publisher sent no sequence header for a track within 1 s; "
                               "starting without it");
      become_ready(out);
    }
  }
}

void FlvPacketizer::tick(Output& out) {
  if (ready_ || pending_.empty()) return;
  if (g_get_monotonic_time() < first_pending_us_ + kHeaderWaitUs) return;
  if (!complete())
    out.warnings.push_back("publisher sent no sequence header for a track within 1 s; starting without it");
  become_ready(out);
}

void FlvPacketizer::flush(Output& out) {
  if (!ready_ && !pending_.empty()) become_ready(out);
}

// ---------------------------------------------------------------- depacketizer

void FlvDepacketizer::reset() {
  parser_.reset();
  caps_headers_ = false;
  caps_header_bytes_.clear();
  fed_anything_ = false;
}

bool FlvDepacketizer::feed(GstBuffer* buf, std::vector<Message>& out, GError** error) {
  // A new FLV file header after data: a new stream (e.g. upstream restarted).
  if (fed_anything_ && gst_buffer_get_size(buf) >= flv::kFileHeaderSize) {
    uint8_t sig[4];
    if (gst_buffer_extract(buf, 0, sig, 4) == 4 && sig[0] == 'F' && sig[1] == 'L' && sig[2] == 'V' &&
        sig[3] == 1)
      parser_.reset();
  }
  fed_anything_ = true;
  const guint n = gst_buffer_n_memory(buf);
  for (guint i = 0; i < n; i++) {
    GstMemory* mem = gst_buffer_peek_memory(buf, i);
    GstMapInfo map;
    if (!gst_memory_map(mem, &map, GST_MAP_READ)) {
      g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED, "could not map buffer memory");
      return false;
    }
    bool ok = parser_.feed(map.data, map.size, out, error);
    gst_memory_unmap(mem, &map);
    if (!ok) return false;
  }
  return true;
}

bool FlvDepacketizer::set_caps(GstCaps* caps, std::vector<Message>& out, GError** error) {
  if (!caps || gst_caps_get_size(caps) == 0) return true;
  const GValue* sh = gst_structure_get_value(gst_caps_get_structure(caps, 0), "streamheader");
  if (!sh || !GST_VALUE_HOLDS_ARRAY(sh) || gst_value_array_get_size(sh) == 0) return true;

  std::vector<uint8_t> bytes;
  std::vector<GstBuffer*> bufs;
  for (guint i = 0; i < gst_value_array_get_size(sh); i++) {
    const GValue* v = gst_value_array_get_value(sh, i);
    if (!GST_VALUE_HOLDS_BUFFER(v)) continue;
    GstBuffer* b = gst_value_get_buffer(v);
    GstMapInfo map;
    if (gst_buffer_map(b, &map, GST_MAP_READ)) {
      bytes.insert(bytes.end(), map.data, map.data + map.size);
      gst_buffer_unmap(b, &map);
    }
    bufs.push_back(b);
  }
  if (caps_headers_ && bytes == caps_header_bytes_) return true;  // same headers again
  parser_.reset();
  fed_anything_ = false;
  caps_header_bytes_ = bytes;
  caps_headers_ = true;
  for (GstBuffer* b : bufs)
    if (!feed(b, out, error)) return false;
  return true;
}

bool FlvDepacketizer::push(GstBuffer* buf, std::vector<Message>& out, GError** error) {
  if (caps_headers_ && GST_BUFFER_FLAG_IS_SET(buf, GST_BUFFER_FLAG_HEADER)) return true;
  return feed(buf, out, error);
}

}  // namespace grtmp::gst
