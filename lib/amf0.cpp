// AMF0 decoder and encoder (AMF0 specification, Adobe, 2006).
//
// Decoding is recursive over containers, but the depth is checked before
// every descent, so the stack use is bounded by Limits::max_depth (keep it
// modest: encoding, comparing and destroying a Value recurse too).
// Declared counts are never trusted for allocation: a strict array that
// claims 2^32-1 elements fails on the max_elements limit before anything is
// read, and no declared count reserves more than the buffer could hold.
//
// Allocation: each container's vector is reserved once, to size, instead of
// reallocating and moving its 160-byte properties at every doubling.
// - An ECMA array's or strict array's declared count is used if it fits a
//   budget for the whole decode call: the buffer's length, where a property
//   takes 3 bytes (key length and marker, the least it can be on the wire)
//   and an element 1. So nested containers with lying counts cannot reserve
//   more, together, than an honest buffer of that length would fill.
// - Otherwise (objects, counts over the budget, a count that turns out too
//   small) a look-ahead: it steps over the scalar members that follow
//   (numbers, booleans, strings, null, ...: a few loads each), stops at the
//   first nested container and counts one for it; once the container is
//   decoded it looks ahead again, and a vector that must grow at least
//   doubles. Every byte is looked at by at most one look-ahead (linear
//   time), and it only counts members that are really in the buffer.
//
// Byte-exact round trip: the decoded Value keeps the marker (String vs
// LongString), the ECMA array's declared count, the Date's time zone and the
// raw bytes after an AvmPlus marker, so encode(decode(x)) == x for every
// vector this decoder accepts.
//
// AvmPlus (0x11): one AMF3 value follows (AMF3 specification, Adobe, 2013),
// then AMF0 again; Flash clients with objectEncoding 3 send command
// arguments this way in type-17 messages. It is decoded into the AMF0 model:
//   undefined, null, false, true -> Undefined, Null, Boolean
//   integer (U29, sign-extended 29 bits), double -> Number
//   string -> String (LongString past 65535 bytes, so it encodes as AMF0)
//   xml-doc, xml -> XmlDocument;  date -> Date (time zone 0)
//   array -> StrictArray when it has no associative part, else EcmaArray
//            with the associative members then the dense ones keyed "0", "1", ...
//   object -> Object, or TypedObject when its traits name a class; sealed
//            members first, then dynamic ones
//   byte array, vectors, dictionary, externalizable objects ->
//            GRTMP_ERROR_UNSUPPORTED (no place for them in the model)
// Reference tables (strings, objects, traits) are scoped to one 0x11
// switch: each AMF3 value starts with empty tables. That is what an AMF0
// stream with AMF3 values in it does on the wire (every switch is a new
// AMF3 "message"), and a reference to a table entry that does not exist is
// GRTMP_ERROR_MALFORMED. A reference becomes a copy of what it refers to:
// the copies count towards max_total_values, max_depth and
// max_amf3_copied, so a few reference bytes cannot stand for gigabytes. A
// reference to an object still being decoded (a cycle) cannot be a tree:
// GRTMP_ERROR_UNSUPPORTED.
// Round trip: the decoded value keeps its wire bytes (Value::amf3), which
// encode writes again while the value is unchanged, so encode(decode(x)) ==
// x holds for AMF3 too; we never encode AMF3 otherwise.
#include "grtmp/amf0.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <tuple>

#include "grtmp/error.h"

namespace grtmp::amf0 {

namespace {

const char* marker_name(uint8_t m) {
  switch (static_cast<Marker>(m)) {
    case Marker::Number:
      return "number";
    case Marker::Boolean:
      return "boolean";
    case Marker::String:
      return "string";
    case Marker::Object:
      return "object";
    case Marker::MovieClip:
      return "movieclip";
    case Marker::Null:
      return "null";
    case Marker::Undefined:
      return "undefined";
    case Marker::Reference:
      return "reference";
    case Marker::EcmaArray:
      return "ecma-array";
    case Marker::ObjectEnd:
      return "object-end";
    case Marker::StrictArray:
      return "strict-array";
    case Marker::Date:
      return "date";
    case Marker::LongString:
      return "long-string";
    case Marker::Unsupported:
      return "unsupported";
    case Marker::RecordSet:
      return "recordset";
    case Marker::XmlDocument:
      return "xml-document";
    case Marker::TypedObject:
      return "typed-object";
    case Marker::AvmPlus:
      return "avmplus";
  }
  return "unknown";
}

// Builds a Value to decode into, default-initialised member by member.
// emplace_back(Fresh{}) constructs it in place through this conversion;
// emplace_back() would value-initialise it instead, which GCC compiles to a
// zero fill of all 128 bytes with `rep stos` (slow to start: 12 % of a
// metadata decode) before storing the member initialisers anyway.
struct Fresh {
  operator Value() const {
    Value v;
    return v;
  }
};

// Grows `v` to hold `n` elements: exactly the first time, then at least
// doubling, so repeated look-aheads in one container stay amortised linear.
template <class T>
void reserve_for(std::vector<T>& v, size_t n) {
  if (n > v.capacity()) v.reserve(std::max(n, 2 * v.capacity()));
}

class Decoder {
 public:
  Decoder(const uint8_t* data, size_t len, const Limits& limits, GError** error)
      : base_(data), len_(len), limits_(limits), error_(error), budget_(len) {}

  // Values ahead of `off` up to the end of the buffer, as far as a cheap
  // look-ahead can tell (see values_ahead); sizes decode_all's vector.
  size_t top_level_values_ahead(size_t off) const { return values_ahead(off, len_ - off); }

