// probe: what a stream carries, measured with grtmp::Client (no pipeline).
//
// Connects, plays, and reads messages until it has (a) the onMetaData if
// the server sends it early, (b) each announced or seen track's sequence
// header (AVC/HEVC/AV1 decoder configuration, AAC AudioSpecificConfig) or
// first frame for codecs without one, (c) a first video keyframe, and then
// keeps reading for a measurement window: 1 s of media time (a server with
// a GOP cache delivers that at once) or 1.5 s of wall time, whichever
// comes first. --timeout bounds the whole probe (a watchdog cancels the
// blocking client).
#include <glib.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "commands.h"
#include "exitcode.h"
#include "grtmp/amf0.h"
#include "grtmp/client.h"
#include "grtmp/command.h"
#include "grtmp/error.h"
#include "grtmp/media.h"
#include "grtmp/url.h"

namespace grtmp::cli {

namespace {

constexpr int64_t kWindowMediaMs = 1000;
constexpr int64_t kWindowWallUs = 1500 * 1000;

struct Track {
  bool seen = false;          // any message of this kind
  bool configured = false;    // sequence header (or first frame when the codec has none)
  std::string codec;
  uint64_t frames = 0;        // coded frames (not headers)
  uint64_t bytes = 0;
  int64_t first_ts = -1, last_ts = -1;  // ms, coded frames
};

struct Result {
  Track video, audio;
  // video
  uint32_t width = 0, height = 0;
  int profile = -1, level = -1;
  // audio
  uint32_t sample_rate = 0;
  int channels = 0;
  int aac_object_type = -1;
  int sample_bits = 0;
  // metadata
  bool have_metadata = false;
  amf0::Value metadata;
  // timing (ms since the start of the TCP connect)
  int64_t connect_ms = -1, play_ms = -1, first_keyframe_ms = -1, first_media_ms = -1;
  int64_t window_ms = 0;  // wall time spent reading media
  bool keyframe = false;
  std::string end_reason;  // why reading stopped early ("" = complete)
};

std::optional<double> meta_number(const Result& r, const char* key) {
  if (!r.have_metadata) return std::nullopt;
  auto v = r.metadata.get_number(key);
  if (v && std::isfinite(*v)) return v;
  return std::nullopt;
}

// The metadata announces a track: a codec id, or hasVideo/hasAudio true.
bool meta_announces(const Result& r, bool video) {
  if (!r.have_metadata) return false;
  const amf0::Value* codec = r.metadata.get(video ? "videocodecid" : "audiocodecid");
  if (codec && !codec->is_null_or_undefined()) {
    // ffmpeg writes 0 for "none" in some versions only for audio-less streams; a
    // number 0 is not a codec.
    if (!(codec->is_number() && codec->number == 0)) return true;
  }
  auto has = r.metadata.get_boolean(video ? "hasVideo" : "hasAudio");
  return has && *has;
}

void on_video(Result& r, const Message& m, int64_t now_ms) {
  media::VideoInfo vi;
  if (!media::inspect_video(m.payload.data(), m.payload.size(), vi) || !vi.valid) return;
  Track& t = r.video;
  t.seen = true;
  if (t.codec.empty() || vi.sequence_header) t.codec = media::video_codec_name(vi);
  if (vi.sequence_header) {
    t.configured = true;
    if (vi.fourcc == media::fourcc('a', 'v', 'c', '1') && m.payload.size() > vi.header_size) {
      media::AvcConfig c;
      if (media::parse_avc_config(m.payload.data() + vi.header_size, m.payload.size() - vi.header_size, c)) {
        r.width = c.width;
        r.height = c.height;
        r.profile = c.profile;
        r.level = c.level;
      }
    }
    return;
  }
  if (vi.end_of_sequence || vi.frame_type == media::FrameType::Command) return;
  // Codecs without a sequence header (H.263, VP6, screen video).
  bool has_header = vi.enhanced || vi.codec_id == media::kVideoAvc || vi.codec_id == media::kVideoHevcLegacy;
  if (!has_header) t.configured = true;
  t.frames++;
  t.bytes += m.payload.size();
  if (t.first_ts < 0) t.first_ts = m.timestamp;
  t.last_ts = m.timestamp;
  if (vi.keyframe && !r.keyframe) {
    r.keyframe = true;
    r.first_keyframe_ms = now_ms;
  }
}

void on_audio(Result& r, const Message& m) {
  media::AudioInfo ai;
  if (!media::inspect_audio(m.payload.data(), m.payload.size(), ai) || !ai.valid) return;
  Track& t = r.audio;
  t.seen = true;
  if (t.codec.empty() || ai.sequence_header) t.codec = media::audio_codec_name(ai);
  bool aac = ai.fourcc == media::fourcc('m', 'p', '4', 'a');
  if (ai.sequence_header) {
    t.configured = true;
    if (aac && m.payload.size() > ai.header_size) {
      media::AacConfig c;
      if (media::parse_aac_config(m.payload.data() + ai.header_size, m.payload.size() - ai.header_size, c)) {
        r.sample_rate = c.sample_rate;
        r.channels = c.channels;
        r.aac_object_type = c.object_type;
      }
    }
    return;
  }
  if (!ai.enhanced && !aac) {
    // Legacy codecs: the tag's flags are the format (AAC's flags are fixed
    // 44 kHz stereo and say nothing).
    static const uint32_t rates[] = {5512, 11025, 22050, 44100};
    if (!t.configured) {
      r.sample_rate = ai.sound_format == media::kAudioMp3_8k ? 8000 : rates[ai.sound_rate & 3];
      if (ai.sound_format == media::kAudioNelly16) r.sample_rate = 16000;
      if (ai.sound_format == media::kAudioNelly8 || ai.sound_format == media::kAudioG711A ||
          ai.sound_format == media::kAudioG711U)
        r.sample_rate = 8000;
      if (ai.sound_format == media::kAudioSpeex) r.sample_rate = 16000;
      r.channels = ai.sound_type ? 2 : 1;
      r.sample_bits = ai.sound_size ? 16 : 8;
    }
    t.configured = true;
  }
  t.frames++;
  t.bytes += m.payload.size();
  if (t.first_ts < 0) t.first_ts = m.timestamp;
  t.last_ts = m.timestamp;
}

bool wants_video(const Result& r) { return r.video.seen || meta_announces(r, true); }
bool wants_audio(const Result& r) { return r.audio.seen || meta_announces(r, false); }

bool headers_complete(const Result& r) {
  bool v = wants_video(r), a = wants_audio(r);
  if (!v && !a) return false;
  if (v && !(r.video.configured && r.keyframe)) return false;
  if (a && !r.audio.configured) return false;
  return true;
}

int64_t media_span_ms(const Result& r) {
  int64_t first = -1, last = -1;
  for (const Track* t : {&r.video, &r.audio}) {
    if (t->first_ts < 0) continue;
    if (first < 0 || t->first_ts < first) first = t->first_ts;
    if (t->last_ts > last) last = t->last_ts;
  }
  return first >= 0 ? last - first : 0;
}

// ---------------------------------------------------------------- output

const char* avc_profile_name(int p) {
  switch (p) {
    case 66: return "Baseline";
    case 77: return "Main";
    case 88: return "Extended";
    case 100: return "High";
    case 110: return "High 10";
    case 122: return "High 4:2:2";
    case 244: return "High 4:4:4";
    default: return nullptr;
  }
}

const char* aac_object_name(int o) {
  switch (o) {
    case 1: return "Main";
    case 2: return "LC";
    case 3: return "SSR";
    case 4: return "LTP";
    case 5: return "HE";
    case 29: return "HEv2";
    default: return nullptr;
  }
}

std::string json_string(std::string_view s) {
  std::string r = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': r += "\\\""; break;
      case '\\': r += "\\\\"; break;
      case '\n': r += "\\n"; break;
      case '\r': r += "\\r"; break;
      case '\t': r += "\\t"; break;
      default:
        if (c < 0x20) {
          char b[8];
          snprintf(b, sizeof b, "\\u%04x", c);
          r += b;
        } else {
          r += char(c);
        }
    }
  }
  return r + "\"";
}

