// Registry, stream fan-out, GOP cache and player queue policies, with no
// sockets: subscribers are plain recorders.
#include <gtest/gtest.h>

#include <mutex>

#include "grtmp/error.h"
#include "grtmp/registry.h"

using namespace grtmp;

namespace {

Message video(uint32_t ts, bool key, size_t size = 100, bool seq = false) {
  std::vector<uint8_t> p(size, 0xab);
  p[0] = key || seq ? 0x17 : 0x27;
  p[1] = seq ? 0 : 1;
  p[2] = p[3] = p[4] = 0;
  if (seq) {  // minimal AVCDecoderConfigurationRecord header
    p[5] = 1;
  }
  Message m;
  m.type = kMsgVideo;
  m.timestamp = ts;
  m.payload = Bytes::copy(p);
  return m;
}

Message audio(uint32_t ts, bool seq = false, size_t size = 20) {
  std::vector<uint8_t> p(size, 0x11);
  p[0] = 0xaf;
  p[1] = seq ? 0 : 1;
  if (seq) { p[2] = 0x12; p[3] = 0x10; }  // AAC LC 44.1 kHz stereo
  Message m;
  m.type = kMsgAudio;
  m.timestamp = ts;
  m.payload = Bytes::copy(p);
  return m;
}

Message metadata() {
  // "onMetaData", {} as AMF0 bytes
  static const uint8_t amf[] = {0x02, 0x00, 0x0a, 'o', 'n', 'M', 'e', 't', 'a', 'D', 'a', 't', 'a',
                                0x03, 0x00, 0x00, 0x09};
  Message m;
  m.type = kMsgDataAmf0;
  m.payload = Bytes::copy(amf, sizeof amf);
  return m;
}

struct Recorder : Subscriber {
  std::mutex mu;
  std::vector<StreamEvent> events;
  void on_stream_event(const StreamEvent& ev) override {
    std::lock_guard l(mu);
    events.push_back(ev);
  }
};

struct FakePublisher : Publisher {
  int evicted = 0;
  void evict(const char*) override { evicted++; }
};

}  // namespace

TEST(Registry, LateJoinGetsPublishMetadataHeadersThenGopFromKeyframe) {
  ServerConfig cfg;
  Registry reg(cfg);
  FakePublisher pub;
  auto stream = reg.publish("live/a", "token=1", &pub, nullptr);
  ASSERT_TRUE(stream);
  stream->push(metadata());
  stream->push(video(0, false, 40, true));
  stream->push(audio(0, true));
  stream->push(video(0, true));
  stream->push(audio(10));
  stream->push(video(40, false));
  stream->push(video(80, true));  // new GOP starts here
  stream->push(audio(90));
  stream->push(video(120, false));

  auto rec = std::make_shared<Recorder>();
  ASSERT_TRUE(reg.subscribe("live/a", rec, false, nullptr));
  auto& ev = rec->events;
  ASSERT_EQ(ev.size(), 1u + 3u + 3u);
  EXPECT_EQ(ev[0].kind, StreamEvent::Kind::Publish);
  EXPECT_TRUE(ev[1].media.is(kFlagData));
  EXPECT_TRUE(ev[2].media.is(kFlagVideo | kFlagSequenceHeader));
  EXPECT_TRUE(ev[2].media.is(kFlagSequenceHeader));
  EXPECT_TRUE(ev[3].media.is(kFlagAudio));
  EXPECT_TRUE(ev[3].media.is(kFlagSequenceHeader));
  EXPECT_TRUE(ev[4].media.is(kFlagKeyframe));
  EXPECT_EQ(ev[4].media.msg.timestamp, 80u);
  EXPECT_EQ(ev[5].media.msg.timestamp, 90u);
  EXPECT_EQ(ev[6].media.msg.timestamp, 120u);
  // Sequence headers are stamped with the first cached frame's time (no
  // jump back); onMetaData at 0, where FLV readers expect it.
  EXPECT_EQ(ev[1].media.msg.timestamp, 0u);
  EXPECT_EQ(ev[2].media.msg.timestamp, 80u);
  EXPECT_EQ(ev[3].media.msg.timestamp, 80u);

  // The payload is shared, not copied.
  stream->push(video(160, false));
  ASSERT_EQ(ev.size(), 8u);

  auto info = stream->info();
  EXPECT_TRUE(info.live);
  EXPECT_TRUE(info.has_audio);
  EXPECT_TRUE(info.has_video);
  EXPECT_EQ(info.query, "token=1");
  EXPECT_EQ(info.subscribers, 1u);
  EXPECT_EQ(info.audio_codec, "AAC");
  EXPECT_EQ(info.video_codec, "H264");
}