  // Decodes one value at `off`. `depth` is the number of containers that
  // enclose the value.
  bool value(size_t& off, Value& out, uint32_t depth) {
    if (++total_ > limits_.max_total_values)
      return limit("AMF0 value count exceeds max_total_values (%u) at offset %zu",
                   limits_.max_total_values, off);
    if (off >= len_) return truncated(off, "value marker");
    const size_t start = off;
    const uint8_t m = base_[off++];
    out.type = static_cast<Marker>(m);
    switch (static_cast<Marker>(m)) {
      case Marker::Number:
        return f64(off, out.number, "number");
      case Marker::Boolean:
        // The spec: 0 is false, anything else true. encode writes 0 or 1, so
        // a non-canonical true byte is the one thing that does not round
        // trip byte-exact.
        if (len_ - off < 1) return truncated(off, "boolean");
        out.boolean = base_[off++] != 0;
        return true;
      case Marker::String:
        return short_string(off, out.string, "string");
      case Marker::LongString:
        return long_string(off, out.string, "long string");
      case Marker::XmlDocument:
        return long_string(off, out.string, "XML document");
      case Marker::Null:
      case Marker::Undefined:
      case Marker::Unsupported:
        return true;
      case Marker::Reference: {
        if (len_ - off < 2) return truncated(off, "reference index");
        out.reference = uint16_t((base_[off] << 8) | base_[off + 1]);
        off += 2;
        return true;
      }
      case Marker::Date: {
        if (!f64(off, out.number, "date")) return false;
        if (len_ - off < 2) return truncated(off, "date time zone");
        out.timezone = int16_t(uint16_t((base_[off] << 8) | base_[off + 1]));
        off += 2;
        return true;
      }
      case Marker::Object:
        if (!enter(start, depth)) return false;
        return properties(off, out, depth + 1);
      case Marker::TypedObject:
        if (!enter(start, depth)) return false;
        if (!short_string(off, out.string, "typed object class name")) return false;
        return properties(off, out, depth + 1);
      case Marker::EcmaArray: {
        if (!enter(start, depth)) return false;
        if (len_ - off < 4) return truncated(off, "ECMA array count");
        out.ecma_count = load_u32(base_ + off);  // advisory: read until object end
        off += 4;
        return properties(off, out, depth + 1, out.ecma_count);
      }
      case Marker::StrictArray: {
        if (!enter(start, depth)) return false;
        if (len_ - off < 4) return truncated(off, "strict array count");
        const uint32_t count = load_u32(base_ + off);
        if (count > limits_.max_elements)
          return limit(
              "AMF0 strict array at offset %zu declares %u elements, exceeds "
              "max_elements (%u)",
              start, count, limits_.max_elements);
        off += 4;
        // Every element takes at least one byte: a count larger than what is
        // left cannot be satisfied.
        if (count > len_ - off)
          return malformed(
              "AMF0 strict array at offset %zu declares %u elements but only %zu "
              "bytes remain",
              start, count, len_ - off);
        std::vector<Value>& elems = out.elements;
        size_t planned = claim(count, 1);  // elements reserved for so far
        reserve_for(elems, planned);
        for (uint32_t i = 0; i < count; i++) {
          if (elems.size() == planned) {
            planned = elems.size() + values_ahead(off, count - i);
            reserve_for(elems, planned);
          }
          elems.emplace_back(Fresh{});
          if (!value(off, elems.back(), depth + 1)) return false;
        }
        return true;
      }
      case Marker::ObjectEnd:
        return malformed(
            "AMF0 object-end marker at offset %zu where a value was expected "
            "(only valid after an empty key inside an object)",
            start);
      case Marker::AvmPlus:
        return amf3_switch(off, out, depth);
      case Marker::MovieClip:
      case Marker::RecordSet:
        return malformed("AMF0 marker 0x%02x (%s) at offset %zu is reserved by the spec", m,
                         marker_name(m), start);
    }
    return malformed("unknown AMF0 marker 0x%02x at offset %zu", m, start);
  }

 private:
  // ---- AMF3 (after an AvmPlus marker; see the top of the file) ----

  enum : uint8_t {
    kA3Undefined = 0x00,
    kA3Null = 0x01,
    kA3False = 0x02,
    kA3True = 0x03,
    kA3Integer = 0x04,
    kA3Double = 0x05,
    kA3String = 0x06,
    kA3XmlDoc = 0x07,
    kA3Date = 0x08,
    kA3Array = 0x09,
    kA3Object = 0x0a,
    kA3Xml = 0x0b,
    kA3ByteArray = 0x0c,
    kA3VectorInt = 0x0d,
    kA3VectorUint = 0x0e,
    kA3VectorDouble = 0x0f,
    kA3VectorObject = 0x10,
    kA3Dictionary = 0x11,
  };

  // An object table entry (object, array, date, XML). Values are not kept in
  // the table, which would copy every container once per enclosing level:
  // the entry records where its value sits in the tree (the enclosing
  // container's entry and the slot in it), found from the root on a
  // reference. Only containers enclose values, and every container has an
  // entry, so the chain always reaches the root.
  struct A3Object {
    int32_t parent;  // entry of the enclosing container, -1 for the root
    uint32_t slot;   // index in the parent's properties or elements
    bool element;    // slot is in elements (StrictArray), else properties
    bool done;       // fully decoded: a reference to it can be copied
  };
  struct A3Traits {
    std::string_view class_name;
    bool dynamic;
    std::vector<std::string_view> members;  // sealed member names
  };
  // Reference tables of one AMF3 value (one 0x11 switch).
  struct A3Tables {
    Value* root = nullptr;
    std::vector<std::string_view> strings;  // into the buffer
    std::vector<A3Object> objects;
    std::vector<A3Traits> traits;
  };
  // Where a value being decoded goes, for its object table entry.
  struct A3Slot {
    int32_t parent;
    uint32_t slot;
    bool element;
  };

  // One AMF3 value at `off` (just after the 0x11 marker) into `out`, which
  // the AvmPlus marker's value() call has already counted.
  bool amf3_switch(size_t& off, Value& out, uint32_t depth) {
    A3Tables t;
    t.root = &out;
    a3_ = &t;
    const size_t begin = off;
    const bool ok = a3_value(off, out, depth, A3Slot{-1, 0, false});
    a3_ = nullptr;
    if (!ok) return false;
    auto src = std::make_shared<Amf3Source>();
    src->bytes.assign(reinterpret_cast<const char*>(base_ + begin), off - begin);
    src->decoded = out;
    out.amf3 = std::move(src);
    return true;
  }

