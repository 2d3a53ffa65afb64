// RTMP commands (types 20 and 17) and data messages (types 18 and 15):
// parsing into typed forms, and builders for what servers and clients send.
#pragma once

#include <glib.h>

#include <string>
#include <string_view>
#include <vector>

#include "grtmp/amf0.h"
#include "grtmp/message.h"

namespace grtmp {

// A command message: name, transaction id, command object, arguments.
struct Command {
  std::string name;
  double transaction_id = 0;
  amf0::Value object;              // usually Object (connect) or Null
  std::vector<amf0::Value> args;   // what follows the command object
};

// Parses a type 20 (AMF0) or type 17 (AMF3 envelope: a leading 0x00 byte,
// then AMF0) command. Errors: GRTMP_ERROR_MALFORMED / _LIMIT.
bool parse_command(const Message& m, Command& out, const amf0::Limits& limits, GError** error);

struct ConnectParams {
  std::string app;
  std::string tc_url;        // "tcUrl" or "tcurl"
  std::string flash_ver;
  std::string swf_url;
  std::string page_url;
  std::string type;          // "nonprivate"
  double object_encoding = 0;
  std::vector<std::string> fourcc_list;  // Enhanced RTMP
};
// Accepts the command object as Object or ECMA array.
bool parse_connect(const Command& c, ConnectParams& out, GError** error);

// Stream names may carry "?query"; `name` has it stripped, `query` holds it
// without the '?'.
void split_stream_name(std::string_view full, std::string& name, std::string& query);

struct PublishParams {
  std::string name;
  std::string query;
  std::string type = "live";  // live / record / append
};
bool parse_publish(const Command& c, PublishParams& out, GError** error);

struct PlayParams {
  std::string name;
  std::string query;
  double start = -2;      // -2 live or recorded, -1 live only, >=0 recorded offset
  double duration = -1;
  bool reset = true;
};
// play and play2 (play2: the first argument is an object with streamName).
bool parse_play(const Command& c, PlayParams& out, GError** error);

// deleteStream / closeStream / FCPublish / FCUnpublish / releaseStream /
// getStreamLength: the first argument as number (stream id) or string (name).
bool command_number_arg(const Command& c, size_t index, double& out);
bool command_string_arg(const Command& c, size_t index, std::string& out);

// Encodes a command (type 20) message.
Message build_command(std::string_view name, double transaction_id, const amf0::Value& object,
                      const std::vector<amf0::Value>& args, uint32_t stream_id = 0,
                      uint32_t csid = kCsidCommand);

// ---- status codes (onStatus "code" values) ----
namespace status {
inline constexpr const char* kConnectSuccess = "NetConnection.Connect.Success";
inline constexpr const char* kConnectRejected = "NetConnection.Connect.Rejected";
inline constexpr const char* kConnectClosed = "NetConnection.Connect.Closed";
inline constexpr const char* kPublishStart = "NetStream.Publish.Start";
inline constexpr const char* kPublishBadName = "NetStream.Publish.BadName";
inline constexpr const char* kPublishUnauthorized = "NetStream.Publish.Unauthorized";
inline constexpr const char* kUnpublishSuccess = "NetStream.Unpublish.Success";
inline constexpr const char* kPlayReset = "NetStream.Play.Reset";
inline constexpr const char* kPlayStart = "NetStream.Play.Start";
inline constexpr const char* kPlayStop = "NetStream.Play.Stop";
inline constexpr const char* kPlayStreamNotFound = "NetStream.Play.StreamNotFound";
inline constexpr const char* kPlayUnpublishNotify = "NetStream.Play.UnpublishNotify";
inline constexpr const char* kPlayPublishNotify = "NetStream.Play.PublishNotify";
inline constexpr const char* kPlayUnauthorized = "NetStream.Play.Unauthorized";
inline constexpr const char* kPlayFailed = "NetStream.Play.Failed";
inline constexpr const char* kDeleteStreamSuccess = "NetStream.DeleteStream.Success";
inline constexpr const char* kFailed = "NetStream.Failed";
}  // namespace status

// ---- server-side builders ----
// _result for connect: properties (fmsVer, capabilities, mode) and
// information (level, code, description, objectEncoding).
Message build_connect_result(double transaction_id, double object_encoding,
                             const std::vector<std::string>& fourcc_list = {});
Message build_connect_error(double transaction_id, std::string_view code, std::string_view description);
// _result(txn, null, args...)
Message build_result(double transaction_id, const std::vector<amf0::Value>& args = {});
Message build_error(double transaction_id, std::string_view code, std::string_view description);
// onStatus(0, null, {level, code, description, details?, clientid?}) on stream_id.
Message build_on_status(uint32_t stream_id, std::string_view level, std::string_view code,
                        std::string_view description, std::string_view details = {});
// onFCPublish / onFCUnpublish (code NetStream.Publish.Start / Unpublish.Success).
Message build_on_fcpublish(std::string_view name, bool unpublish);
// |RtmpSampleAccess(true, true) data message on stream_id.
Message build_sample_access(uint32_t stream_id);
// onBWDone for _checkbw.
Message build_on_bw_done();

// ---- client-side builders ----
struct ConnectRequest {
  std::string app;
  std::string tc_url;
  std::string flash_ver = "FMLE/3.0 (compatible; grtmp)";
  std::string type = "nonprivate";
  bool publisher = true;  // adds fpad/capabilities/audioCodecs/videoCodecs for players
};
Message build_connect(double transaction_id, const ConnectRequest& req);
Message build_create_stream(double transaction_id);
Message build_release_stream(double transaction_id, std::string_view name);
Message build_fcpublish(double transaction_id, std::string_view name);
Message build_fcunpublish(double transaction_id, std::string_view name);
Message build_publish(double transaction_id, uint32_t stream_id, std::string_view name,
                      std::string_view type = "live");
Message build_play(double transaction_id, uint32_t stream_id, std::string_view name,
                   double start = -2);
Message build_delete_stream(double transaction_id, double stream_id);

// ---- data messages ----
// Strips "@setDataFrame" from a publisher's data message: returns the
// payload that players and FLV files carry ("onMetaData", {...}). When the
// message does not start with @setDataFrame the payload is returned as is.
// Type 15 (AMF3 data) loses its leading 0x00 so the result is plain AMF0.
bool strip_set_data_frame(const Message& m, Bytes& out, std::string& handler_name, GError** error);
// Parses an onMetaData payload into its properties (object or ECMA array).
bool parse_metadata(const Bytes& payload, amf0::Value& out, GError** error);

}  // namespace grtmp
