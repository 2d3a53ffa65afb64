#include "grtmp/registry.h"

#include <algorithm>
#include <cstring>

#include "grtmp/error.h"
#include "grtmp/log.h"
#include "grtmp/media.h"

namespace grtmp {

uint8_t classify_message(const Message& m) {
  switch (m.type) {
    case kMsgVideo: {
      media::VideoInfo v;
      uint8_t f = kFlagVideo;
      if (media::inspect_video(m.payload.data(), m.payload.size(), v)) {
        if (v.sequence_header) f |= kFlagSequenceHeader;
        else if (v.keyframe) f |= kFlagKeyframe;
      }
      return f;
    }
    case kMsgAudio: {
      media::AudioInfo a;
      uint8_t f = kFlagAudio;
      if (media::inspect_audio(m.payload.data(), m.payload.size(), a) && a.sequence_header)
        f |= kFlagSequenceHeader;
      return f;
    }
    case kMsgDataAmf0:
    case kMsgDataAmf3:
      return kFlagData;
    default:
      return 0;
  }
}

// ---- PlayerQueue ----

namespace {
bool droppable(const StreamEvent& e) {
  return e.kind == StreamEvent::Kind::Media && e.media.is(kFlagAudio | kFlagVideo) &&
         !e.media.is(kFlagSequenceHeader);
}
size_t event_bytes(const StreamEvent& e) { return e.kind == StreamEvent::Kind::Media ? e.media.msg.payload.size() : 0; }
}  // namespace

bool PlayerQueue::push(const StreamEvent& ev) {
  std::lock_guard lock(mutex_);
  bool was_empty = events_.empty();
  if (ev.kind == StreamEvent::Kind::Publish) waiting_keyframe_ = true;  // a new session: its own first keyframe
  if (droppable(ev)) {
    const bool video = ev.media.is(kFlagVideo);
    if (video && waiting_keyframe_) {
      if (!ev.media.is(kFlagKeyframe)) {
        dropped_messages_++;
        return false;
      }
      waiting_keyframe_ = false;
    }
    size_t size = event_bytes(ev);
    if (bytes_ + size > max_bytes_) {
      // Overflow: drop every queued frame and resume at the next keyframe.
      drop_events_++;
      std::deque<StreamEvent> kept;
      for (auto& e : events_) {
        if (droppable(e)) dropped_messages_++;
        else kept.push_back(std::move(e));
      }
      events_.swap(kept);
      bytes_ = 0;
      for (auto& e : events_) bytes_ += event_bytes(e);
      if (video && !ev.media.is(kFlagKeyframe)) {
        waiting_keyframe_ = true;
        dropped_messages_++;
        return was_empty && !events_.empty();
      }
      if (!video) waiting_keyframe_ = true;  // video resumes at a keyframe
    }
  }
  bytes_ += event_bytes(ev);
  events_.push_back(ev);
  return was_empty;
}

void PlayerQueue::take(std::deque<StreamEvent>& out, size_t max_bytes) {
  std::lock_guard lock(mutex_);
  if (out.empty() && bytes_ <= max_bytes) {
    // Everything fits (the usual case): hand the whole deque over.
    out.swap(events_);
    bytes_ = 0;
    return;
  }
  size_t taken = 0;
  while (!events_.empty() && taken < max_bytes) {
    size_t b = event_bytes(events_.front());
    taken += b;
    bytes_ -= b;
    out.push_back(std::move(events_.front()));
    events_.pop_front();
  }
}

size_t PlayerQueue::bytes() const { std::lock_guard lock(mutex_); return bytes_; }
bool PlayerQueue::empty() const { std::lock_guard lock(mutex_); return events_.empty(); }
uint64_t PlayerQueue::dropped_messages() const { std::lock_guard lock(mutex_); return dropped_messages_; }
uint64_t PlayerQueue::drop_events() const { std::lock_guard lock(mutex_); return drop_events_; }

// ---- Stream ----

Stream::Stream(std::string key, const ServerConfig& config) : key_(std::move(key)), config_(config) {
  info_.key = key_;
  auto slash = key_.find('/');
  info_.app = key_.substr(0, slash);
  info_.name = slash == std::string::npos ? std::string() : key_.substr(slash + 1);
}

bool Stream::live() const {
  std::lock_guard lock(mutex_);
  return publisher_ != nullptr;
}

StreamInfo Stream::info() const {
  std::lock_guard lock(mutex_);
  StreamInfo i = info_;
  i.live = publisher_ != nullptr;
  i.subscribers = static_cast<uint32_t>(subscribers_.size());
  i.players = 0;
  i.dropped_live = 0;
  for (auto& s : subscribers_) {
    i.dropped_live += s->dropped_messages();
    if (s->is_player()) i.players++;
  }
  i.dropped_messages = dropped_by_departed_ + i.dropped_live;
  return i;
}

size_t Stream::subscriber_count() const {
  std::lock_guard lock(mutex_);
  return subscribers_.size();
}

void Stream::start_publish(Publisher* p, std::string query) {
  std::lock_guard lock(mutex_);
  publisher_ = p;
  // A new publish session: forget the previous session's codec state.
  std::string app = info_.app, name = info_.name;
  uint64_t count = info_.publish_count;
  info_ = StreamInfo{};
  info_.key = key_;
  info_.app = app;
  info_.name = name;
  info_.query = std::move(query);
  info_.publish_count = count + 1;
  info_.publish_started_us = g_get_monotonic_time();
  gop_.clear();
  gop_bytes_ = 0;
  StreamEvent ev;
  ev.kind = StreamEvent::Kind::Publish;
  for (auto& s : subscribers_) s->on_stream_event(ev);
}

void Stream::stop_publish() {
  std::lock_guard lock(mutex_);
  publisher_ = nullptr;
  gop_.clear();
  gop_bytes_ = 0;
  StreamEvent ev;
  ev.kind = StreamEvent::Kind::Unpublish;
  for (auto& s : subscribers_) s->on_stream_event(ev);
}

void Stream::attach(const std::shared_ptr<Subscriber>& s) {
  std::lock_guard lock(mutex_);
  subscribers_.push_back(s);
  if (!publisher_) return;
  // Late join: publish event, metadata, sequence headers, then the GOP
  // cache from its keyframe, all before any newer message (lock held).
  StreamEvent ev;
  ev.kind = StreamEvent::Kind::Publish;
  s->on_stream_event(ev);
  auto replay = [&](const Bytes& payload, uint8_t type, uint32_t csid, uint8_t flags, bool at_zero) {
    if (!payload) return;
    StreamEvent e;
    e.media.msg.type = type;
    e.media.msg.csid = csid;
    e.media.msg.payload = payload;
    e.media.flags = flags;
    // Sequence headers carry the timestamp of the first cached frame so
    // players see no backwards jump. onMetaData goes at 0: ffmpeg's FLV
    // reader (and so rtmpdump's recordings read by ffprobe) takes a script
    // tag at any other time for a data stream, and FLV itself puts
    // onMetaData at 0.
    e.media.msg.timestamp = at_zero || gop_.empty() ? 0 : gop_.front().msg.timestamp;
    s->on_stream_event(e);
  };
  replay(info_.metadata, kMsgDataAmf0, kCsidData, kFlagData, true);
  replay(info_.video_header, kMsgVideo, kCsidVideo, kFlagVideo | kFlagSequenceHeader, false);
  replay(info_.audio_header, kMsgAudio, kCsidAudio, kFlagAudio | kFlagSequenceHeader, false);
  for (auto& m : gop_) {
    StreamEvent e;
    e.media = m;
    s->on_stream_event(e);
  }
}

void Stream::detach(Subscriber* s) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(subscribers_.begin(), subscribers_.end(), [&](auto& p) { return p.get() == s; });
  if (it != subscribers_.end()) {
    dropped_by_departed_ += (*it)->dropped_messages();
    subscribers_.erase(it);
  }
}