  bool a3_value(size_t& off, Value& out, uint32_t depth, A3Slot where) {
    if (where.parent >= 0 && ++total_ > limits_.max_total_values)
      return limit("AMF3 value count exceeds max_total_values (%u) at offset %zu",
                   limits_.max_total_values, off);
    if (off >= len_) return truncated(off, "AMF3 value marker");
    const size_t start = off;
    const uint8_t m = base_[off++];
    switch (m) {
      case kA3Undefined:
        out.type = Marker::Undefined;
        return true;
      case kA3Null:
        out.type = Marker::Null;
        return true;
      case kA3False:
      case kA3True:
        out.type = Marker::Boolean;
        out.boolean = m == kA3True;
        return true;
      case kA3Integer: {
        uint32_t u;
        if (!u29(off, u, "AMF3 integer")) return false;
        // 29-bit two's complement: bit 28 is the sign.
        out.type = Marker::Number;
        out.number = (u & 0x10000000u) ? double(int32_t(u) - 0x20000000) : double(u);
        return true;
      }
      case kA3Double:
        out.type = Marker::Number;
        return f64(off, out.number, "AMF3 double");
      case kA3String: {
        std::string_view s;
        if (!a3_string(off, s, "AMF3 string", true)) return false;
        out.type = s.size() > 0xffff ? Marker::LongString : Marker::String;
        out.string.assign(s);
        return true;
      }
      case kA3XmlDoc:
      case kA3Xml: {
        uint32_t h;
        if (!u29(off, h, "AMF3 XML length")) return false;
        if (!(h & 1)) return a3_reference(start, h >> 1, out, depth);
        out.type = Marker::XmlDocument;
        const char* p = nullptr;
        if (!string_span(off, 0, h >> 1, p, "AMF3 XML")) return false;
        out.string.assign(p, h >> 1);
        return a3_register(where, true) >= 0;
      }
      case kA3Date: {
        uint32_t h;
        if (!u29(off, h, "AMF3 date")) return false;
        if (!(h & 1)) return a3_reference(start, h >> 1, out, depth);
        out.type = Marker::Date;
        if (!f64(off, out.number, "AMF3 date")) return false;
        return a3_register(where, true) >= 0;
      }
      case kA3Array:
        return a3_array(start, off, out, depth, where);
      case kA3Object:
        return a3_object(start, off, out, depth, where);
      case kA3ByteArray:
      case kA3VectorInt:
      case kA3VectorUint:
      case kA3VectorDouble:
      case kA3VectorObject:
      case kA3Dictionary:
        return fail(GRTMP_ERROR_UNSUPPORTED,
                    "AMF3 %s (marker 0x%02x) at offset %zu is not supported (no AMF0 "
                    "equivalent)",
                    m == kA3ByteArray ? "byte array"
                    : m == kA3Dictionary ? "dictionary"
                                         : "vector",
                    m, start);
    }
    return malformed("unknown AMF3 marker 0x%02x at offset %zu", m, start);
  }

  // U29: 1 to 4 bytes, 7 bits each with a continuation bit, the 4th all 8.
  bool u29(size_t& off, uint32_t& v, const char* what) {
    v = 0;
    for (int i = 0; i < 3; i++) {
      if (off >= len_) return truncated(off, what);
      const uint8_t b = base_[off++];
      v = (v << 7) | (b & 0x7f);
      if (!(b & 0x80)) return true;
    }
    if (off >= len_) return truncated(off, what);
    v = (v << 8) | base_[off++];
    return true;
  }

  // UTF-8-vr: a string table reference or an inline string (added to the
  // table unless empty). `counted`: a referenced string is copied into the
  // tree (a string value, a member or class name), so it counts as copied.
  bool a3_string(size_t& off, std::string_view& s, const char* what, bool counted) {
    const size_t start = off;
    uint32_t h;
    if (!u29(off, h, what)) return false;
    if (!(h & 1)) {
      const uint32_t i = h >> 1;
      if (i >= a3_->strings.size())
        return malformed("%s at offset %zu refers to string #%u, only %zu strings so far",
                         what, start, i, a3_->strings.size());
      s = a3_->strings[i];
      return !counted || copied(s.size(), start);
    }
    const char* p = nullptr;
    if (!string_span(off, 0, h >> 1, p, what)) return false;
    s = std::string_view(p, h >> 1);
    if (!s.empty()) a3_->strings.push_back(s);
    return true;
  }

  // Adds a complex value to the object table; returns its index, or -1 on
  // error (the table never gets more entries than values, which are bounded).
  int32_t a3_register(A3Slot where, bool done) {
    if (a3_->objects.size() >= size_t(INT32_MAX)) {
      limit("AMF3 object table is full");
      return -1;
    }
    a3_->objects.push_back(A3Object{where.parent, where.slot, where.element, done});
    return int32_t(a3_->objects.size() - 1);
  }

  // An object reference: copies the referred value (complete, and fitting
  // the limits) into `out`.
  bool a3_reference(size_t start, uint32_t i, Value& out, uint32_t depth) {
    if (i >= a3_->objects.size())
      return malformed("AMF3 reference at offset %zu to object #%u, only %zu objects so far",
                       start, i, a3_->objects.size());
    if (!a3_->objects[i].done)
      return fail(GRTMP_ERROR_UNSUPPORTED,
                  "AMF3 reference at offset %zu to object #%u, which encloses it: a cycle "
                  "cannot be represented",
                  start, i);
    // Walk up to the root, then down along the slots.
    std::vector<uint32_t> chain;
    for (int32_t e = int32_t(i); a3_->objects[e].parent >= 0; e = a3_->objects[e].parent)
      chain.push_back(uint32_t(e));
    const Value* v = a3_->root;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      const A3Object& o = a3_->objects[*it];
      v = o.element ? &v->elements[o.slot] : &v->properties[o.slot].second;
    }
    size_t values = 0, bytes = 0;
    uint32_t height = 0;
    measure(*v, 0, values, height, bytes);
    if (depth + height > limits_.max_depth)
      return limit("AMF3 reference at offset %zu: nesting depth exceeds max_depth (%u)", start,
                   limits_.max_depth);
    // The reference itself was counted as one value.
    if (values - 1 > limits_.max_total_values - std::min(total_, limits_.max_total_values))
      return limit("AMF3 reference at offset %zu: value count exceeds max_total_values (%u)",
                   start, limits_.max_total_values);
    total_ += uint32_t(values - 1);
    if (!copied(16 * values + bytes, start)) return false;
    out = *v;
    return true;
  }

