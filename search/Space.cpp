//===- Space.cpp - search space, configurations, config JSON -----*- C++ -*-===//

#include "mixq/Search/Space.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <algorithm>
#include <cmath>
#include <map>

using namespace mixq::search;
using llvm::json::Array;
using llvm::json::Object;
using llvm::json::Value;

namespace {

const char *const kRoles[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                              "gate_proj", "up_proj", "down_proj"};
const char *const kRolePrefix[] = {"self_attn", "self_attn", "self_attn",
                                   "self_attn", "mlp",       "mlp",
                                   "mlp"};

llvm::Error spaceError(llvm::StringRef origin, const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                 (origin + ": " + msg).str());
}

bool isKnownBits(int64_t b) {
  return b == 2 || b == 3 || b == 4 || b == 8 || b == 16 || b == 32;
}

bool isKnownAdapter(llvm::StringRef a) {
  return a == "lora" || a == "qblora" || a == "qablora";
}

/// Reads a non-empty, strictly ascending integer list.
llvm::Expected<std::vector<int64_t>> readIntList(const Object &o,
                                                 llvm::StringRef key,
                                                 llvm::StringRef origin) {
  const Array *arr = o.getArray(key);
  if (!arr)
    return spaceError(origin, "'" + key + "' must be a non-empty array of "
                                          "integers");
  std::vector<int64_t> out;
  for (const Value &v : *arr) {
    std::optional<int64_t> i = v.getAsInteger();
    if (!i || *i <= 0)
      return spaceError(origin, "'" + key +
                                    "' must hold positive integers, got " +
                                    llvm::formatv("{0}", v).str());
    out.push_back(*i);
  }
  if (out.empty())
    return spaceError(origin, "'" + key + "' must not be empty");
  std::vector<int64_t> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    return spaceError(origin, "'" + key + "' lists a value twice");
  return sorted;
}

} // namespace

int SearchSpace::optionCount(int gene) const {
  switch (geneKind(gene)) {
  case GeneKind::Bits:
    return static_cast<int>(bits.size());
  case GeneKind::Rank:
    return static_cast<int>(ranks.size());
  case GeneKind::Adapter:
    return static_cast<int>(adapters.size());
  }
  return 1;
}

double SearchSpace::log10Size() const {
  double perLayer = std::log10(double(bits.size())) +
                    std::log10(double(ranks.size())) +
                    std::log10(double(adapters.size()));
  return perLayer * double(numLayers);
}

llvm::Expected<SearchSpace> SearchSpace::fromJSON(const Value &v,
                                                  llvm::StringRef origin) {
  const Object *o = v.getAsObject();
  if (!o)
    return spaceError(origin, "a search space must be a JSON object");
  static const char *const known[] = {"layers", "bits",    "ranks",
                                      "adapters", "model", "task",
                                      "default", "alpha_ratio", "version"};
  for (const auto &kv : *o)
    if (!llvm::is_contained(known, kv.first.str()))
      return spaceError(origin, "unknown key '" + kv.first.str() +
                                    "' (expected layers, bits, ranks, "
                                    "adapters, model, task, default, "
                                    "alpha_ratio)");
  SearchSpace s;
  s.origin = origin.str();
  std::optional<int64_t> layers = o->getInteger("layers");
  if (!layers || *layers <= 0 || *layers > 100000)
    return spaceError(origin, "'layers' must be a positive integer");
  s.numLayers = *layers;
  auto bits = readIntList(*o, "bits", origin);
  if (!bits)
    return bits.takeError();
  for (int64_t b : *bits)
    if (!isKnownBits(b))
      return spaceError(origin, llvm::formatv("'bits' value {0} is not a "
                                              "MixQ bit-width (2, 3, 4, 8, "
                                              "16, 32)",
                                              b));
  s.bits = *bits;
  auto ranks = readIntList(*o, "ranks", origin);
  if (!ranks)
    return ranks.takeError();
  s.ranks = *ranks;
  if (const Value *ad = o->get("adapters")) {
    const Array *arr = ad->getAsArray();
    if (!arr || arr->empty())
      return spaceError(origin, "'adapters' must be a non-empty array of "
                                "strings");
    for (const Value &a : *arr) {
      std::optional<llvm::StringRef> name = a.getAsString();
      if (!name || !isKnownAdapter(*name))
        return spaceError(origin, "unknown adapter " +
                                      llvm::formatv("{0}", a).str() +
                                      " (lora, qblora, qablora)");
      if (llvm::is_contained(s.adapters, name->str()))
        return spaceError(origin, "'adapters' lists " + *name + " twice");
      s.adapters.push_back(name->str());
    }
  } else {
    s.adapters.push_back("lora");
  }
  if (auto m = o->getString("model"))
    s.model = m->str();
  if (auto t = o->getString("task"))
    s.task = t->str();
  if (const Value *d = o->get("default")) {
    const Object *dobj = d->getAsObject();
    if (!dobj)
      return spaceError(origin, "'default' must be an object");
    s.defaults = *dobj;
  }
  if (const Value *a = o->get("alpha_ratio")) {
    std::optional<double> r = a->getAsNumber();
    if (!r || !(*r > 0))
      return spaceError(origin, "'alpha_ratio' must be a positive number");
    s.alphaRatio = *r;
  }
  return s;
}