TEST(Registry, FanOutSharesPayload) {
  ServerConfig cfg;
  Registry reg(cfg);
  FakePublisher pub;
  auto stream = reg.publish("live/a", "", &pub, nullptr);
  auto a = std::make_shared<Recorder>(), b = std::make_shared<Recorder>();
  reg.subscribe("live/a", a, false, nullptr);
  reg.subscribe("live/a", b, false, nullptr);
  stream->push(video(0, true, 5000));
  ASSERT_EQ(a->events.size(), 2u);
  ASSERT_EQ(b->events.size(), 2u);
  EXPECT_EQ(a->events[1].media.msg.payload.get(), b->events[1].media.msg.payload.get());
}

TEST(Registry, SecondPublisherRejectedOrTakesOver) {
  ServerConfig cfg;
  Registry reg(cfg);
  FakePublisher p1, p2;
  ASSERT_TRUE(reg.publish("live/a", "", &p1, nullptr));
  GError* err = nullptr;
  EXPECT_FALSE(reg.publish("live/a", "", &p2, &err));
  ASSERT_TRUE(err);
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_BAD_NAME));
  g_clear_error(&err);

  ServerConfig take;
  take.publish_conflict = PublishConflictPolicy::TakeOver;
  Registry reg2(take);
  auto s1 = reg2.publish("live/a", "", &p1, nullptr);
  auto rec = std::make_shared<Recorder>();
  reg2.subscribe("live/a", rec, false, nullptr);
  auto s2 = reg2.publish("live/a", "", &p2, nullptr);
  ASSERT_TRUE(s2);
  EXPECT_EQ(p1.evicted, 1);
  // The old publisher's late unpublish must not end the new session.
  reg2.unpublish(s1, &p1);
  EXPECT_TRUE(s2->live());
  // Players see one new publish session, no Unpublish in between (which
  // would end them when players are not kept).
  ASSERT_EQ(rec->events.size(), 2u);
  EXPECT_EQ(rec->events[0].kind, StreamEvent::Kind::Publish);
  EXPECT_EQ(rec->events[1].kind, StreamEvent::Kind::Publish);
}

TEST(Registry, RepublishAfterUnpublishNotifiesPlayers) {
  ServerConfig cfg;
  Registry reg(cfg);
  FakePublisher p1, p2;
  auto s = reg.publish("live/a", "", &p1, nullptr);
  auto rec = std::make_shared<Recorder>();
  reg.subscribe("live/a", rec, false, nullptr);
  reg.unpublish(s, &p1);
  EXPECT_FALSE(s->live());
  auto s2 = reg.publish("live/a", "", &p2, nullptr);
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2.get(), s.get()) << "players stay attached to the same stream";
  ASSERT_EQ(rec->events.size(), 3u);
  EXPECT_EQ(rec->events[1].kind, StreamEvent::Kind::Unpublish);
  EXPECT_EQ(rec->events[2].kind, StreamEvent::Kind::Publish);
  EXPECT_EQ(s2->info().publish_count, 2u);
}

TEST(Registry, MissingStreamPolicy) {
  ServerConfig cfg;
  cfg.missing_stream = MissingStreamPolicy::NotFound;
  Registry reg(cfg);
  auto rec = std::make_shared<Recorder>();
  GError* err = nullptr;
  EXPECT_FALSE(reg.subscribe("live/none", rec, false, &err));
  EXPECT_TRUE(g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_NOT_FOUND));
  g_clear_error(&err);
  // Elements may wait regardless of the policy.
  EXPECT_TRUE(reg.subscribe("live/none", rec, true, nullptr));

  ServerConfig wait;
  Registry reg2(wait);
  auto s = reg2.subscribe("live/x", rec, false, nullptr);
  ASSERT_TRUE(s);
  FakePublisher p;
  reg2.publish("live/x", "", &p, nullptr);
  ASSERT_FALSE(rec->events.empty());
  EXPECT_EQ(rec->events.back().kind, StreamEvent::Kind::Publish);
}