  // Values, container height and string/key bytes of a subtree (bounded by
  // the limits it was decoded under, so the recursion is too).
  static void measure(const Value& v, uint32_t level, size_t& values, uint32_t& height,
                      size_t& bytes) {
    values++;
    bytes += v.string.size();
    if (!v.properties.empty() || !v.elements.empty() || v.type == Marker::Object ||
        v.type == Marker::EcmaArray || v.type == Marker::StrictArray ||
        v.type == Marker::TypedObject)
      height = std::max(height, level + 1);
    for (const auto& [k, c] : v.properties) {
      bytes += k.size();
      measure(c, level + 1, values, height, bytes);
    }
    for (const auto& c : v.elements) measure(c, level + 1, values, height, bytes);
  }

  bool copied(size_t n, size_t at) {
    if (n > limits_.max_amf3_copied - std::min(copied_, size_t(limits_.max_amf3_copied)))
      return limit("AMF3 references copy more than max_amf3_copied (%u) at offset %zu",
                   limits_.max_amf3_copied, at);
    copied_ += n;
    return true;
  }

  // Checks a member count against max_elements and what is left (each
  // member takes at least `min_bytes`).
  bool a3_count(size_t start, size_t n, size_t off, size_t min_bytes, const char* what) {
    if (n > limits_.max_elements)
      return limit("AMF3 %s at offset %zu has %zu members, exceeds max_elements (%u)", what, start,
                   n, limits_.max_elements);
    if (n > (len_ - off) / min_bytes)
      return malformed("AMF3 %s at offset %zu declares %zu members but only %zu bytes remain",
                       what, start, n, len_ - off);
    return true;
  }

  // Name/value pairs up to an empty name, appended to `props`: an AMF3
  // array's associative part, an object's dynamic members.
  bool a3_named_members(size_t& off, std::vector<Property>& props, int32_t self, uint32_t depth,
                        const char* container, const char* name_what) {
    for (;;) {
      const size_t key_off = off;
      std::string_view key;
      const std::string what = std::string("AMF3 ") + container + " " + name_what;
      if (!a3_string(off, key, what.c_str(), true)) return false;
      if (key.empty()) return true;
      if (props.size() >= limits_.max_elements)
        return limit("AMF3 %s has more than max_elements (%u) members at offset %zu", container,
                     limits_.max_elements, key_off);
      props.emplace_back(std::piecewise_construct, std::forward_as_tuple(key),
                         std::forward_as_tuple(Fresh{}));
      if (!a3_value(off, props.back().second, depth + 1,
                    A3Slot{self, uint32_t(props.size() - 1), false}))
        return false;
    }
  }

  bool a3_array(size_t start, size_t& off, Value& out, uint32_t depth, A3Slot where) {
    uint32_t h;
    if (!u29(off, h, "AMF3 array")) return false;
    if (!(h & 1)) return a3_reference(start, h >> 1, out, depth);
    if (!enter(start, depth)) return false;
    const uint32_t dense = h >> 1;
    const int32_t self = a3_register(where, false);
    if (self < 0) return false;
    // The associative part: name/value pairs up to an empty name.
    std::vector<Property>& props = out.properties;
    if (!a3_named_members(off, props, self, depth, "array", "key")) return false;
    if (size_t(dense) + props.size() > limits_.max_elements)
      return limit("AMF3 array at offset %zu has %zu members, exceeds max_elements (%u)", start,
                   size_t(dense) + props.size(), limits_.max_elements);
    if (!a3_count(start, dense, off, 1, "array")) return false;  // each element a byte at least
    if (props.empty()) {
      out.type = Marker::StrictArray;
      out.elements.reserve(dense);
      for (uint32_t i = 0; i < dense; i++) {
        out.elements.emplace_back(Fresh{});
        if (!a3_value(off, out.elements.back(), depth + 1, A3Slot{self, i, true})) return false;
      }
    } else {
      // Mixed: an ECMA array, the dense part keyed by its indexes as AMF0
      // encoders write arrays.
      out.type = Marker::EcmaArray;
      props.reserve(props.size() + dense);
      for (uint32_t i = 0; i < dense; i++) {
        props.emplace_back(std::to_string(i), Fresh{});
        if (!a3_value(off, props.back().second, depth + 1,
                      A3Slot{self, uint32_t(props.size() - 1), false}))
          return false;
      }
      out.ecma_count = uint32_t(props.size());
    }
    a3_->objects[self].done = true;
    return true;
  }

  bool a3_object(size_t start, size_t& off, Value& out, uint32_t depth, A3Slot where) {
    uint32_t h;
    if (!u29(off, h, "AMF3 object")) return false;
    if (!(h & 1)) return a3_reference(start, h >> 1, out, depth);
    if (!enter(start, depth)) return false;
    const int32_t self = a3_register(where, false);
    if (self < 0) return false;
    size_t ti;
    bool traits_ref = false;
    if (!(h & 2)) {
      ti = h >> 2;
      if (ti >= a3_->traits.size())
        return malformed("AMF3 object at offset %zu refers to traits #%zu, only %zu so far",
                         start, ti, a3_->traits.size());
      traits_ref = true;
    } else {
      std::string_view cls;
      if (!a3_string(off, cls, "AMF3 class name", true)) return false;
      if (h & 4)
        return fail(GRTMP_ERROR_UNSUPPORTED,
                    "AMF3 object at offset %zu has externalizable traits (class '%.*s'): its "
                    "body is class-specific and cannot be decoded",
                    start, int(std::min<size_t>(cls.size(), 200)), cls.data());
      const size_t sealed = h >> 4;
      if (!a3_count(start, sealed, off, 1, "object traits")) return false;
      A3Traits tr{cls, (h & 8) != 0, {}};
      tr.members.reserve(sealed);
      for (size_t i = 0; i < sealed; i++) {
        std::string_view name;
        if (!a3_string(off, name, "AMF3 sealed member name", true)) return false;
        tr.members.push_back(name);
      }
      a3_->traits.push_back(std::move(tr));
      ti = a3_->traits.size() - 1;
    }
    // Not a reference: the table may grow while members decode (nested
    // objects with their own traits).
    const std::string_view cls = a3_->traits[ti].class_name;
    const bool dynamic = a3_->traits[ti].dynamic;
    const size_t sealed = a3_->traits[ti].members.size();
    if (traits_ref) {
      size_t names = cls.size();
      for (auto n : a3_->traits[ti].members) names += n.size();
      if (!copied(names, start)) return false;
      // Each sealed value takes at least a byte.
      if (!a3_count(start, sealed, off, 1, "object")) return false;
    }
    out.type = cls.empty() ? Marker::Object : Marker::TypedObject;
    out.string.assign(cls);
    std::vector<Property>& props = out.properties;
    props.reserve(sealed);
    for (size_t i = 0; i < sealed; i++) {
      props.emplace_back(std::piecewise_construct,
                         std::forward_as_tuple(a3_->traits[ti].members[i]),
                         std::forward_as_tuple(Fresh{}));
      if (!a3_value(off, props.back().second, depth + 1, A3Slot{self, uint32_t(i), false}))
        return false;
    }
    if (dynamic && !a3_named_members(off, props, self, depth, "object", "dynamic member name")) return false;
    a3_->objects[self].done = true;
    return true;
  }