llvm::Expected<Value> mixq::search::readJSONFile(llvm::StringRef path) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return llvm::createStringError(buf.getError(), "cannot read %s: %s",
                                   path.str().c_str(),
                                   buf.getError().message().c_str());
  auto v = llvm::json::parse((*buf)->getBuffer());
  if (!v)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(), "%s: malformed JSON: %s",
        path.str().c_str(), llvm::toString(v.takeError()).c_str());
  return std::move(*v);
}

llvm::Expected<SearchSpace> SearchSpace::fromFile(llvm::StringRef path) {
  auto v = readJSONFile(path);
  if (!v)
    return v.takeError();
  return fromJSON(*v, path);
}

llvm::Expected<SearchSpace>
SearchSpace::fromModelDir(llvm::StringRef dir, std::vector<int64_t> bits,
                          std::vector<int64_t> ranks) {
  llvm::SmallString<256> path(dir);
  llvm::sys::path::append(path, "config.json");
  auto v = readJSONFile(path);
  if (!v)
    return v.takeError();
  const Object *o = v->getAsObject();
  std::optional<int64_t> n = o ? o->getInteger("num_hidden_layers") : std::nullopt;
  if (!n || *n <= 0)
    return spaceError(path, "no positive 'num_hidden_layers'");
  Array bitsArr, ranksArr;
  for (int64_t b : bits)
    bitsArr.push_back(b);
  for (int64_t r : ranks)
    ranksArr.push_back(r);
  Object spaceObj{{"layers", *n},
                  {"bits", std::move(bitsArr)},
                  {"ranks", std::move(ranksArr)},
                  {"model", dir.str()}};
  return fromJSON(Value(std::move(spaceObj)), path);
}

Value SearchSpace::toJSON() const {
  Array b, r, a;
  for (int64_t x : bits)
    b.push_back(x);
  for (int64_t x : ranks)
    r.push_back(x);
  for (const std::string &x : adapters)
    a.push_back(x);
  Object o{{"layers", numLayers},
           {"bits", std::move(b)},
           {"ranks", std::move(r)},
           {"adapters", std::move(a)},
           {"alpha_ratio", alphaRatio}};
  if (!model.empty())
    o["model"] = model;
  if (!task.empty())
    o["task"] = task;
  if (!defaults.empty())
    o["default"] = Object(defaults);
  return Value(std::move(o));
}

int64_t mixq::search::layerBits(const SearchSpace &s, const Configuration &c,
                                int layer) {
  return s.bits[c.genes[layer * s.genesPerLayer()]];
}

int64_t mixq::search::layerRank(const SearchSpace &s, const Configuration &c,
                                int layer) {
  return s.ranks[c.genes[layer * s.genesPerLayer() + 1]];
}

llvm::StringRef mixq::search::layerAdapter(const SearchSpace &s,
                                           const Configuration &c, int layer) {
  if (s.genesPerLayer() < 3)
    return s.adapters.front();
  return s.adapters[c.genes[layer * s.genesPerLayer() + 2]];
}

llvm::Error mixq::search::validate(const SearchSpace &s,
                                   const Configuration &c) {
  if (static_cast<int>(c.genes.size()) != s.numGenes())
    return spaceError(s.origin, llvm::formatv("configuration has {0} genes, "
                                              "the space {1}",
                                              c.genes.size(), s.numGenes()));
  for (int g = 0; g < s.numGenes(); ++g)
    if (c.genes[g] < 0 || c.genes[g] >= s.optionCount(g))
      return spaceError(s.origin,
                        llvm::formatv("gene {0} has option {1} of {2}", g,
                                      c.genes[g], s.optionCount(g)));
  return llvm::Error::success();
}