TEST(Registry, UnusedStreamsAreForgotten) {
  ServerConfig cfg;
  Registry reg(cfg);
  FakePublisher p;
  auto s = reg.publish("live/a", "", &p, nullptr);
  EXPECT_EQ(reg.list().size(), 1u);
  reg.unpublish(s, &p);
  EXPECT_EQ(reg.list().size(), 0u);
  EXPECT_FALSE(reg.find("live/a"));
}

TEST(Registry, GopCacheIsCapped) {
  ServerConfig cfg;
  cfg.gop_cache_max_messages = 10;
  Registry reg(cfg);
  FakePublisher p;
  auto s = reg.publish("live/a", "", &p, nullptr);
  s->push(video(0, true));
  for (uint32_t i = 1; i < 50; i++) s->push(video(i * 40, false));
  auto rec = std::make_shared<Recorder>();
  reg.subscribe("live/a", rec, false, nullptr);
  // Past the cap the GOP cannot start at a keyframe anymore: nothing is
  // replayed rather than frames a decoder cannot use.
  EXPECT_EQ(rec->events.size(), 1u);
  // A new keyframe restarts the cache.
  s->push(video(5000, true));
  s->push(video(5040, false));
  auto rec2 = std::make_shared<Recorder>();
  reg.subscribe("live/a", rec2, false, nullptr);
  ASSERT_EQ(rec2->events.size(), 3u);
  EXPECT_TRUE(rec2->events[1].media.is(kFlagKeyframe));
}

TEST(Registry, GopCacheDisabled) {
  ServerConfig cfg;
  cfg.gop_cache = false;
  Registry reg(cfg);
  FakePublisher p;
  auto s = reg.publish("live/a", "", &p, nullptr);
  s->push(video(0, true));
  s->push(video(40, false));
  auto rec = std::make_shared<Recorder>();
  reg.subscribe("live/a", rec, false, nullptr);
  EXPECT_EQ(rec->events.size(), 1u);  // Publish only
}

TEST(PlayerQueue, OverflowDropsToNextKeyframeAndCounts) {
  PlayerQueue q(1000);
  auto ev = [](Message m) {
    StreamEvent e;
    e.media.flags = classify_message(m);
    e.media.msg = m;
    return e;
  };
  EXPECT_TRUE(q.push(ev(video(0, false, 40, true))));  // sequence header: never dropped
  EXPECT_FALSE(q.push(ev(video(0, true, 400))));
  q.push(ev(video(40, false, 400)));
  q.push(ev(video(80, false, 400)));  // overflow: queued frames dropped
  EXPECT_EQ(q.drop_events(), 1u);
  q.push(ev(audio(90)));              // audio decodes on its own: kept
  q.push(ev(video(120, false, 100))); // dropped: waiting for a keyframe
  q.push(ev(video(160, true, 300)));  // video resumes here
  q.push(ev(video(200, false, 100)));
  std::deque<StreamEvent> out;
  q.take(out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_TRUE(out[0].media.is(kFlagSequenceHeader));
  EXPECT_TRUE(out[1].media.is(kFlagAudio));
  EXPECT_EQ(out[2].media.msg.timestamp, 160u);
  EXPECT_EQ(out[3].media.msg.timestamp, 200u);
  EXPECT_EQ(q.dropped_messages(), 4u);
  EXPECT_TRUE(q.empty());
}

TEST(PlayerQueue, JoinWithoutGopCacheWaitsForAKeyframe) {
  PlayerQueue q(1 << 20);
  auto ev = [](Message m) {
    StreamEvent e;
    e.media.flags = classify_message(m);
    e.media.msg = m;
    return e;
  };
  StreamEvent publish;
  publish.kind = StreamEvent::Kind::Publish;
  q.push(publish);
  q.push(ev(video(0, false, 40, true)));  // sequence header passes
  q.push(ev(video(40, false)));           // inter frame: held back
  q.push(ev(audio(50)));                  // audio passes
  q.push(ev(video(80, true)));            // first picture
  q.push(ev(video(120, false)));
  std::deque<StreamEvent> out;
  q.take(out);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0].kind, StreamEvent::Kind::Publish);
  EXPECT_TRUE(out[1].media.is(kFlagSequenceHeader));
  EXPECT_TRUE(out[2].media.is(kFlagAudio));
  EXPECT_TRUE(out[3].media.is(kFlagKeyframe));
  EXPECT_EQ(q.dropped_messages(), 1u);
}