std::string json_number(double v, int decimals = 3) {
  if (!std::isfinite(v)) return "null";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(int64_t(v));
  char b[64];
  snprintf(b, sizeof b, "%.*f", decimals, v);
  std::string s = b;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// Scalar metadata properties (numbers, strings, booleans) as a JSON object.
std::string json_metadata(const Result& r) {
  if (!r.have_metadata) return "null";
  std::string j = "{";
  bool first = true;
  for (const auto& [k, v] : r.metadata.properties) {
    std::string val;
    if (v.is_number()) val = json_number(v.number, 6);
    else if (v.is_string()) val = json_string(v.string);
    else if (v.type == amf0::Marker::Boolean) val = v.boolean ? "true" : "false";
    else continue;
    j += (first ? "" : ", ") + json_string(k) + ": " + val;
    first = false;
  }
  return j + "}";
}

struct Derived {
  std::optional<double> fps, fps_measured;
  const char* fps_source = nullptr;
  std::optional<double> bitrate_kbps, metadata_kbps;
  uint32_t width = 0, height = 0;
};

Derived derive(const Result& r) {
  Derived d;
  const Track& v = r.video;
  if (v.frames >= 2 && v.last_ts > v.first_ts) d.fps_measured = double(v.frames - 1) * 1000.0 / double(v.last_ts - v.first_ts);
  auto mfps = meta_number(r, "framerate");
  if (!mfps) mfps = meta_number(r, "videoframerate");
  if (mfps && *mfps > 0) {
    d.fps = mfps;
    d.fps_source = "metadata";
  } else if (d.fps_measured) {
    d.fps = d.fps_measured;
    d.fps_source = "measured";
  }
  int64_t span = media_span_ms(r);
  if (span >= 200) d.bitrate_kbps = double(r.video.bytes + r.audio.bytes) * 8.0 / double(span);
  auto vr = meta_number(r, "videodatarate"), ar = meta_number(r, "audiodatarate");
  if ((vr && *vr > 0) || (ar && *ar > 0)) d.metadata_kbps = (vr ? *vr : 0) + (ar ? *ar : 0);
  d.width = r.width;
  d.height = r.height;
  if (!d.width || !d.height) {
    auto w = meta_number(r, "width"), h = meta_number(r, "height");
    if (w && h && *w > 0 && *h > 0) {
      d.width = uint32_t(*w);
      d.height = uint32_t(*h);
    }
  }
  return d;
}

std::string opt_json(const std::optional<double>& v, int decimals = 3) { return v ? json_number(*v, decimals) : "null"; }
std::string int_json(int64_t v) { return v >= 0 ? std::to_string(v) : "null"; }

void print_json(const std::string& url, const Result& r) {
  Derived d = derive(r);
  std::string j = "{";
  j += "\"url\": " + json_string(url);
  j += ", \"connect_ms\": " + int_json(r.connect_ms);
  j += ", \"play_ms\": " + int_json(r.play_ms);
  j += ", \"first_media_ms\": " + int_json(r.first_media_ms);
  j += ", \"first_keyframe_ms\": " + int_json(r.first_keyframe_ms);
  if (r.video.seen) {
    j += ", \"video\": {\"codec\": " + json_string(r.video.codec);
    j += ", \"width\": " + (d.width ? std::to_string(d.width) : "null");
    j += ", \"height\": " + (d.height ? std::to_string(d.height) : "null");
    j += ", \"fps\": " + opt_json(d.fps);
    j += ", \"fps_source\": " + (d.fps_source ? json_string(d.fps_source) : "null");
    j += ", \"fps_measured\": " + opt_json(d.fps_measured);
    j += ", \"profile\": " + (r.profile >= 0 ? std::to_string(r.profile) : "null");
    j += ", \"level\": " + (r.level >= 0 ? std::to_string(r.level) : "null");
    j += ", \"frames\": " + std::to_string(r.video.frames) + "}";
  } else {
    j += ", \"video\": null";
  }
  if (r.audio.seen) {
    j += ", \"audio\": {\"codec\": " + json_string(r.audio.codec);
    j += ", \"sample_rate\": " + (r.sample_rate ? std::to_string(r.sample_rate) : "null");
    j += ", \"channels\": " + (r.channels ? std::to_string(r.channels) : "null");
    j += ", \"aac_object_type\": " + (r.aac_object_type >= 0 ? std::to_string(r.aac_object_type) : "null");
    j += ", \"frames\": " + std::to_string(r.audio.frames) + "}";
  } else {
    j += ", \"audio\": null";
  }
  j += ", \"bitrate_kbps\": " + opt_json(d.bitrate_kbps, 1);
  j += ", \"bitrate_window_ms\": " + std::to_string(media_span_ms(r));
  j += ", \"metadata_bitrate_kbps\": " + opt_json(d.metadata_kbps, 1);
  j += ", \"complete\": " + std::string(r.end_reason.empty() ? "true" : "false");
  j += ", \"note\": " + (r.end_reason.empty() ? std::string("null") : json_string(r.end_reason));
  j += ", \"metadata\": " + json_metadata(r);
  j += "}";
  printf("%s\n", j.c_str());
}

void print_text(const std::string& url, const Result& r) {
  Derived d = derive(r);
  printf("%s\n", url.c_str());
  if (r.video.seen) {
    std::string line = r.video.codec;
    if (d.width && d.height) line += " " + std::to_string(d.width) + "x" + std::to_string(d.height);
    if (d.fps) {
      char b[96];
      snprintf(b, sizeof b, ", %.2f fps (%s", *d.fps, d.fps_source);
      line += b;
      if (d.fps_measured && std::string(d.fps_source) != "measured") {
        snprintf(b, sizeof b, "; measured %.2f", *d.fps_measured);
        line += b;
      }
      line += ")";
    }
    if (r.profile >= 0) {
      const char* pn = avc_profile_name(r.profile);
      line += ", profile " + (pn ? std::string(pn) : std::to_string(r.profile));
      char b[32];
      snprintf(b, sizeof b, ", level %d.%d", r.level / 10, r.level % 10);
      line += b;
    }
    printf("  video:          %s\n", line.c_str());
  } else {
    printf("  video:          none\n");
  }
  if (r.audio.seen) {
    std::string line = r.audio.codec;
    if (const char* on = aac_object_name(r.aac_object_type)) line += std::string(" ") + on;
    if (r.sample_rate) line += " " + std::to_string(r.sample_rate) + " Hz";
    if (r.channels) line += ", " + std::to_string(r.channels) + (r.channels == 1 ? " channel" : " channels");
    if (r.sample_bits) line += ", " + std::to_string(r.sample_bits) + " bit";
    printf("  audio:          %s\n", line.c_str());
  } else {
    printf("  audio:          none\n");
  }
  std::string br = d.bitrate_kbps ? json_number(*d.bitrate_kbps, 0) + " kbit/s (measured over " +
                                        std::to_string(media_span_ms(r)) + " ms of media)"
                                  : std::string("unknown");
  if (d.metadata_kbps) br += "; metadata " + json_number(*d.metadata_kbps, 0) + " kbit/s";
  printf("  bitrate:        %s\n", br.c_str());
  if (r.first_keyframe_ms >= 0)
    printf("  first keyframe: %lld ms (connected in %lld ms, playing after %lld ms)\n", (long long)r.first_keyframe_ms,
           (long long)r.connect_ms, (long long)r.play_ms);
  else
    printf("  first keyframe: none\n");
  if (!r.end_reason.empty()) printf("  note:           %s\n", r.end_reason.c_str());
  fflush(stdout);
}

// Cancels the client when the whole probe's time is up.
class Watchdog {
 public:
  Watchdog(GCancellable* c, std::chrono::steady_clock::time_point deadline)
      : thread_([this, c, deadline] {
          std::unique_lock lock(mutex_);
          if (!cv_.wait_until(lock, deadline, [this] { return done_; })) {
            fired_ = true;
            g_cancellable_cancel(c);
          }
        }) {}
  ~Watchdog() { stop(); }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  bool fired() {
    std::lock_guard lock(mutex_);
    return fired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;
};

}  // namespace

int run_probe(const Options& opts) {
  if (!check_url(opts.url, "probe")) return kExitUsage;
  Url url;
  parse_url(opts.url, url, nullptr);
  // The query often carries a token: not in the output.
  std::string shown = url.tc_url() + "/" + url.stream;

  ClientOptions co;
  co.timeout_ms = uint32_t(std::ceil(opts.timeout_s * 1000));
  Client client(co);
  GCancellable* cancel = g_cancellable_new();
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed_ms = [t0] {
    return int64_t(std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
  };
  Watchdog watchdog(cancel, t0 + std::chrono::microseconds(int64_t(opts.timeout_s * 1e6)));

  Result r;
  GError* err = nullptr;
  const char* stage = "connecting to";
  bool ok = client.connect(url, cancel, &err);
  if (ok) {
    r.connect_ms = elapsed_ms();
    stage = "playing";
    ok = client.play(cancel, &err);
    if (ok) r.play_ms = elapsed_ms();
  }
  auto timed_out = [&](const GError* e) {
    return (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED) && watchdog.fired()) ||
           g_error_matches(e, GRTMP_ERROR, GRTMP_ERROR_TIMEOUT) || g_error_matches(e, G_IO_ERROR, G_IO_ERROR_TIMED_OUT);
  };
  if (!ok) {
    watchdog.stop();
    int code = exit_code_for_error(err);
    std::string text = err ? err->message : "unknown error";
    if (timed_out(err)) {
      code = kExitTimeout;
      char b[160];
      snprintf(b, sizeof b, "probe: timed out after %g s %s %s (no answer)", opts.timeout_s, stage, shown.c_str());
      text = b;
    } else {
      text = "probe: " + text;
    }
    print_error(text);
    g_clear_error(&err);
    client.close();
    g_object_unref(cancel);
    return code;
  }

  int64_t ready_us = -1;     // when the headers were complete
  int64_t media_start_us = -1;
  for (;;) {
    Message m;
    if (!client.receive(m, cancel, &err)) {
      if (timed_out(err)) {
        r.end_reason = "timed out after " + json_number(opts.timeout_s) + " s";
      } else if (g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_CLOSED)) {
        r.end_reason = "the server closed the connection";
      } else {
        watchdog.stop();
        int code = exit_code_for_error(err);
        print_error(std::string("probe: ") + (err ? err->message : "unknown error"));
        g_clear_error(&err);
        client.close();
        g_object_unref(cancel);
        return code;
      }
      g_clear_error(&err);
      break;
    }
    int64_t now_us = g_get_monotonic_time();
    if (m.type == kMsgDataAmf0) {
      Bytes payload;
      std::string handler;
      amf0::Value meta;
      if (strip_set_data_frame(m, payload, handler, nullptr) && handler == "onMetaData" &&
          parse_metadata(payload, meta, nullptr)) {
        r.metadata = std::move(meta);
        r.have_metadata = true;
      }
    } else if (m.type == kMsgVideo || m.type == kMsgAudio) {
      if (r.first_media_ms < 0) {
        r.first_media_ms = elapsed_ms();
        media_start_us = now_us;
      }
      if (m.type == kMsgVideo) on_video(r, m, elapsed_ms());
      else on_audio(r, m);
    }
    if (headers_complete(r)) {
      if (ready_us < 0) ready_us = now_us;
      if (media_span_ms(r) >= kWindowMediaMs || now_us - ready_us >= kWindowWallUs) break;
    }
  }
  watchdog.stop();
  client.close();
  g_object_unref(cancel);
  if (media_start_us >= 0) r.window_ms = (g_get_monotonic_time() - media_start_us) / 1000;

  if (!r.video.seen && !r.audio.seen) {
    bool timeout = r.end_reason.rfind("timed out", 0) == 0;
    print_error("probe: " + shown + ": no audio or video " +
                (timeout ? "within " + json_number(opts.timeout_s) + " s" : std::string("before the server closed the connection")));
    return timeout ? kExitTimeout : kExitOther;
  }
  if (headers_complete(r)) {
    r.end_reason.clear();  // only the measurement window was cut short
  } else {
    if (r.end_reason.empty()) r.end_reason = "incomplete";
    std::string missing;
    if (wants_video(r) && !r.video.configured) missing += " video sequence header,";
    if (wants_video(r) && !r.keyframe) missing += " video keyframe,";
    if (wants_audio(r) && !r.audio.configured) missing += " audio sequence header,";
    if (!missing.empty()) missing.pop_back();
    r.end_reason += ": no" + missing;
  }
  if (opts.json) print_json(shown, r);
  else print_text(shown, r);
  return kExitOk;
}

}  // namespace grtmp::cli
