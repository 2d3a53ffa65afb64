#include "flvfile.h"

#include <gio/gio.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "grtmp/flv.h"
#include "grtmp/media.h"

namespace grtmp::cli {

namespace {

// Bytes of tag data read while scanning: enough for the (Enhanced RTMP)
// video/audio header and the start of a script tag's name.
constexpr size_t kPeekBytes = 32;

bool read_exact(FILE* f, uint8_t* out, size_t n) { return fread(out, 1, n, f) == n; }

bool is_on_metadata(const uint8_t* d, size_t n) {
  static const char kName[] = "onMetaData";
  const size_t len = sizeof(kName) - 1;
  return n >= 3 + len && d[0] == 0x02 && d[1] == 0 && d[2] == len && memcmp(d + 3, kName, len) == 0;
}

}  // namespace

FlvFile::~FlvFile() {
  if (file_) fclose(file_);
}

bool FlvFile::looks_like_flv(const std::string& path) {
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) return false;
  uint8_t sig[3];
  bool yes = read_exact(f, sig, 3) && sig[0] == 'F' && sig[1] == 'L' && sig[2] == 'V';
  fclose(f);
  return yes;
}

bool FlvFile::open(const std::string& path, GError** error) {
  path_ = path;
  file_ = fopen(path.c_str(), "rb");
  struct stat st {};
  if (!file_ || fstat(fileno(file_), &st) != 0) {
    g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "cannot read %s: %s", path.c_str(),
                g_strerror(errno));
    return false;
  }
  const uint64_t file_size = uint64_t(st.st_size);
  auto bad = [&](uint64_t at, const std::string& what) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "invalid FLV file %s: %s at byte %" G_GUINT64_FORMAT,
                path.c_str(), what.c_str(), guint64(at));
    return false;
  };

  uint8_t head[flv::kFileHeaderSize];
  if (!read_exact(file_, head, sizeof head)) return bad(0, "truncated file header");
  flv::FileHeader fh;
  GError* err = nullptr;
  if (!flv::parse_file_header(head, sizeof head, fh, &err)) {
    std::string what = err->message;
    g_clear_error(&err);
    return bad(0, what);
  }
  uint64_t pos = fh.header_size + flv::kPrevTagSizeSize;  // after PreviousTagSize0
  if (pos > file_size) return bad(fh.header_size, "truncated file header");

  bool seen_meta = false, seen_video_header = false, seen_audio_header = false, seen_frame = false;
  uint32_t last_raw = 0;
  int64_t ext = 0;
  bool started = false;
  int64_t last_ts[2] = {-1, -1}, last_delta[2] = {0, 0};  // video, audio
  while (pos < file_size) {
    uint8_t th[flv::kTagHeaderSize];
    if (fseeko(file_, off_t(pos), SEEK_SET) != 0 || !read_exact(file_, th, sizeof th))
      return bad(pos, "truncated tag header (the file ends at byte " + std::to_string(file_size) + ")");
    flv::TagHeader tag;
    if (!flv::parse_tag_header(th, sizeof th, tag, &err)) {
      std::string what = err->message;
      g_clear_error(&err);
      return bad(pos, what);
    }
    const uint64_t end = pos + flv::kTagHeaderSize + tag.data_size;
    // The last tag's PreviousTagSize may be missing; anything shorter is cut.
    if (end > file_size)
      return bad(pos, "truncated tag (" + std::to_string(tag.data_size) + " data bytes, the file ends at byte " +
                          std::to_string(file_size) + ")");
    if (tag.type != flv::kTagAudio && tag.type != flv::kTagVideo && tag.type != flv::kTagScript) {
      return bad(pos, "unknown tag type " + std::to_string(tag.type) + (tag.filter ? " (encrypted)" : ""));
    }
    uint8_t peek[kPeekBytes];
    const size_t n = std::min<size_t>(kPeekBytes, tag.data_size);
    if (!read_exact(file_, peek, n)) return bad(pos, "unreadable tag data");

    // Wrap-aware extension of the 32-bit timestamps.
    if (!started) {
      ext = tag.timestamp;
      started = true;
    } else {
      ext += int32_t(tag.timestamp - last_raw);
    }
    last_raw = tag.timestamp;

    FlvTag t;
    t.offset = pos;
    t.type = tag.type;
    t.size = tag.data_size;
    t.ts_ms = ext;
    bool frame = false;
    if (tag.type == flv::kTagScript) {
      if (!seen_meta && !seen_frame && is_on_metadata(peek, n)) t.header = seen_meta = true;
    } else if (tag.type == flv::kTagVideo) {
      has_video_ = true;
      media::VideoInfo v;
      if (media::inspect_video(peek, n, v) && v.sequence_header) {
        if (!seen_video_header) t.header = seen_video_header = true;
      } else if (tag.data_size > 0) {
        frame = true;
      }
    } else {
      has_audio_ = true;
      media::AudioInfo a;
      if (media::inspect_audio(peek, n, a) && a.sequence_header) {
        if (!seen_audio_header) t.header = seen_audio_header = true;
      } else if (tag.data_size > 0) {
        frame = true;
      }
    }
    if (frame) {
      const int k = tag.type == flv::kTagVideo ? 0 : 1;
      if (!seen_frame || ext < first_ms_) first_ms_ = ext;
      seen_frame = true;
      if (last_ts[k] >= 0 && ext > last_ts[k]) last_delta[k] = ext - last_ts[k];
      last_ts[k] = ext;
      end_ms_ = std::max(end_ms_, ext + last_delta[k]);
    }
    tags_.push_back(t);
    pos = end + flv::kPrevTagSizeSize;
  }
  if (!seen_frame) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "no audio or video frames in FLV file %s",
                path.c_str());
    return false;
  }
  // A header tag timestamped before the first frame plays at the first frame.
  for (FlvTag& t : tags_) t.ts_ms = std::max(t.ts_ms, first_ms_);
  end_ms_ = std::max(end_ms_, first_ms_ + 1);
  return true;
}

bool FlvFile::read(const FlvTag& t, std::vector<uint8_t>& data, GError** error) {
  data.resize(t.size);
  if (fseeko(file_, off_t(t.offset + flv::kTagHeaderSize), SEEK_SET) != 0 ||
      (t.size > 0 && !read_exact(file_, data.data(), t.size))) {
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot read %s at byte %" G_GUINT64_FORMAT " (%s)",
                path_.c_str(), guint64(t.offset), ferror(file_) ? g_strerror(errno) : "file shrank");
    return false;
  }
  return true;
}

}  // namespace grtmp::cli