  // Properties of an Object / EcmaArray / TypedObject, up to and including
  // the object end (empty key + 0x09).
  // `declared`: an ECMA array's count, 0 for objects.
  bool properties(size_t& off, Value& out, uint32_t depth, uint32_t declared = 0) {
    std::vector<Property>& props = out.properties;
    // A count over max_elements is a lie or a limit error: look ahead instead.
    size_t planned = claim(declared <= limits_.max_elements ? declared : 0, 3);  // reserved for
    reserve_for(props, planned);
    for (;;) {
      if (props.size() == planned) {
        // size() <= max_elements here: the limit is checked before each add.
        planned = props.size() + properties_ahead(off, limits_.max_elements - props.size());
        reserve_for(props, planned);
      }
      const size_t key_off = off;
      const char* key = nullptr;
      size_t key_len = 0;
      if (!short_string_span(off, key, key_len, "property name")) return false;
      if (key_len == 0) {
        if (off >= len_) return truncated(off, "object end marker");
        if (base_[off] == static_cast<uint8_t>(Marker::ObjectEnd)) {
          off++;
          return true;
        }
        // An empty key followed by a real value: unusual but representable.
      }
      if (props.size() >= limits_.max_elements)
        return limit("AMF0 %s has more than max_elements (%u) properties at offset %zu",
                     marker_name(uint8_t(out.type)), limits_.max_elements, key_off);
      // The key is built in place from the buffer: no temporary string.
      props.emplace_back(std::piecewise_construct, std::forward_as_tuple(key, key_len),
                         std::forward_as_tuple(Fresh{}));
      if (!value(off, props.back().second, depth)) return false;
    }
  }

  // Reserving by a declared count of `n` members of at least `bytes` each:
  // `n` if it fits the budget (and takes it from the budget), else 0 (look
  // ahead instead).
  size_t claim(size_t n, size_t bytes) {
    if (n > budget_ / bytes) return 0;
    budget_ -= n * bytes;
    return n;
  }

  // Look-ahead for reserving (never an error: decoding reports those). Steps
  // `p` over one scalar value and returns true; false for a container, a
  // marker that is not a value, or a value that does not fit the buffer.
  bool skip_scalar(size_t& p) const {
    if (p >= len_) return false;
    const size_t left = len_ - p - 1;  // after the marker
    const uint8_t* q = base_ + p + 1;
    size_t n;
    switch (static_cast<Marker>(base_[p])) {
      case Marker::Number:
        n = 8;
        break;
      case Marker::Boolean:
        n = 1;
        break;
      case Marker::Null:
      case Marker::Undefined:
      case Marker::Unsupported:
        n = 0;
        break;
      case Marker::Reference:
        n = 2;
        break;
      case Marker::Date:
        n = 10;
        break;
      case Marker::String:
        if (left < 2) return false;
        n = 2 + ((size_t(q[0]) << 8) | q[1]);
        break;
      case Marker::LongString:
      case Marker::XmlDocument:
        if (left < 4) return false;
        n = 4 + size_t(load_u32(q));
        break;
      default:
        return false;
    }
    if (n > left) return false;
    p += 1 + n;
    return true;
  }

  // How many values to reserve for at `p`, at most `cap`: the scalars that
  // follow, plus one for the value that stopped the look-ahead.
  size_t values_ahead(size_t p, size_t cap) const {
    size_t n = 0;
    while (n < cap && skip_scalar(p)) n++;
    return n < cap ? n + 1 : cap;
  }

  // The same for properties; the object end stops it without the extra one.
  size_t properties_ahead(size_t p, size_t cap) const {
    size_t n = 0;
    while (n < cap) {
      if (len_ - p < 2) break;
      const size_t k = (size_t(base_[p]) << 8) | base_[p + 1];
      if (k > len_ - p - 2) break;
      p += 2 + k;
      if (k == 0 && p < len_ && base_[p] == static_cast<uint8_t>(Marker::ObjectEnd)) return n;
      if (!skip_scalar(p)) break;
      n++;
    }
    return n < cap ? n + 1 : cap;
  }

  bool enter(size_t start, uint32_t depth) {
    if (depth + 1 > limits_.max_depth)
      return limit("AMF0 nesting depth exceeds max_depth (%u) at offset %zu", limits_.max_depth,
                   start);
    return true;
  }

  bool f64(size_t& off, double& v, const char* what) {
    if (len_ - off < 8) return truncated(off, what);
    uint64_t bits = (uint64_t(load_u32(base_ + off)) << 32) | load_u32(base_ + off + 4);
    std::memcpy(&v, &bits, sizeof v);
    off += 8;
    return true;
  }

  bool short_string(size_t& off, std::string& s, const char* what) {
    const char* p = nullptr;
    size_t n = 0;
    if (!short_string_span(off, p, n, what)) return false;
    s.assign(p, n);
    return true;
  }

  // A short string's bytes in the buffer, checked and stepped over.
  bool short_string_span(size_t& off, const char*& p, size_t& n, const char* what) {
    if (len_ - off < 2) return truncated(off, what);
    n = (size_t(base_[off]) << 8) | base_[off + 1];
    return string_span(off, 2, n, p, what);
  }

