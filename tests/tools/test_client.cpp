// grtmp-test-client: the library's Client as a command-line peer for
// end-to-end tests.
//   grtmp-test-client publish FILE.flv URL [--realtime]   exit 0 when all tags were sent
//   grtmp-test-client play URL OUT.flv [--seconds S] [--max-tags N]
//     prints "TAGS n FIRST_KEYFRAME_MS t CONNECT_MS c PLAY_MS p": times from
//     the TCP connect to the first video keyframe, connect done, play started
//   --insecure (anywhere): accept any rtmps:// certificate
// Exit codes: 0 ok, 1 other error, 2 usage, 3 connection refused,
// 4 stream not found, 5 bad name (busy), 6 unauthorized, 7 timeout.
#include <gio/gio.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "grtmp/client.h"
#include "grtmp/error.h"
#include "grtmp/flv.h"

using namespace grtmp;

static int exit_code_for(const GError* e) {
  if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)) return 3;
  if (g_error_matches(e, GRTMP_ERROR, GRTMP_ERROR_NOT_FOUND)) return 4;
  if (g_error_matches(e, GRTMP_ERROR, GRTMP_ERROR_BAD_NAME)) return 5;
  if (g_error_matches(e, GRTMP_ERROR, GRTMP_ERROR_UNAUTHORIZED)) return 6;
  if (g_error_matches(e, GRTMP_ERROR, GRTMP_ERROR_TIMEOUT)) return 7;
  return 1;
}

static int fail(GError* e) {
  fprintf(stderr, "error: %s\n", e->message);
  int code = exit_code_for(e);
  g_error_free(e);
  return code;
}

// --insecure: accept any RTMPS certificate (self-signed ones in tests).
static bool g_insecure = false;

static ClientOptions client_options() {
  ClientOptions o;
  if (g_insecure) o.tls_validation_flags = static_cast<GTlsCertificateFlags>(0);
  return o;
}

static int publish(const char* path, const char* url_text, bool realtime) {
  GError* err = nullptr;
  gchar* data = nullptr;
  gsize len = 0;
  if (!g_file_get_contents(path, &data, &len, &err)) return fail(err);
  flv::TagParser parser;
  std::vector<Message> tags;
  bool ok = parser.feed(reinterpret_cast<uint8_t*>(data), len, tags, &err);
  g_free(data);
  if (!ok) return fail(err);
  Url url;
  if (!parse_url(url_text, url, &err)) return fail(err);
  Client client(client_options());
  if (!client.connect(url, nullptr, &err) || !client.publish(nullptr, &err)) return fail(err);
  int64_t start = g_get_monotonic_time();
  uint32_t first_ts = tags.empty() ? 0 : tags[0].timestamp;
  for (auto& m : tags) {
    if (realtime) {
      int64_t due = start + int64_t(m.timestamp - first_ts) * 1000;
      int64_t now = g_get_monotonic_time();
      if (due > now) g_usleep(due - now);
    }
    if (!client.send(m, nullptr, &err)) return fail(err);
  }
  client.close();
  printf("SENT %zu\n", tags.size());
  return 0;
}

static int play(const char* url_text, const char* out_path, double seconds, long max_tags) {
  GError* err = nullptr;
  Url url;
  if (!parse_url(url_text, url, &err)) return fail(err);
  Client client(client_options());
  // Join time is what a viewer waits: from the TCP connect to the first
  // video keyframe, so the handshake, connect and play round trips count.
  const int64_t connect_start = g_get_monotonic_time();
  if (!client.connect(url, nullptr, &err)) return fail(err);
  const int64_t connected_us = g_get_monotonic_time() - connect_start;
  if (!client.play(nullptr, &err)) return fail(err);
  const int64_t play_started_us = g_get_monotonic_time() - connect_start;
  FILE* f = fopen(out_path, "wb");
  if (!f) {
    perror(out_path);
    return 1;
  }
  // Header flags are unknown until media arrives; both set (players cope).
  auto hdr = flv::file_header(true, true);
  fwrite(hdr.data(), 1, hdr.size(), f);
  int64_t start = g_get_monotonic_time();
  int64_t first_key_us = -1;
  long n = 0;
  g_autoptr(GCancellable) cancel = g_cancellable_new();
  while ((seconds <= 0 || g_get_monotonic_time() - start < seconds * 1e6) && (max_tags <= 0 || n < max_tags)) {
    Message m;
    if (!client.receive(m, cancel, &err)) {
      if (g_error_matches(err, GRTMP_ERROR, GRTMP_ERROR_CLOSED)) {
        g_clear_error(&err);
        break;
      }
      fclose(f);
      return fail(err);
    }
    if (m.type != kMsgAudio && m.type != kMsgVideo && m.type != kMsgDataAmf0) continue;
    if (first_key_us < 0 && m.type == kMsgVideo && m.payload.size() > 1 && (m.payload.data()[0] >> 4) == 1 &&
        m.payload.data()[1] == 1)
      first_key_us = g_get_monotonic_time() - connect_start;
    auto tag = flv::encode_tag(flv::tag_type_for_message(m.type), m.timestamp, m.payload.data(), m.payload.size());
    fwrite(tag.data(), 1, tag.size(), f);
    n++;
  }
  fclose(f);
  client.close();
  // FIRST_KEYFRAME_MS counts from the TCP connect (-1: none arrived);
  // CONNECT_MS and PLAY_MS say how much of it went to connect and to play.
  printf("TAGS %ld FIRST_KEYFRAME_MS %.1f CONNECT_MS %.1f PLAY_MS %.1f\n", n,
         first_key_us < 0 ? -1.0 : first_key_us / 1000.0, connected_us / 1000.0, play_started_us / 1000.0);
  return 0;
}

int main(int argc, char** argv) {
  // --insecure may come anywhere; drop it from argv.
  int w = 1;
  for (int r = 1; r < argc; r++) {
    if (!strcmp(argv[r], "--insecure")) g_insecure = true;
    else argv[w++] = argv[r];
  }
  argc = w;
  if (argc >= 4 && !strcmp(argv[1], "publish"))
    return publish(argv[2], argv[3], argc > 4 && !strcmp(argv[4], "--realtime"));
  if (argc >= 4 && !strcmp(argv[1], "play")) {
    double seconds = 0;
    long max_tags = 0;
    for (int i = 4; i + 1 < argc; i += 2) {
      if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
      else if (!strcmp(argv[i], "--max-tags")) max_tags = atol(argv[i + 1]);
    }
    return play(argv[2], argv[3], seconds, max_tags);
  }
  fprintf(stderr, "usage: %s publish FILE.flv URL [--realtime] | play URL OUT.flv [--seconds S] [--max-tags N]\n",
          argv[0]);
  return 2;
}