TEST(PlayerQueue, AudioOnlyStreamsResumeWithoutKeyframe) {
  PlayerQueue q(100);
  auto ev = [](Message m) {
    StreamEvent e;
    e.media.flags = classify_message(m);
    e.media.msg = m;
    return e;
  };
  for (uint32_t i = 0; i < 20; i++) q.push(ev(audio(i * 20, false, 30)));
  std::deque<StreamEvent> out;
  q.take(out);
  EXPECT_FALSE(out.empty());
  EXPECT_GT(q.dropped_messages(), 0u);
  EXPECT_EQ(out.back().media.msg.timestamp, 19u * 20);
}

namespace {

// A subscriber with a bounded queue that nobody reads (a stuck player).
struct QueuedSubscriber : Subscriber {
  explicit QueuedSubscriber(uint64_t max_bytes, bool player) : queue(max_bytes), player(player) {}
  void on_stream_event(const StreamEvent& ev) override { queue.push(ev); }
  uint64_t dropped_messages() const override { return queue.dropped_messages(); }
  bool is_player() const override { return player; }
  PlayerQueue queue;
  bool player;
};

}  // namespace

// Stream stats count what each slow subscriber dropped: dropped_live for
// those attached now, dropped_messages also for those that left; the
// registry's total keeps the departed ones after the stream is gone.
TEST(Registry, PerStreamDropCountsLiveAndDepartedSubscribers) {
  ServerConfig cfg;
  Registry reg(cfg);
  FakePublisher pub;
  auto stream = reg.publish("live/drops", "", &pub, nullptr);
  ASSERT_NE(stream, nullptr);
  stream->push(video(0, true, 100));
  auto slow = std::make_shared<QueuedSubscriber>(1000, true);
  auto fast = std::make_shared<QueuedSubscriber>(1u << 20, false);
  ASSERT_NE(reg.subscribe("live/drops", slow, false, nullptr), nullptr);
  ASSERT_NE(reg.subscribe("live/drops", fast, false, nullptr), nullptr);
  // The slow one holds 100 (the cached keyframe) + 400 + 400; the third
  // 400-byte frame overflows: its queued frames (keyframe and two) and
  // the frame itself are dropped.
  for (uint32_t ts : {40u, 80u, 120u}) stream->push(video(ts, false, 400));
  EXPECT_EQ(slow->queue.dropped_messages(), 4u);
  EXPECT_EQ(fast->queue.dropped_messages(), 0u);
  StreamInfo info = stream->info();
  EXPECT_EQ(info.dropped_live, 4u);
  EXPECT_EQ(info.dropped_messages, 4u);
  EXPECT_EQ(info.players, 1u);
  EXPECT_EQ(info.subscribers, 2u);
  EXPECT_EQ(reg.dropped_total(), 4u);

  // Another stream's drops are its own.
  FakePublisher pub2;
  auto other = reg.publish("live/other", "", &pub2, nullptr);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->info().dropped_messages, 0u);

  // The slow one leaves: its drops stay in the stream's total, not live.
  reg.unsubscribe(stream, slow.get());
  info = stream->info();
  EXPECT_EQ(info.dropped_live, 0u);
  EXPECT_EQ(info.dropped_messages, 4u);
  EXPECT_EQ(info.players, 0u);
  EXPECT_EQ(reg.dropped_total(), 4u);

  // The stream goes away entirely: the registry still counts them.
  reg.unsubscribe(stream, fast.get());
  reg.unpublish(stream, &pub);
  EXPECT_EQ(reg.find("live/drops"), nullptr);
  EXPECT_EQ(reg.dropped_total(), 4u);
}