void Stream::trim_gop_locked() {
  // Keep the cache within its caps; when it must shrink, cut at the next
  // keyframe so it always starts with one (or drop it entirely).
  auto over = [&] {
    if (gop_.empty()) return false;
    uint32_t span = gop_.back().msg.timestamp - gop_.front().msg.timestamp;
    return gop_.size() > config_.gop_cache_max_messages || gop_bytes_ > config_.gop_cache_max_bytes ||
           span > config_.gop_cache_max_duration_ms;
  };
  while (over()) {
    gop_bytes_ -= gop_.front().msg.payload.size();
    gop_.pop_front();
    while (!gop_.empty() && !(gop_.front().is(kFlagKeyframe) || !info_.has_video)) {
      gop_bytes_ -= gop_.front().msg.payload.size();
      gop_.pop_front();
    }
  }
}

uint8_t Stream::push(Message msg) {
  StreamEvent ev;
  ev.media.flags = classify_message(msg);
  ev.media.msg = std::move(msg);
  const StreamMessage& sm = ev.media;
  std::lock_guard lock(mutex_);
  info_.bytes_in += sm.msg.payload.size();
  info_.messages_in++;
  if (sm.is(kFlagData)) {
    // Only onMetaData is what late joiners need first; other data
    // messages (onCuePoint, ...) pass through without replacing it.
    static const uint8_t kOnMetaData[] = {0x02, 0x00, 0x0a, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a'};
    if (sm.msg.payload.size() >= sizeof kOnMetaData &&
        memcmp(sm.msg.payload.data(), kOnMetaData, sizeof kOnMetaData) == 0)
      info_.metadata = sm.msg.payload;
  } else if (sm.is(kFlagVideo)) {
    if (!info_.has_video) {
      info_.has_video = true;
      media::VideoInfo v;
      if (media::inspect_video(sm.msg.payload.data(), sm.msg.payload.size(), v))
        info_.video_codec = media::video_codec_name(v);
    }
    if (sm.is(kFlagSequenceHeader)) {
      info_.video_header = sm.msg.payload;
      media::VideoInfo v;
      if (media::inspect_video(sm.msg.payload.data(), sm.msg.payload.size(), v)) {
        info_.video_codec = media::video_codec_name(v);
        media::AvcConfig avc;
        if (v.fourcc == media::fourcc('a', 'v', 'c', '1') && v.header_size <= sm.msg.payload.size() &&
            media::parse_avc_config(sm.msg.payload.data() + v.header_size,
                                    sm.msg.payload.size() - v.header_size, avc)) {
          info_.width = avc.width;
          info_.height = avc.height;
        }
      }
    }
  } else if (sm.is(kFlagAudio)) {
    if (!info_.has_audio) {
      info_.has_audio = true;
      media::AudioInfo a;
      if (media::inspect_audio(sm.msg.payload.data(), sm.msg.payload.size(), a))
        info_.audio_codec = media::audio_codec_name(a);
    }
    if (sm.is(kFlagSequenceHeader)) {
      info_.audio_header = sm.msg.payload;
      media::AudioInfo a;
      if (media::inspect_audio(sm.msg.payload.data(), sm.msg.payload.size(), a)) {
        info_.audio_codec = media::audio_codec_name(a);
        media::AacConfig aac;
        if (a.sound_format == media::kAudioAac && a.header_size <= sm.msg.payload.size() &&
            media::parse_aac_config(sm.msg.payload.data() + a.header_size, sm.msg.payload.size() - a.header_size,
                                    aac)) {
          info_.sample_rate = aac.sample_rate;
          info_.channels = aac.channels;
        }
      }
    }
  }

  // GOP cache: sequence headers and metadata are cached apart; frames go
  // in from a keyframe on (any frame for audio-only streams).
  if (config_.gop_cache && sm.is(kFlagAudio | kFlagVideo) && !sm.is(kFlagSequenceHeader)) {
    if (sm.is(kFlagKeyframe)) {
      // A new GOP: the previous one is no longer needed for late join.
      gop_.clear();
      gop_bytes_ = 0;
    }
    if (!gop_.empty() || sm.is(kFlagKeyframe) || !info_.has_video) {
      gop_.push_back(sm);
      gop_bytes_ += sm.msg.payload.size();
      trim_gop_locked();
    }
  }

  for (auto& s : subscribers_) s->on_stream_event(ev);
  return ev.media.flags;
}

// ---- Registry ----

Registry::Registry(const ServerConfig& config) : config_(config) {}
Registry::~Registry() = default;

void Registry::add_observer(Observer* o) {
  std::lock_guard lock(mutex_);
  observers_.push_back(o);
}

void Registry::remove_observer(Observer* o) {
  std::lock_guard lock(mutex_);
  observers_.erase(std::remove(observers_.begin(), observers_.end(), o), observers_.end());
}

std::shared_ptr<Stream> Registry::publish(const std::string& key, const std::string& query, Publisher* who,
                                          GError** error) {
  std::shared_ptr<Stream> stream;
  Publisher* evicted = nullptr;
  std::vector<Observer*> observers;
  {
    std::lock_guard lock(mutex_);
    auto& slot = streams_[key];
    if (!slot) slot = std::make_shared<Stream>(key, config_);
    stream = slot;
    {
      std::lock_guard slock(stream->mutex_);
      if (stream->publisher_) {
        if (config_.publish_conflict == PublishConflictPolicy::Reject) {
          g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_BAD_NAME, "stream %s is already being published",
                      key.c_str());
          return nullptr;
        }
        evicted = stream->publisher_;
      }
    }
    // Take-over: players see one new publish session (PublishNotify), not
    // an Unpublish that would end them when players are not kept.
    stream->start_publish(who, query);
    observers = observers_;
  }
  if (evicted) evicted->evict("another publisher took over the stream");
  for (auto* o : observers) o->on_publish(stream);
  return stream;
}

