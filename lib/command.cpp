// RTMP command and data messages: parsing into typed forms and the builders
// for what servers and clients send. The builders follow what deployed
// peers put on the wire (FMS / nginx-rtmp / SRS answers, FFmpeg / OBS
// requests) so that strict clients accept them.
#include "grtmp/command.h"

#include <cstdarg>

#include "grtmp/error.h"

namespace grtmp {

namespace {

using amf0::Marker;
using amf0::Value;

// FFmpeg sends publish / play on its "source channel", chunk stream 8.
constexpr uint32_t kCsidStreamCommand = 8;

bool set_error(GError** error, int code, const char* fmt, ...) G_GNUC_PRINTF(3, 4);
bool set_error(GError** error, int code, const char* fmt, ...) {
  if (!error) return false;
  va_list ap;
  va_start(ap, fmt);
  gchar* msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  g_set_error_literal(error, GRTMP_ERROR, code, msg);
  g_free(msg);
  return false;
}

const char* type_name(const Value& v) {
  switch (v.type) {
    case Marker::Number: return "number";
    case Marker::Boolean: return "boolean";
    case Marker::String: return "string";
    case Marker::LongString: return "long string";
    case Marker::Object: return "object";
    case Marker::Null: return "null";
    case Marker::Undefined: return "undefined";
    case Marker::EcmaArray: return "ECMA array";
    case Marker::StrictArray: return "strict array";
    case Marker::TypedObject: return "typed object";
    default: return "other value";
  }
}

// The AMF0 part of a command / data payload: type 17 and 15 carry a
// leading 0x00 (the AMF3 envelope's format byte) before the AMF0 values.
// Some peers leave it out; a command or data message starts with a string
// (0x02), so a leading 0x00 is never the start of the first value.
size_t amf_start(const Message& m) {
  const bool amf3_envelope = m.type == kMsgCommandAmf3 || m.type == kMsgDataAmf3;
  if (amf3_envelope && m.payload.size() > 0 && m.payload.data()[0] == 0x00) return 1;
  return 0;
}

Message make_message(uint8_t type, const std::vector<Value>& values, uint32_t stream_id,
                     uint32_t csid) {
  Message m;
  m.type = type;
  m.timestamp = 0;
  m.stream_id = stream_id;
  m.csid = csid;
  m.payload = amf0::encode_to_bytes(values);
  return m;
}

Value status_object(std::string_view level, std::string_view code, std::string_view description) {
  return Value::make_object({
      {"level", Value::make_string(level)},
      {"code", Value::make_string(code)},
      {"description", Value::make_string(description)},
  });
}

std::string string_prop(const Value& obj, std::string_view key) {
  auto s = obj.get_string(key);
  return s ? std::string(*s) : std::string();
}

}  // namespace

// ---- parsing ----

bool parse_command(const Message& m, Command& out, const amf0::Limits& limits, GError** error) {
  g_return_val_if_fail(error == nullptr || *error == nullptr, false);
  if (m.type != kMsgCommandAmf0 && m.type != kMsgCommandAmf3)
    return set_error(error, GRTMP_ERROR_PROTOCOL,
                     "message type %u (%s) is not a command (expected 20 or 17)", m.type,
                     message_type_name(m.type));
  const uint8_t* data = m.payload.data();
  const size_t len = m.payload.size();
  const size_t start = amf_start(m);
  std::vector<Value> values;
  if (!amf0::decode_all(data + start, len - start, values, limits, error)) {
    g_prefix_error(error, "command message (type %u, %zu bytes): ", m.type, len);
    return false;
  }
  if (values.empty())
    return set_error(error, GRTMP_ERROR_MALFORMED, "command message (type %u) is empty", m.type);
  if (!values[0].is_string())
    return set_error(error, GRTMP_ERROR_MALFORMED,
                     "command message (type %u): the first value (command name) is a %s, "
                     "expected a string",
                     m.type, type_name(values[0]));
  Command c;
  c.name = std::move(values[0].string);
  // A bare name (no transaction id, no command object) is tolerated: some
  // peers send notifications that way.
  if (values.size() > 1) {
    if (!values[1].is_number())
      return set_error(error, GRTMP_ERROR_MALFORMED,
                       "command '%s': the second value (transaction id) is a %s, expected a "
                       "number",
                       c.name.c_str(), type_name(values[1]));
    c.transaction_id = values[1].number;
  }
  if (values.size() > 2) c.object = std::move(values[2]);
  for (size_t i = 3; i < values.size(); i++) c.args.push_back(std::move(values[i]));
  out = std::move(c);
  return true;
}

bool parse_connect(const Command& c, ConnectParams& out, GError** error) {
  g_return_val_if_fail(error == nullptr || *error == nullptr, false);
  const Value& o = c.object;
  if (o.type != Marker::Object && o.type != Marker::EcmaArray && o.type != Marker::TypedObject)
    return set_error(error, GRTMP_ERROR_MALFORMED,
                     "%s: the command object is a %s, expected an object or ECMA array",
                     c.name.c_str(), type_name(o));
  ConnectParams p;
  p.app = string_prop(o, "app");
  if (auto s = o.get_string("tcUrl"))
    p.tc_url = *s;
  else if (auto s2 = o.get_string("tcurl"))
    p.tc_url = *s2;
  p.flash_ver = string_prop(o, "flashVer");
  if (p.flash_ver.empty()) p.flash_ver = string_prop(o, "flashver");
  p.swf_url = string_prop(o, "swfUrl");
  if (p.swf_url.empty()) p.swf_url = string_prop(o, "swfurl");
  p.page_url = string_prop(o, "pageUrl");
  if (p.page_url.empty()) p.page_url = string_prop(o, "pageurl");
  p.type = string_prop(o, "type");
  if (auto n = o.get_number("objectEncoding")) p.object_encoding = *n;
  if (const Value* list = o.get("fourCcList"); list && list->type == Marker::StrictArray) {
    for (const auto& e : list->elements)
      if (e.is_string()) p.fourcc_list.push_back(e.string);
  }
  out = std::move(p);
  return true;
}

void split_stream_name(std::string_view full, std::string& name, std::string& query) {
  const size_t q = full.find('?');
  if (q == std::string_view::npos) {
    name.assign(full);
    query.clear();
  } else {
    name.assign(full.substr(0, q));
    query.assign(full.substr(q + 1));
  }
}

bool parse_publish(const Command& c, PublishParams& out, GError** error) {
  g_return_val_if_fail(error == nullptr || *error == nullptr, false);
  if (c.args.empty() || !c.args[0].is_string())
    return set_error(error, GRTMP_ERROR_MALFORMED,
                     "%s: the stream name (argument 1) is %s, expected a string", c.name.c_str(),
                     c.args.empty() ? "missing" : type_name(c.args[0]));
  PublishParams p;
  split_stream_name(c.args[0].string, p.name, p.query);
  if (c.args.size() > 1 && c.args[1].is_string() && !c.args[1].string.empty())
    p.type = c.args[1].string;
  out = std::move(p);
  return true;
}

bool parse_play(const Command& c, PlayParams& out, GError** error) {
  g_return_val_if_fail(error == nullptr || *error == nullptr, false);
  PlayParams p;
  if (c.name == "play2") {
    // play2(NetStreamPlayOptions{streamName, oldStreamName, start, len,
    // transition}).
    if (c.args.empty() || !c.args[0].is_object_like())
      return set_error(error, GRTMP_ERROR_MALFORMED,
                       "play2: argument 1 is %s, expected a NetStreamPlayOptions object",
                       c.args.empty() ? "missing" : type_name(c.args[0]));
    const Value& o = c.args[0];
    auto name = o.get_string("streamName");
    if (!name)
      return set_error(error, GRTMP_ERROR_MALFORMED,
                       "play2: the options object has no streamName string");
    split_stream_name(*name, p.name, p.query);
    if (auto n = o.get_number("start")) p.start = *n;
    if (auto n = o.get_number("len")) p.duration = *n;
    out = std::move(p);
    return true;
  }
  if (c.args.empty() || !c.args[0].is_string())
    return set_error(error, GRTMP_ERROR_MALFORMED,
                     "%s: the stream name (argument 1) is %s, expected a string", c.name.c_str(),
                     c.args.empty() ? "missing" : type_name(c.args[0]));
  split_stream_name(c.args[0].string, p.name, p.query);
  if (c.args.size() > 1 && c.args[1].is_number()) p.start = c.args[1].number;
  if (c.args.size() > 2 && c.args[2].is_number()) p.duration = c.args[2].number;
  if (c.args.size() > 3) {
    // Boolean per the spec; some clients send a number.
    if (c.args[3].type == Marker::Boolean)
      p.reset = c.args[3].boolean;
    else if (c.args[3].is_number())
      p.reset = c.args[3].number != 0;
  }
  out = std::move(p);
  return true;
}

bool command_number_arg(const Command& c, size_t index, double& out) {
  if (index >= c.args.size() || !c.args[index].is_number()) return false;
  out = c.args[index].number;
  return true;
}

bool command_string_arg(const Command& c, size_t index, std::string& out) {
  if (index >= c.args.size() || !c.args[index].is_string()) return false;
  out = c.args[index].string;
  return true;
}

// ---- building ----

Message build_command(std::string_view name, double transaction_id, const Value& object,
                      const std::vector<Value>& args, uint32_t stream_id, uint32_t csid) {
  ByteWriter w;
  amf0::encode(Value::make_string(name), w);
  amf0::encode(Value::make_number(transaction_id), w);
  amf0::encode(object, w);
  amf0::encode_all(args, w);
  Message m;
  m.type = kMsgCommandAmf0;
  m.stream_id = stream_id;
  m.csid = csid;
  m.payload = w.to_bytes();
  return m;
}

Message build_connect_result(double transaction_id, double object_encoding,
                             const std::vector<std::string>& fourcc_list) {
  Value props = Value::make_object({
      {"fmsVer", Value::make_string("FMS/3,0,1,123")},
      {"capabilities", Value::make_number(31)},
      {"mode", Value::make_number(1)},
  });
  Value info = status_object("status", status::kConnectSuccess, "Connection succeeded.");
  info.set("objectEncoding", Value::make_number(object_encoding));
  if (!fourcc_list.empty()) {
    std::vector<Value> list;
    for (const auto& f : fourcc_list) list.push_back(Value::make_string(f));
    info.set("fourCcList", Value::make_strict_array(std::move(list)));
  }
  return build_command("_result", transaction_id, props, {info});
}

Message build_connect_error(double transaction_id, std::string_view code,
                            std::string_view description) {
  return build_error(transaction_id, code, description);
}

Message build_result(double transaction_id, const std::vector<Value>& args) {
  return build_command("_result", transaction_id, Value::make_null(), args);
}

Message build_error(double transaction_id, std::string_view code, std::string_view description) {
  return build_command("_error", transaction_id, Value::make_null(),
                       {status_object("error", code, description)});
}

Message build_on_status(uint32_t stream_id, std::string_view level, std::string_view code,
                        std::string_view description, std::string_view details) {
  Value info = status_object(level, code, description);
  if (!details.empty()) info.set("details", Value::make_string(details));
  return build_command("onStatus", 0, Value::make_null(), {info}, stream_id,
                       stream_id == 0 ? kCsidCommand : kCsidData);
}

Message build_on_fcpublish(std::string_view name, bool unpublish) {
  Value info = Value::make_object({
      {"code", Value::make_string(unpublish ? status::kUnpublishSuccess : status::kPublishStart)},
      {"description", Value::make_string(name)},
  });
  return build_command(unpublish ? "onFCUnpublish" : "onFCPublish", 0, Value::make_null(), {info});
}

Message build_sample_access(uint32_t stream_id) {
  return make_message(kMsgDataAmf0,
                      {Value::make_string("|RtmpSampleAccess"), Value::make_boolean(true),
                       Value::make_boolean(true)},
                      stream_id, kCsidData);
}

Message build_on_bw_done() { return build_command("onBWDone", 0, Value::make_null(), {}); }

Message build_connect(double transaction_id, const ConnectRequest& req) {
  // FFmpeg's order (app, type, flashVer, tcUrl): for the same values a
  // publisher's connect is byte-identical to FFmpeg's.
  Value o = Value::make_object({{"app", Value::make_string(req.app)}});
  if (!req.type.empty()) o.set("type", Value::make_string(req.type));
  o.set("flashVer", Value::make_string(req.flash_ver));
  o.set("tcUrl", Value::make_string(req.tc_url));
  if (!req.publisher) {
    o.set("fpad", Value::make_boolean(false));
    o.set("capabilities", Value::make_number(15));
    o.set("audioCodecs", Value::make_number(3191));
    o.set("videoCodecs", Value::make_number(252));
    o.set("videoFunction", Value::make_number(1));
    o.set("objectEncoding", Value::make_number(0));
  }
  return build_command("connect", transaction_id, o, {});
}

Message build_create_stream(double transaction_id) {
  return build_command("createStream", transaction_id, Value::make_null(), {});
}

Message build_release_stream(double transaction_id, std::string_view name) {
  return build_command("releaseStream", transaction_id, Value::make_null(),
                       {Value::make_string(name)});
}

Message build_fcpublish(double transaction_id, std::string_view name) {
  return build_command("FCPublish", transaction_id, Value::make_null(), {Value::make_string(name)});
}

Message build_fcunpublish(double transaction_id, std::string_view name) {
  return build_command("FCUnpublish", transaction_id, Value::make_null(),
                       {Value::make_string(name)});
}

Message build_publish(double transaction_id, uint32_t stream_id, std::string_view name,
                      std::string_view type) {
  return build_command("publish", transaction_id, Value::make_null(),
                       {Value::make_string(name), Value::make_string(type)}, stream_id,
                       kCsidStreamCommand);
}

Message build_play(double transaction_id, uint32_t stream_id, std::string_view name,
                   double start) {
  return build_command("play", transaction_id, Value::make_null(),
                       {Value::make_string(name), Value::make_number(start)}, stream_id,
                       kCsidStreamCommand);
}

Message build_delete_stream(double transaction_id, double stream_id) {
  return build_command("deleteStream", transaction_id, Value::make_null(),
                       {Value::make_number(stream_id)});
}

// ---- data messages ----

bool strip_set_data_frame(const Message& m, Bytes& out, std::string& handler_name,
                          GError** error) {
  g_return_val_if_fail(error == nullptr || *error == nullptr, false);
  if (m.type != kMsgDataAmf0 && m.type != kMsgDataAmf3)
    return set_error(error, GRTMP_ERROR_PROTOCOL,
                     "message type %u (%s) is not a data message (expected 18 or 15)", m.type,
                     message_type_name(m.type));
  const uint8_t* data = m.payload.data();
  const size_t len = m.payload.size();
  size_t off = amf_start(m);
  const amf0::Limits limits;
  Value first;
  if (!amf0::decode(data, len, off, first, limits, error)) {
    g_prefix_error(error, "data message (type %u, %zu bytes): ", m.type, len);
    return false;
  }
  if (!first.is_string())
    return set_error(error, GRTMP_ERROR_MALFORMED,
                     "data message (type %u): the first value is a %s, expected the handler "
                     "name string",
                     m.type, type_name(first));
  size_t keep_from = amf_start(m);
  if (first.string == "@setDataFrame") {
    // The payload players see starts right after the @setDataFrame string:
    // slice it, do not re-encode.
    keep_from = off;
    Value handler;
    if (!amf0::decode(data, len, off, handler, limits, error)) {
      g_prefix_error(error, "@setDataFrame data message: ");
      return false;
    }
    if (!handler.is_string())
      return set_error(error, GRTMP_ERROR_MALFORMED,
                       "@setDataFrame data message: the handler name is a %s, expected a string",
                       type_name(handler));
    handler_name = std::move(handler.string);
  } else {
    handler_name = std::move(first.string);
  }
  if (keep_from == 0)
    out = m.payload;
  else
    out = Bytes::adopt(g_bytes_new_from_bytes(m.payload.get(), keep_from, len - keep_from));
  return true;
}

bool parse_metadata(const Bytes& payload, Value& out, GError** error) {
  g_return_val_if_fail(error == nullptr || *error == nullptr, false);
  std::vector<Value> values;
  if (!amf0::decode_all(payload.data(), payload.size(), values, amf0::Limits(), error)) {
    g_prefix_error(error, "metadata: ");
    return false;
  }
  // "onMetaData", {...} (possibly still behind "@setDataFrame"): the first
  // object-like value is the metadata.
  for (auto& v : values) {
    if (v.is_object_like()) {
      out = std::move(v);
      return true;
    }
    if (!v.is_string())
      break;
  }
  return set_error(error, GRTMP_ERROR_MALFORMED,
                   "metadata: no object or ECMA array after the handler name (%zu values)",
                   values.size());
}

}  // namespace grtmp