Configuration mixq::search::uniformConfig(const SearchSpace &s, int bitsIdx,
                                          int rankIdx, int adapterIdx) {
  Configuration c;
  c.genes.reserve(s.numGenes());
  for (int64_t l = 0; l < s.numLayers; ++l) {
    c.genes.push_back(bitsIdx);
    c.genes.push_back(rankIdx);
    if (s.genesPerLayer() == 3)
      c.genes.push_back(adapterIdx);
  }
  return c;
}

Configuration mixq::search::randomConfig(const SearchSpace &s,
                                         std::mt19937_64 &rng) {
  Configuration c;
  c.genes.resize(s.numGenes());
  for (int g = 0; g < s.numGenes(); ++g)
    c.genes[g] = static_cast<int>(rng() % uint64_t(s.optionCount(g)));
  return c;
}

std::string mixq::search::configKey(const Configuration &c) {
  std::string key;
  key.reserve(c.genes.size() * 3);
  for (size_t i = 0; i < c.genes.size(); ++i) {
    if (i)
      key += '.';
    key += std::to_string(c.genes[i]);
  }
  return key;
}

Eigen::VectorXd mixq::search::features(const SearchSpace &s,
                                       const Configuration &c) {
  Eigen::VectorXd x(s.numGenes());
  for (int g = 0; g < s.numGenes(); ++g) {
    int n = s.optionCount(g);
    x[g] = n > 1 ? double(c.genes[g]) / double(n - 1) : 0.0;
  }
  return x;
}

Value mixq::search::toConfigJSON(const SearchSpace &s,
                                 const Configuration &c) {
  Object def = s.defaults;
  if (!def.get("adapter"))
    def["adapter"] = s.adapters.front();
  Array layers;
  for (int l = 0; l < s.numLayers; ++l) {
    int64_t rank = layerRank(s, c, l);
    Object e{{"layer", l},
             {"bits", layerBits(s, c, l)},
             {"rank", rank},
             {"alpha", s.alphaRatio * double(rank)}};
    if (s.genesPerLayer() == 3)
      e["adapter"] = layerAdapter(s, c, l).str();
    layers.push_back(std::move(e));
  }
  Object o{{"version", 1}, {"default", std::move(def)},
           {"layers", std::move(layers)}};
  if (!s.model.empty())
    o["model"] = s.model;
  if (!s.task.empty())
    o["task"] = s.task;
  return Value(std::move(o));
}

namespace {

/// Partial (bits, rank, adapter) settings from one JSON object.
struct Partial {
  std::optional<int64_t> bits, rank;
  std::optional<std::string> adapter;
};

llvm::Error readPartial(const Object &o, Partial &p, llvm::StringRef where) {
  if (const Value *b = o.get("bits")) {
    if (!b->getAsInteger())
      return spaceError(where, "'bits' must be an integer");
    p.bits = *b->getAsInteger();
  }
  if (const Value *r = o.get("rank")) {
    if (!r->getAsInteger())
      return spaceError(where, "'rank' must be an integer");
    p.rank = *r->getAsInteger();
  }
  if (const Value *a = o.get("adapter")) {
    if (!a->getAsString())
      return spaceError(where, "'adapter' must be a string");
    p.adapter = a->getAsString()->str();
  }
  return llvm::Error::success();
}

llvm::Expected<int> optionIndex(const std::vector<int64_t> &opts, int64_t v,
                                llvm::StringRef what, llvm::StringRef where) {
  auto it = std::find(opts.begin(), opts.end(), v);
  if (it == opts.end())
    return spaceError(where, llvm::formatv("{0} {1} is not an option of the "
                                           "search space",
                                           what, v));
  return static_cast<int>(it - opts.begin());
}

} // namespace

