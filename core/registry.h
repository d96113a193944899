#pragma once
// A name -> factory registry for one kind of thing (backbones, modules, ...).
// Each kind owns one instance as a function-local static, and fills it with its built-ins from one explicit
// function on first use: no self-registering globals, which a static link would silently drop.
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace revkit {

template <typename Factory>
class Registry {
 public:
  struct Entry {
    std::string name;
    std::string description;  // one line, shown by `revkit list`
    Factory factory;
  };

  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  // Throws InputError when the name is already taken or empty.
  void add(const std::string& name, std::string description, Factory factory) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (name.empty()) throw InputError("cannot register a " + kind_ + " with an empty name");
    if (entries_.count(name)) throw InputError(kind_ + " '" + name + "' is already registered");
    entries_.emplace(name, Entry{name, std::move(description), std::move(factory)});
  }

  bool contains(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return entries_.count(name) > 0;
  }

  // Throws UnknownNameError listing the known names.
  const Entry& at(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::string known;
      for (const auto& kv : entries_) known += (known.empty() ? "" : ", ") + kv.first;
      throw UnknownNameError("unknown " + kind_ + " '" + name + "' (known: " + known + ")");
    }
    return it->second;
  }

  const Factory& factory(const std::string& name) const { return at(name).factory; }

  // Entries sorted by name.
  std::vector<Entry> entries() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<Entry> out;
    for (const auto& kv : entries_) out.push_back(kv.second);
    return out;
  }

  std::vector<std::string> names() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> out;
    for (const auto& kv : entries_) out.push_back(kv.first);
    return out;
  }

  const std::string& kind() const { return kind_; }

 private:
  std::string kind_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

}  // namespace revkit