void Registry::unpublish(const std::shared_ptr<Stream>& stream, Publisher* who) {
  if (!stream) return;
  std::vector<Observer*> observers;
  {
    std::lock_guard lock(mutex_);
    {
      std::lock_guard slock(stream->mutex_);
      if (stream->publisher_ != who) return;  // already replaced (take-over)
    }
    stream->stop_publish();
    observers = observers_;
    drop_if_unused_locked(stream->key());
  }
  for (auto* o : observers) o->on_unpublish(stream);
}

std::shared_ptr<Stream> Registry::subscribe(const std::string& key, const std::shared_ptr<Subscriber>& s,
                                            bool wait_for_publisher, GError** error) {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(key);
  bool live = it != streams_.end() && it->second->live();
  if (!live && !wait_for_publisher && config_.missing_stream == MissingStreamPolicy::NotFound) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_NOT_FOUND, "no stream is published as %s", key.c_str());
    return nullptr;
  }
  auto& slot = streams_[key];
  if (!slot) slot = std::make_shared<Stream>(key, config_);
  slot->attach(s);
  return slot;
}

void Registry::unsubscribe(const std::shared_ptr<Stream>& stream, Subscriber* s) {
  if (!stream) return;
  std::lock_guard lock(mutex_);
  departed_drops_ += s->dropped_messages();
  stream->detach(s);
  drop_if_unused_locked(stream->key());
}

void Registry::drop_if_unused_locked(const std::string& key) {
  auto it = streams_.find(key);
  if (it == streams_.end()) return;
  if (!it->second->live() && it->second->subscriber_count() == 0) streams_.erase(it);
}

std::shared_ptr<Stream> Registry::find(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = streams_.find(key);
  return it == streams_.end() ? nullptr : it->second;
}

uint64_t Registry::dropped_total() const {
  uint64_t live = 0;
  for (auto& i : list()) live += i.dropped_live;
  return departed_drops_.load() + live;
}

std::vector<StreamInfo> Registry::list() const {
  std::vector<std::shared_ptr<Stream>> streams;
  {
    std::lock_guard lock(mutex_);
    for (auto& [k, s] : streams_) streams.push_back(s);
  }
  std::vector<StreamInfo> out;
  for (auto& s : streams) out.push_back(s->info());
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.key < b.key; });
  return out;
}

}  // namespace grtmp