llvm::Expected<Configuration>
mixq::search::configFromJSON(const SearchSpace &s, const Value &v,
                             llvm::StringRef origin) {
  const Object *o = v.getAsObject();
  if (!o)
    return spaceError(origin, "a config must be a JSON object");
  std::optional<int64_t> version = o->getInteger("version");
  if (!version || *version != 1)
    return spaceError(origin, "expected \"version\": 1");
  std::vector<Partial> perLayer(s.numLayers);
  if (const Value *d = o->get("default")) {
    const Object *dobj = d->getAsObject();
    if (!dobj)
      return spaceError(origin, "'default' must be an object");
    Partial def;
    if (auto err = readPartial(*dobj, def, origin))
      return std::move(err);
    for (Partial &p : perLayer)
      p = def;
  }
  const Array *layers = o->getArray("layers");
  if (o->get("layers") && !layers)
    return spaceError(origin, "'layers' must be an array");
  for (size_t i = 0; layers && i < layers->size(); ++i) {
    std::string where = (origin + ": layers[" + std::to_string(i) + "]").str();
    const Object *e = (*layers)[i].getAsObject();
    if (!e)
      return spaceError(where, "an entry must be an object");
    if (e->get("role"))
      return spaceError(where, "per-projection entries (\"role\") are not "
                               "representable in a per-layer search space");
    Partial p;
    if (auto err = readPartial(*e, p, where))
      return std::move(err);
    std::optional<int64_t> layer = e->getInteger("layer");
    if (e->get("layer") && (!layer || *layer < 0 || *layer >= s.numLayers))
      return spaceError(where, llvm::formatv("'layer' must be in [0, {0})",
                                             s.numLayers));
    for (int64_t l = 0; l < s.numLayers; ++l) {
      if (layer && *layer != l)
        continue;
      if (p.bits)
        perLayer[l].bits = p.bits;
      if (p.rank)
        perLayer[l].rank = p.rank;
      if (p.adapter)
        perLayer[l].adapter = p.adapter;
    }
  }
  Configuration c;
  for (int64_t l = 0; l < s.numLayers; ++l) {
    std::string where = (origin + ": layer " + std::to_string(l)).str();
    const Partial &p = perLayer[l];
    if (!p.bits || !p.rank)
      return spaceError(where, "no 'bits' or no 'rank' (neither in 'default' "
                               "nor in a layer entry)");
    auto bi = optionIndex(s.bits, *p.bits, "bits", where);
    if (!bi)
      return bi.takeError();
    auto ri = optionIndex(s.ranks, *p.rank, "rank", where);
    if (!ri)
      return ri.takeError();
    c.genes.push_back(*bi);
    c.genes.push_back(*ri);
    std::string adapter = p.adapter.value_or(s.adapters.front());
    auto it = std::find(s.adapters.begin(), s.adapters.end(), adapter);
    if (it == s.adapters.end())
      return spaceError(where, "adapter '" + adapter +
                                   "' is not an option of the search space");
    if (s.genesPerLayer() == 3)
      c.genes.push_back(static_cast<int>(it - s.adapters.begin()));
  }
  return c;
}

llvm::Expected<Configuration>
mixq::search::configFromFile(const SearchSpace &s, llvm::StringRef path) {
  auto v = readJSONFile(path);
  if (!v)
    return v.takeError();
  return configFromJSON(s, *v, path);
}

Value mixq::search::toPeftRankPattern(const SearchSpace &s,
                                      const Configuration &c) {
  // The most common rank becomes `r`; rank_pattern lists every module so the
  // pattern is complete on its own.
  std::map<int64_t, int> counts;
  for (int l = 0; l < s.numLayers; ++l)
    ++counts[layerRank(s, c, l)];
  int64_t r = 0;
  int best = -1;
  for (auto &[rank, n] : counts)
    if (n > best) {
      best = n;
      r = rank;
    }
  Object rankPattern, alphaPattern;
  for (int l = 0; l < s.numLayers; ++l) {
    int64_t rank = layerRank(s, c, l);
    for (int k = 0; k < 7; ++k) {
      std::string key = llvm::formatv("model.layers.{0}.{1}.{2}", l,
                                      kRolePrefix[k], kRoles[k])
                            .str();
      rankPattern[key] = rank;
      alphaPattern[key] = s.alphaRatio * double(rank);
    }
  }
  Array targets;
  for (const char *role : kRoles)
    targets.push_back(role);
  return Object{{"r", r},
                {"lora_alpha", s.alphaRatio * double(r)},
                {"target_modules", std::move(targets)},
                {"rank_pattern", std::move(rankPattern)},
                {"alpha_pattern", std::move(alphaPattern)}};
}
