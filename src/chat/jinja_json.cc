#include "chat/jinja_json.h"

#include <algorithm>
#include <cmath>

#include "chat/py_text.h"

namespace lowbit::jinja {
namespace {

void append_escape(std::string& out, uint32_t unit) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += "\\u";
  for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(unit >> shift) & 0xF];
}

// json.encoder's escaping: only '"', '\\' and control characters unless ensure_ascii.
void append_string(std::string& out, const std::string& text, bool ensure_ascii) {
  out += '"';
  for (char32_t cp : py::decode(text)) {
    switch (cp) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (cp < 0x20 || (ensure_ascii && cp > 0x7E)) {
          if (cp >= 0x10000) {
            const uint32_t v = cp - 0x10000;
            append_escape(out, 0xD800 | (v >> 10));
            append_escape(out, 0xDC00 | (v & 0x3FF));
          } else {
            append_escape(out, cp);
          }
        } else {
          py::append_utf8(out, cp);
        }
    }
  }
  out += '"';
}

std::string float_text(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return py::float_repr(d);
}

class Dumper {
 public:
  explicit Dumper(const JsonDumpOptions& options) : options_(options) {
    item_sep_ = options.item_separator.value_or(options.indent ? "," : ", ");
    key_sep_ = options.key_separator.value_or(": ");
  }

  void dump(const Value& v, int level) {
    if (level > 1000) eval_fail("value nested too deeply for tojson");
    switch (v.kind()) {
      case Kind::kNone:
        out_ += "null";
        return;
      case Kind::kBool:
        out_ += v.as_bool() ? "true" : "false";
        return;
      case Kind::kInt:
        out_ += std::to_string(v.as_int());
        return;
      case Kind::kFloat:
        out_ += float_text(v.as_double());
        return;
      case Kind::kString:
        append_string(out_, v.as_string(), options_.ensure_ascii);
        return;
      case Kind::kList:
        dump_list(v.as_list().items, level);
        return;
      case Kind::kDict:
        dump_dict(v.as_dict(), level);
        return;
      default:
        eval_fail("Object of type {} is not JSON serializable", type_name(v));
    }
  }

  std::string take() { return std::move(out_); }

 private:
  void newline(int level) {
    if (!options_.indent) return;
    out_ += '\n';
    for (int i = 0; i < level; ++i) out_ += *options_.indent;
  }

  void dump_list(const std::vector<Value>& items, int level) {
    if (items.empty()) {
      out_ += "[]";
      return;
    }
    out_ += '[';
    newline(level + 1);
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) {
        out_ += item_sep_;
        newline(level + 1);
      }
      dump(items[i], level + 1);
    }
    newline(level);
    out_ += ']';
  }

  // Python converts non-string keys: True -> "true", None -> "null", numbers via repr.
  std::string key_text(const Value& key) {
    switch (key.kind()) {
      case Kind::kString:
        return key.as_string();
      case Kind::kNone:
        return "null";
      case Kind::kBool:
        return key.as_bool() ? "true" : "false";
      case Kind::kInt:
        return std::to_string(key.as_int());
      case Kind::kFloat:
        return float_text(key.as_double());
      default:
        eval_fail("keys must be str, int, float, bool or None, not {}", type_name(key));
    }
  }

  void dump_dict(const Dict& dict, int level) {
    if (dict.size() == 0) {
      out_ += "{}";
      return;
    }
    std::vector<const std::pair<Value, Value>*> entries;
    for (const auto& entry : dict.entries()) entries.push_back(&entry);
    if (options_.sort_keys) {
      std::stable_sort(entries.begin(), entries.end(),
                       [](const auto* a, const auto* b) { return less(a->first, b->first); });
    }
    out_ += '{';
    newline(level + 1);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i) {
        out_ += item_sep_;
        newline(level + 1);
      }
      append_string(out_, key_text(entries[i]->first), options_.ensure_ascii);
      out_ += key_sep_;
      dump(entries[i]->second, level + 1);
    }
    newline(level);
    out_ += '}';
  }

  const JsonDumpOptions& options_;
  std::string item_sep_;
  std::string key_sep_;
  std::string out_;
};

}  // namespace

std::string json_dumps(const Value& value, const JsonDumpOptions& options) {
  Dumper dumper(options);
  dumper.dump(value, 0);
  return dumper.take();
}

}  // namespace lowbit::jinja