  bool long_string(size_t& off, std::string& s, const char* what) {
    if (len_ - off < 4) return truncated(off, what);
    const size_t n = load_u32(base_ + off);
    return string_body(off, 4, n, s, what);
  }

  bool string_body(size_t& off, size_t hdr, size_t n, std::string& s, const char* what) {
    const char* p = nullptr;
    if (!string_span(off, hdr, n, p, what)) return false;
    s.assign(p, n);
    return true;
  }

  // Checks a string of `n` bytes after a `hdr`-byte length at `off` against
  // max_string and the buffer, points `p` at its bytes and steps over it.
  bool string_span(size_t& off, size_t hdr, size_t n, const char*& p, const char* what) {
    // AMF3 callers name their format themselves ("AMF3 string").
    const char* amf = std::strncmp(what, "AMF3 ", 5) == 0 ? "" : "AMF0 ";
    if (n > limits_.max_string)
      return limit("%s%s at offset %zu is %zu bytes, exceeds max_string (%u)", amf, what, off, n,
                   limits_.max_string);
    if (n > len_ - off - hdr)
      return malformed("%s%s at offset %zu claims %zu bytes but only %zu remain", amf, what, off,
                       n, len_ - off - hdr);
    p = reinterpret_cast<const char*>(base_ + off + hdr);
    off += hdr + n;
    return true;
  }

  bool truncated(size_t off, const char* what) {
    return malformed("AMF0 data truncated at offset %zu (reading %s, buffer is %zu bytes)", off,
                     what, len_);
  }

  bool malformed(const char* fmt, ...) G_GNUC_PRINTF(2, 3) {
    va_list ap;
    va_start(ap, fmt);
    vfail(GRTMP_ERROR_MALFORMED, fmt, ap);
    va_end(ap);
    return false;
  }
  bool limit(const char* fmt, ...) G_GNUC_PRINTF(2, 3) {
    va_list ap;
    va_start(ap, fmt);
    vfail(GRTMP_ERROR_LIMIT, fmt, ap);
    va_end(ap);
    return false;
  }
  bool fail(int code, const char* fmt, ...) G_GNUC_PRINTF(3, 4) {
    va_list ap;
    va_start(ap, fmt);
    vfail(code, fmt, ap);
    va_end(ap);
    return false;
  }
  void vfail(int code, const char* fmt, va_list ap) G_GNUC_PRINTF(3, 0) {
    if (!error_) return;
    gchar* msg = g_strdup_vprintf(fmt, ap);
    g_set_error_literal(error_, GRTMP_ERROR, code, msg);
    g_free(msg);
  }

  const uint8_t* base_;
  size_t len_;
  const Limits& limits_;
  GError** error_;
  uint32_t total_ = 0;
  size_t copied_ = 0;         // AMF3: counted against max_amf3_copied
  A3Tables* a3_ = nullptr;    // AMF3: the tables of the value being decoded
  size_t budget_;  // bytes left for reserving by declared counts (see the top)
};

// ---- encoding ----
//
// Two passes: encoded_size() walks the tree and the buffer grows once by
// exactly that much, then write_value() stores through a pointer into it. The
// byte-at-a-time ByteWriter would check capacity per byte and, for a fresh
// writer, reallocate and copy at every doubling.

// Keys and short strings are UTF-8 with a 16-bit length; a longer key cannot
// be expressed and is cut at 65535 bytes. Long strings are cut at 2^32-1.
size_t short_len(std::string_view s) { return std::min<size_t>(s.size(), 0xffff); }
size_t long_len(std::string_view s) { return std::min<size_t>(s.size(), 0xffffffffu); }

size_t encoded_size(const Value& v);

size_t properties_size(const std::vector<Property>& props) {
  size_t n = 3;  // empty key + object end
  for (const auto& [k, val] : props) n += 2 + short_len(k) + encoded_size(val);
  return n;
}

// A value decoded from AMF3 and not changed since: its wire bytes are
// written again after a 0x11 marker (see the top of the file).
bool amf3_unchanged(const Value& v) { return v.amf3 && v.amf3->decoded == v; }

// Must match write_value() byte for byte.
size_t encoded_size(const Value& v) {
  if (amf3_unchanged(v)) return 1 + v.amf3->bytes.size();
  switch (v.type) {
    case Marker::Number:
      return 1 + 8;
    case Marker::Boolean:
      return 1 + 1;
    case Marker::String:
      if (v.string.size() > 0xffff) return 1 + 4 + long_len(v.string);  // promoted
      return 1 + 2 + v.string.size();
    case Marker::LongString:
    case Marker::XmlDocument:
      return 1 + 4 + long_len(v.string);
    case Marker::Reference:
      return 1 + 2;
    case Marker::Date:
      return 1 + 8 + 2;
    case Marker::Object:
      return 1 + properties_size(v.properties);
    case Marker::TypedObject:
      return 1 + 2 + short_len(v.string) + properties_size(v.properties);
    case Marker::EcmaArray:
      return 1 + 4 + properties_size(v.properties);
    case Marker::StrictArray: {
      size_t n = 1 + 4;
      for (const auto& e : v.elements) n += encoded_size(e);
      return n;
    }
    case Marker::AvmPlus:
      return 1 + v.string.size();
    default:
      return 1;  // Null, Undefined, Unsupported; a null for what cannot be encoded
  }
}

uint8_t* put_u8(uint8_t* p, uint8_t v) {
  *p = v;
  return p + 1;
}

uint8_t* put_u16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
  return p + 2;
}

uint8_t* put_u32(uint8_t* p, uint32_t v) {
  store_u32(p, v);
  return p + 4;
}

uint8_t* put_f64(uint8_t* p, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  store_u32(p, uint32_t(bits >> 32));
  store_u32(p + 4, uint32_t(bits));
  return p + 8;
}

uint8_t* put_raw(uint8_t* p, const char* s, size_t n) {
  if (n) std::memcpy(p, s, n);
  return p + n;
}

uint8_t* put_short(uint8_t* p, std::string_view s) {
  const size_t n = short_len(s);
  return put_raw(put_u16(p, uint16_t(n)), s.data(), n);
}

uint8_t* put_long(uint8_t* p, std::string_view s) {
  const size_t n = long_len(s);
  return put_raw(put_u32(p, uint32_t(n)), s.data(), n);
}

uint8_t* write_value(const Value& v, uint8_t* p);

