// The stream registry: key "app/name" -> one publisher, any number of
// subscribers (player sessions, GStreamer pads), cached metadata and
// sequence headers, and a bounded GOP cache for instant late join.
//
// Fan-out shares one payload among all subscribers: a StreamEvent holds a
// Bytes reference, never a copy. Subscribers are called on the publisher's
// thread with the stream's lock held, so they must only enqueue and wake.
//
// Lock order: Registry::mutex_ before Stream::mutex_; a subscriber's own
// queue lock is taken last.
#pragma once

#include <glib.h>

#include <cstdint>
#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "grtmp/config.h"
#include "grtmp/message.h"

namespace grtmp {

enum MediaFlags : uint8_t {
  kFlagAudio = 1 << 0,
  kFlagVideo = 1 << 1,
  kFlagData = 1 << 2,            // script data (metadata)
  kFlagKeyframe = 1 << 3,        // video keyframe (not a sequence header)
  kFlagSequenceHeader = 1 << 4,  // AVC/AAC/enhanced sequence start
};

// A message of a stream, classified once by the publisher's thread.
struct StreamMessage {
  Message msg;
  uint8_t flags = 0;
  bool is(uint8_t f) const { return (flags & f) != 0; }
};

struct StreamEvent {
  enum class Kind { Publish, Media, Unpublish };
  Kind kind = Kind::Media;
  StreamMessage media;  // Kind::Media only
};

// Everything known about a stream, as a snapshot for stats and elements.
struct StreamInfo {
  std::string key;          // app/name
  std::string app;
  std::string name;
  std::string query;        // of the current publisher
  bool live = false;        // a publisher is attached
  bool has_audio = false;
  bool has_video = false;
  std::string video_codec;  // "H264", "HEVC", ...
  std::string audio_codec;  // "AAC", ...
  uint32_t width = 0, height = 0;
  uint32_t sample_rate = 0, channels = 0;
  Bytes metadata;           // "onMetaData", {...} (AMF0, no @setDataFrame)
  Bytes video_header;       // video sequence header tag data
  Bytes audio_header;       // audio sequence header tag data
  uint64_t bytes_in = 0;    // media payload bytes published (this session)
  uint64_t messages_in = 0;
  int64_t publish_started_us = 0;  // g_get_monotonic_time()
  uint32_t subscribers = 0;        // everything attached (players, element pads)
  uint32_t players = 0;            // RTMP play sessions only
  uint64_t dropped_messages = 0;   // by slow subscribers, summed (present and departed)
  uint64_t dropped_live = 0;       // by the subscribers attached now
  uint64_t publish_count = 0;      // publish sessions seen on this key
};

class Subscriber {
 public:
  virtual ~Subscriber() = default;
  // Publisher's thread, stream lock held: enqueue and wake only.
  virtual void on_stream_event(const StreamEvent& ev) = 0;
  // Messages this subscriber dropped (for stream stats).
  virtual uint64_t dropped_messages() const { return 0; }
  // An RTMP player (counted as a player in stats), as opposed to an
  // in-process consumer such as a GStreamer pad.
  virtual bool is_player() const { return false; }
};

// Whoever publishes (a session, rtmpserversink) can be told to leave.
class Publisher {
 public:
  virtual ~Publisher() = default;
  // Any thread: stop publishing soon (take-over, timeouts, shutdown).
  virtual void evict(const char* reason) = 0;
};

class Stream {
 public:
  Stream(std::string key, const ServerConfig& config);
  const std::string& key() const { return key_; }

  // Publisher's thread: classify, cache, fan out. Metadata messages must
  // already be stripped of @setDataFrame (type 18 "onMetaData", ...).
  // Returns the message's classification (MediaFlags), computed once here.
  uint8_t push(Message msg);

  bool live() const;
  StreamInfo info() const;

 private:
  friend class Registry;
  void start_publish(Publisher* p, std::string query);  // lock held by caller: no
  void stop_publish();
  // Late join: replays Publish, metadata, sequence headers, GOP cache.
  void attach(const std::shared_ptr<Subscriber>& s);
  void detach(Subscriber* s);
  size_t subscriber_count() const;
  void trim_gop_locked();

  const std::string key_;
  const ServerConfig& config_;
  mutable std::mutex mutex_;
  Publisher* publisher_ = nullptr;
  std::vector<std::shared_ptr<Subscriber>> subscribers_;
  StreamInfo info_;
  std::deque<StreamMessage> gop_;  // starts at a video keyframe (or audio-only)
  uint64_t gop_bytes_ = 0;
  uint64_t dropped_by_departed_ = 0;
};

class Registry {
 public:
  explicit Registry(const ServerConfig& config);
  ~Registry();

  class Observer {
   public:
    virtual ~Observer() = default;
    // Called after the registry lock is released, on the publisher's thread.
    virtual void on_publish(const std::shared_ptr<Stream>& stream) {}
    virtual void on_unpublish(const std::shared_ptr<Stream>& stream) {}
  };
  void add_observer(Observer* o);
  void remove_observer(Observer* o);

  // GRTMP_ERROR_BAD_NAME when the key is busy (policy Reject). With
  // TakeOver the current publisher is evicted and replaced.
  std::shared_ptr<Stream> publish(const std::string& key, const std::string& query, Publisher* who,
                                  GError** error);
  void unpublish(const std::shared_ptr<Stream>& stream, Publisher* who);

  // GRTMP_ERROR_NOT_FOUND when no publisher and the policy is NotFound
  // (wait_for_publisher overrides the policy for elements).
  std::shared_ptr<Stream> subscribe(const std::string& key, const std::shared_ptr<Subscriber>& s,
                                    bool wait_for_publisher, GError** error);
  void unsubscribe(const std::shared_ptr<Stream>& stream, Subscriber* s);

  std::shared_ptr<Stream> find(const std::string& key) const;
  std::vector<StreamInfo> list() const;
  // Messages dropped by slow subscribers since the registry started.
  uint64_t dropped_total() const;
  const ServerConfig& config() const { return config_; }

 private:
  void drop_if_unused_locked(const std::string& key);
  ServerConfig config_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Stream>> streams_;
  std::vector<Observer*> observers_;
  std::atomic<uint64_t> departed_drops_{0};
};

// A subscriber's bounded queue, shared by player sessions and elements:
// past max_bytes it drops queued frames and skips to the next video
// keyframe (sequence headers, metadata and publish events are never
// dropped). Thread-safe: producer = publisher thread, consumer = owner.
class PlayerQueue {
 public:
  explicit PlayerQueue(uint64_t max_bytes) : max_bytes_(max_bytes) {}
  // Returns true when the queue went from empty to non-empty (wake the consumer).
  bool push(const StreamEvent& ev);
  // Moves queued events to `out` until about `max_bytes` payload bytes were taken.
  void take(std::deque<StreamEvent>& out, size_t max_bytes = SIZE_MAX);
  size_t bytes() const;
  bool empty() const;
  uint64_t dropped_messages() const;
  uint64_t drop_events() const;  // how many times it overflowed

 private:
  const uint64_t max_bytes_;
  mutable std::mutex mutex_;
  std::deque<StreamEvent> events_;
  uint64_t bytes_ = 0;
  // A new subscriber, a new publish session, and an overflow all wait for
  // a video keyframe: video frames before it cannot be decoded. Audio is
  // never held back by this (it decodes on its own).
  bool waiting_keyframe_ = true;
  uint64_t dropped_messages_ = 0;
  uint64_t drop_events_ = 0;
};

// Classifies an audio/video/data message (flags for StreamMessage).
uint8_t classify_message(const Message& m);

}  // namespace grtmp