uint8_t* write_properties(const std::vector<Property>& props, uint8_t* p) {
  for (const auto& [k, v] : props) p = write_value(v, put_short(p, k));
  p = put_u16(p, 0);
  return put_u8(p, uint8_t(Marker::ObjectEnd));
}

uint8_t* write_value(const Value& v, uint8_t* p) {
  if (amf3_unchanged(v))
    return put_raw(put_u8(p, uint8_t(Marker::AvmPlus)), v.amf3->bytes.data(),
                   v.amf3->bytes.size());
  switch (v.type) {
    case Marker::Number:
      return put_f64(put_u8(p, uint8_t(Marker::Number)), v.number);
    case Marker::Boolean:
      p = put_u8(p, uint8_t(Marker::Boolean));
      return put_u8(p, v.boolean ? 1 : 0);
    case Marker::String:
      if (v.string.size() > 0xffff)  // cannot be a short string: promote
        return put_long(put_u8(p, uint8_t(Marker::LongString)), v.string);
      return put_short(put_u8(p, uint8_t(Marker::String)), v.string);
    case Marker::LongString:
    case Marker::XmlDocument:
      return put_long(put_u8(p, uint8_t(v.type)), v.string);
    case Marker::Null:
    case Marker::Undefined:
    case Marker::Unsupported:
      return put_u8(p, uint8_t(v.type));
    case Marker::Reference:
      return put_u16(put_u8(p, uint8_t(Marker::Reference)), v.reference);
    case Marker::Date:
      p = put_f64(put_u8(p, uint8_t(Marker::Date)), v.number);
      return put_u16(p, uint16_t(v.timezone));
    case Marker::Object:
      return write_properties(v.properties, put_u8(p, uint8_t(Marker::Object)));
    case Marker::TypedObject:
      p = put_short(put_u8(p, uint8_t(Marker::TypedObject)), v.string);
      return write_properties(v.properties, p);
    case Marker::EcmaArray:
      p = put_u32(put_u8(p, uint8_t(Marker::EcmaArray)), v.ecma_count);
      return write_properties(v.properties, p);
    case Marker::StrictArray:
      p = put_u32(put_u8(p, uint8_t(Marker::StrictArray)), uint32_t(v.elements.size()));
      for (const auto& e : v.elements) p = write_value(e, p);
      return p;
    case Marker::AvmPlus:
      return put_raw(put_u8(p, uint8_t(Marker::AvmPlus)), v.string.data(), v.string.size());
    case Marker::ObjectEnd:
    case Marker::MovieClip:
    case Marker::RecordSet:
      break;
  }
  // Not a value on its own (object end) or reserved: nothing sensible to
  // write; Null keeps the stream decodable.
  g_warning("amf0::encode: cannot encode marker 0x%02x, writing null", unsigned(v.type));
  return put_u8(p, uint8_t(Marker::Null));
}

// Appends `n` bytes to `out` and returns where they start.
uint8_t* grow(ByteWriter& out, size_t n) {
  std::vector<uint8_t>& buf = out.buffer();
  const size_t at = buf.size();
  buf.resize(at + n);
  return buf.data() + at;
}

void append_number(std::string& s, double v) {
  if (std::isnan(v)) {
    s += "NaN";
    return;
  }
  if (std::isinf(v)) {
    s += v < 0 ? "-Infinity" : "Infinity";
    return;
  }
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  s.append(buf, r.ptr);
}

void append_quoted(std::string& s, std::string_view v) {
  constexpr size_t kMax = 200;
  s += '"';
  size_t n = std::min(v.size(), kMax);
  for (size_t i = 0; i < n; i++) {
    const unsigned char c = static_cast<unsigned char>(v[i]);
    switch (c) {
      case '"':
        s += "\\\"";
        break;
      case '\\':
        s += "\\\\";
        break;
      case '\n':
        s += "\\n";
        break;
      case '\r':
        s += "\\r";
        break;
      case '\t':
        s += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char b[8];
          std::snprintf(b, sizeof b, "\\x%02x", c);
          s += b;
        } else {
          s += char(c);
        }
    }
  }
  s += '"';
  if (v.size() > kMax) s += "...(" + std::to_string(v.size()) + " bytes)";
}

void append_value(std::string& s, const Value& v);

void append_properties(std::string& s, const std::vector<Property>& props) {
  s += '{';
  bool first = true;
  for (const auto& [k, val] : props) {
    if (!first) s += ", ";
    first = false;
    s += k;
    s += ": ";
    append_value(s, val);
  }
  s += '}';
}

void append_value(std::string& s, const Value& v) {
  switch (v.type) {
    case Marker::Number:
      append_number(s, v.number);
      break;
    case Marker::Boolean:
      s += v.boolean ? "true" : "false";
      break;
    case Marker::String:
      append_quoted(s, v.string);
      break;
    case Marker::LongString:
      s += "long:";
      append_quoted(s, v.string);
      break;
    case Marker::XmlDocument:
      s += "xml:";
      append_quoted(s, v.string);
      break;
    case Marker::Null:
      s += "null";
      break;
    case Marker::Undefined:
      s += "undefined";
      break;
    case Marker::Unsupported:
      s += "unsupported";
      break;
    case Marker::Reference:
      s += "ref(" + std::to_string(v.reference) + ")";
      break;
    case Marker::Date:
      s += "date(";
      append_number(s, v.number);
      s += ", tz " + std::to_string(v.timezone) + ")";
      break;
    case Marker::Object:
      append_properties(s, v.properties);
      break;
    case Marker::TypedObject:
      s += v.string;
      append_properties(s, v.properties);
      break;
    case Marker::EcmaArray:
      s += "ecma[" + std::to_string(v.ecma_count) + "]";
      append_properties(s, v.properties);
      break;
    case Marker::StrictArray: {
      s += '[';
      for (size_t i = 0; i < v.elements.size(); i++) {
        if (i) s += ", ";
        append_value(s, v.elements[i]);
      }
      s += ']';
      break;
    }
    case Marker::AvmPlus:
      s += "amf3(" + std::to_string(v.string.size()) + " bytes)";
      break;
    case Marker::ObjectEnd:
      s += "object-end";
      break;
    case Marker::MovieClip:
      s += "movieclip";
      break;
    case Marker::RecordSet:
      s += "recordset";
      break;
    default:
      s += "marker(" + std::to_string(int(v.type)) + ")";
      break;
  }
}

}  // namespace

// ---- Value ----

Value Value::make_number(double v) {
  Value r;
  r.type = Marker::Number;
  r.number = v;
  return r;
}

Value Value::make_boolean(bool v) {
  Value r;
  r.type = Marker::Boolean;
  r.boolean = v;
  return r;
}

Value Value::make_string(std::string_view v) {
  Value r;
  r.type = v.size() > 0xffff ? Marker::LongString : Marker::String;
  r.string.assign(v);
  return r;
}

Value Value::make_null() {
  Value r;  // not Value(): see Fresh
  return r;
}

Value Value::make_undefined() {
  Value r;
  r.type = Marker::Undefined;
  return r;
}

Value Value::make_object(std::vector<Property> props) {
  Value r;
  r.type = Marker::Object;
  r.properties = std::move(props);
  return r;
}

Value Value::make_ecma_array(std::vector<Property> props) {
  Value r;
  r.type = Marker::EcmaArray;
  r.ecma_count = uint32_t(props.size());
  r.properties = std::move(props);
  return r;
}

Value Value::make_strict_array(std::vector<Value> elems) {
  Value r;
  r.type = Marker::StrictArray;
  r.elements = std::move(elems);
  return r;
}

const Value* Value::get(std::string_view key) const {
  if (!is_object_like()) return nullptr;
  for (const auto& p : properties)
    if (p.first == key) return &p.second;
  return nullptr;
}

Value* Value::get(std::string_view key) {
  return const_cast<Value*>(static_cast<const Value*>(this)->get(key));
}

std::optional<std::string_view> Value::get_string(std::string_view key) const {
  const Value* v = get(key);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string_view(v->string);
}

std::optional<double> Value::get_number(std::string_view key) const {
  const Value* v = get(key);
  if (!v || !v->is_number()) return std::nullopt;
  return v->number;
}

std::optional<bool> Value::get_boolean(std::string_view key) const {
  const Value* v = get(key);
  if (!v || v->type != Marker::Boolean) return std::nullopt;
  return v->boolean;
}

Value& Value::set(std::string_view key, Value v) {
  if (!is_object_like()) {
    // Setting a property turns a non-container (typically a default-built
    // Null) into an empty Object first.
    *this = make_object();
  }
  if (Value* existing = get(key)) {
    *existing = std::move(v);
    return *existing;
  }
  // Keep a built ECMA array's declared count in step with its contents; a
  // decoded one whose count already disagreed is left as it was on the wire.
  if (type == Marker::EcmaArray && ecma_count == properties.size()) ecma_count++;
  properties.emplace_back(std::string(key), std::move(v));
  return properties.back().second;
}

bool Value::operator==(const Value& o) const {
  if (type != o.type) return false;
  switch (type) {
    case Marker::Number:
      return number == o.number || (std::isnan(number) && std::isnan(o.number));
    case Marker::Boolean:
      return boolean == o.boolean;
    case Marker::String:
    case Marker::LongString:
    case Marker::XmlDocument:
    case Marker::AvmPlus:
      return string == o.string;
    case Marker::Reference:
      return reference == o.reference;
    case Marker::Date:
      return (number == o.number || (std::isnan(number) && std::isnan(o.number))) &&
             timezone == o.timezone;
    case Marker::Object:
      return properties == o.properties;
    case Marker::TypedObject:
      return string == o.string && properties == o.properties;
    case Marker::EcmaArray:
      return ecma_count == o.ecma_count && properties == o.properties;
    case Marker::StrictArray:
      return elements == o.elements;
    default:
      return true;  // Null, Undefined, Unsupported, ...
  }
}

std::string Value::to_string() const {
  std::string s;
  append_value(s, *this);
  return s;
}

// ---- decoding ----

bool decode(const uint8_t* data, size_t len, size_t& offset, Value& out, const Limits& limits,
            GError** error) {
  g_return_val_if_fail(error == nullptr || *error == nullptr, false);
  if (offset > len) {
    g_set_error(error, GRTMP_ERROR, GRTMP_ERROR_MALFORMED,
                "AMF0 decode offset %zu is past the end of the %zu-byte buffer", offset, len);
    return false;
  }
  Decoder d(data, len, limits, error);
  size_t off = offset;
  Value v;
  if (!d.value(off, v, 0)) return false;
  out = std::move(v);
  offset = off;
  return true;
}

bool decode_all(const uint8_t* data, size_t len, std::vector<Value>& out, const Limits& limits,
                GError** error) {
  g_return_val_if_fail(error == nullptr || *error == nullptr, false);
  // One Decoder so max_total_values bounds the whole call.
  Decoder d(data, len, limits, error);
  std::vector<Value> values;
  size_t off = 0;
  size_t planned = 0;  // values the last look-ahead accounted for
  while (off < len) {
    if (values.size() == planned) {
      planned = values.size() + d.top_level_values_ahead(off);
      reserve_for(values, planned);
    }
    values.emplace_back(Fresh{});
    if (!d.value(off, values.back(), 0)) return false;
  }
  out = std::move(values);
  return true;
}

// ---- encoding (see write_value() above) ----

void encode(const Value& v, ByteWriter& out) {
  const size_t n = encoded_size(v);
  uint8_t* p = grow(out, n);
  uint8_t* end = write_value(v, p);
  g_assert(size_t(end - p) == n);
}

void encode_all(const std::vector<Value>& values, ByteWriter& out) {
  size_t n = 0;
  for (const auto& v : values) n += encoded_size(v);
  uint8_t* p = grow(out, n);
  uint8_t* const start = p;
  for (const auto& v : values) p = write_value(v, p);
  g_assert(size_t(p - start) == n);
}

Bytes encode_to_bytes(const std::vector<Value>& values) {
  size_t n = 0;
  for (const auto& v : values) n += encoded_size(v);
  auto* data = static_cast<uint8_t*>(g_malloc(n));
  uint8_t* p = data;
  for (const auto& v : values) p = write_value(v, p);
  g_assert(size_t(p - data) == n);
  return Bytes::take(data, n);
}

}  // namespace grtmp::amf0
