//===- VariantConfig.cpp - the config JSON contract ---------------*- C++ -*-===//
//
// Parsing, printing and resolution of MixQ's per-layer config JSON.
//
//===----------------------------------------------------------------------===//

#include "mixq/Config/VariantConfig.h"

#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace llvm;

namespace mixq {

//===----------------------------------------------------------------------===//
// Enums
//===----------------------------------------------------------------------===//

StringRef quantFormatName(QuantFormat f) {
  switch (f) {
  case QuantFormat::F32: return "f32";
  case QuantFormat::BF16: return "bf16";
  case QuantFormat::NF4: return "nf4";
  case QuantFormat::FP4: return "fp4";
  case QuantFormat::Int8: return "int8";
  case QuantFormat::Int4: return "int4";
  case QuantFormat::Int3: return "int3";
  case QuantFormat::Int2: return "int2";
  }
  return "?";
}

std::optional<QuantFormat> parseQuantFormat(StringRef s) {
  return StringSwitch<std::optional<QuantFormat>>(s)
      .Case("f32", QuantFormat::F32)
      .Case("bf16", QuantFormat::BF16)
      .Case("nf4", QuantFormat::NF4)
      .Case("fp4", QuantFormat::FP4)
      .Case("int8", QuantFormat::Int8)
      .Case("int4", QuantFormat::Int4)
      .Case("int3", QuantFormat::Int3)
      .Case("int2", QuantFormat::Int2)
      .Default(std::nullopt);
}

std::optional<QuantFormat> formatForBits(int64_t bits) {
  switch (bits) {
  case 2: return QuantFormat::Int2;
  case 3: return QuantFormat::Int3;
  case 4: return QuantFormat::NF4;
  case 8: return QuantFormat::Int8;
  case 16: return QuantFormat::BF16;
  case 32: return QuantFormat::F32;
  default: return std::nullopt;
  }
}

int64_t quantFormatBits(QuantFormat f) {
  switch (f) {
  case QuantFormat::F32: return 32;
  case QuantFormat::BF16: return 16;
  case QuantFormat::Int8: return 8;
  case QuantFormat::NF4:
  case QuantFormat::FP4:
  case QuantFormat::Int4: return 4;
  case QuantFormat::Int3: return 3;
  case QuantFormat::Int2: return 2;
  }
  return 32;
}

bool isIntTileFormat(QuantFormat f) {
  return f == QuantFormat::Int4 || f == QuantFormat::Int3 ||
         f == QuantFormat::Int2;
}

StringRef adapterKindName(AdapterKind k) {
  switch (k) {
  case AdapterKind::None: return "none";
  case AdapterKind::LoRA: return "lora";
  case AdapterKind::QBLoRA: return "qblora";
  case AdapterKind::QABLoRA: return "qablora";
  case AdapterKind::AdaLoRA: return "adalora";
  }
  return "?";
}

StringRef adapterInitName(AdapterInit i) {
  switch (i) {
  case AdapterInit::Gaussian: return "gaussian";
  case AdapterInit::LoftQ: return "loftq";
  case AdapterInit::PiSSA: return "pissa";
  }
  return "?";
}

bool QuantSpec::operator==(const QuantSpec &o) const {
  return format == o.format && block == o.block &&
         doubleQuant == o.doubleQuant && tileRows == o.tileRows &&
         tileCols == o.tileCols;
}

bool AdapterSpec::operator==(const AdapterSpec &o) const {
  return kind == o.kind && rank == o.rank && alpha == o.alpha &&
         dropout == o.dropout && init == o.init && initIters == o.initIters &&
         lambda == o.lambda && lambdaRows == o.lambdaRows &&
         lambdaCols == o.lambdaCols && targetRank == o.targetRank &&
         tinit == o.tinit && tfinal == o.tfinal && deltaT == o.deltaT &&
         beta1 == o.beta1 && beta2 == o.beta2 && orthReg == o.orthReg;
}

//===----------------------------------------------------------------------===//
// Parsing
//===----------------------------------------------------------------------===//

static Error configError(StringRef origin, const Twine &msg) {
  return createStringError(inconvertibleErrorCode(),
                           origin + ": " + msg);
}

static bool isProjectionRole(StringRef role) {
  return StringSwitch<bool>(role)
      .Cases({"q_proj", "k_proj", "v_proj", "o_proj"}, true)
      .Cases({"gate_proj", "up_proj", "down_proj"}, true)
      .Default(false);
}

static bool isKnownRole(StringRef role) {
  return isProjectionRole(role) || role == "lm_head";
}

/// The per-linear keys a "default" or "layers" entry may carry.
static bool isSpecKey(StringRef key) {
  return StringSwitch<bool>(key)
      .Cases({"format", "bits", "block", "double_quant", "tile"}, true)
      .Cases({"adapter", "rank", "alpha", "dropout", "init"}, true)
      .Cases({"init_iters", "lambda"}, true)
      .Cases({"target_rank", "tinit", "tfinal", "delta_t"}, true)
      .Cases({"beta1", "beta2", "orth_reg"}, true)
      .Default(false);
}

static Error checkSpecKeys(const json::Object &o, StringRef origin,
                           StringRef where, bool allowSelectors) {
  for (const auto &kv : o) {
    StringRef key = kv.first;
    if (isSpecKey(key))
      continue;
    if (allowSelectors && (key == "layer" || key == "role"))
      continue;
    return configError(origin, "unknown key '" + key + "' in " + where);
  }
  return Error::success();
}

Expected<VariantConfig> VariantConfig::fromJSON(const json::Value &v,
                                                StringRef origin) {
  VariantConfig cfg;
  cfg.origin = origin.str();
  const json::Object *root = v.getAsObject();
  if (!root)
    return configError(origin, "expected a JSON object at the top level");
  for (const auto &kv : *root) {
    StringRef key = kv.first;
    if (key != "version" && key != "model" && key != "task" &&
        key != "default" && key != "layers" && key != "comment")
      return configError(origin, "unknown top-level key '" + key + "'");
  }
  if (const json::Value *ver = root->get("version")) {
    std::optional<int64_t> n = ver->getAsInteger();
    if (!n)
      return configError(origin, "'version' must be an integer");
    if (*n != 1)
      return configError(origin, formatv("unsupported config version {0} "
                                         "(this MixQ reads version 1)",
                                         *n));
    cfg.version = *n;
  }
  if (const json::Value *m = root->get("model")) {
    if (!m->getAsString())
      return configError(origin, "'model' must be a string");
    cfg.model = m->getAsString()->str();
  }
  if (const json::Value *t = root->get("task")) {
    if (!t->getAsString())
      return configError(origin, "'task' must be a string");
    cfg.task = t->getAsString()->str();
  }
  if (const json::Value *d = root->get("default")) {
    const json::Object *obj = d->getAsObject();
    if (!obj)
      return configError(origin, "'default' must be an object");
    if (Error e = checkSpecKeys(*obj, origin, "'default'", false))
      return std::move(e);
    cfg.defaults = *obj;
  }
  if (const json::Value *l = root->get("layers")) {
    const json::Array *arr = l->getAsArray();
    if (!arr)
      return configError(origin, "'layers' must be an array");
    for (auto [i, item] : llvm::enumerate(*arr)) {
      std::string where = formatv("'layers'[{0}]", i).str();
      const json::Object *obj = item.getAsObject();
      if (!obj)
        return configError(origin, where + " must be an object");
      if (Error e = checkSpecKeys(*obj, origin, where, true))
        return std::move(e);
      ConfigEntry entry;
      if (const json::Value *lv = obj->get("layer")) {
        std::optional<int64_t> n = lv->getAsInteger();
        if (!n || *n < 0)
          return configError(origin, where +
                                         ": 'layer' must be a non-negative "
                                         "integer");
        entry.layer = *n;
      }
      if (const json::Value *rv = obj->get("role")) {
        std::optional<StringRef> r = rv->getAsString();
        if (!r || !isKnownRole(*r))
          return configError(origin, where +
                                         ": 'role' must be one of q_proj, "
                                         "k_proj, v_proj, o_proj, gate_proj, "
                                         "up_proj, down_proj, lm_head");
        entry.role = r->str();
      }
      for (const auto &kv : *obj)
        if (kv.first != "layer" && kv.first != "role")
          entry.fields.try_emplace(kv.first, kv.second);
      cfg.entries.push_back(std::move(entry));
    }
  }
  // Resolve once to surface bad values early (for an arbitrary role).
  if (Expected<LinearSpec> s = cfg.resolve(0, "q_proj"); !s)
    return s.takeError();
  for (const ConfigEntry &e : cfg.entries)
    if (Expected<LinearSpec> s = cfg.resolve(e.layer.value_or(0),
                                             e.role.value_or("q_proj"));
        !s)
      return s.takeError();
  return cfg;
}

Expected<VariantConfig> VariantConfig::fromFile(StringRef path) {
  ErrorOr<std::unique_ptr<MemoryBuffer>> buf = MemoryBuffer::getFile(path);
  if (!buf)
    return configError(path, "cannot read config: " + buf.getError().message());
  Expected<json::Value> v = json::parse((*buf)->getBuffer());
  if (!v)
    return configError(path, "malformed JSON: " + toString(v.takeError()));
  return fromJSON(*v, path);
}

json::Value VariantConfig::toJSON() const {
  json::Object root;
  root["version"] = version;
  if (!model.empty())
    root["model"] = model;
  if (!task.empty())
    root["task"] = task;
  root["default"] = json::Object(defaults);
  json::Array arr;
  for (const ConfigEntry &e : entries) {
    json::Object o(e.fields);
    if (e.layer)
      o["layer"] = *e.layer;
    if (e.role)
      o["role"] = *e.role;
    arr.push_back(std::move(o));
  }
  root["layers"] = std::move(arr);
  return root;
}

json::Object linearSpecToJSON(const LinearSpec &spec) {
  const QuantSpec &q = spec.quant;
  const AdapterSpec &a = spec.adapter;
  json::Object o{{"format", quantFormatName(q.format)}};
  if (q.format == QuantFormat::NF4 || q.format == QuantFormat::FP4 ||
      q.format == QuantFormat::Int8)
    o["block"] = q.block;
  if (q.doubleQuant)
    o["double_quant"] = true;
  if (isIntTileFormat(q.format))
    o["tile"] = json::Array{q.tileRows, q.tileCols};
  o["adapter"] = adapterKindName(a.kind);
  if (a.kind == AdapterKind::None)
    return o;
  o["alpha"] = a.alpha;
  o["dropout"] = a.dropout;
  if (a.kind == AdapterKind::QABLoRA) {
    o["lambda"] = json::Array{a.lambdaRows, a.lambdaCols};
    return o;
  }
  o["rank"] = a.rank;
  o["init"] = adapterInitName(a.init);
  if (a.kind == AdapterKind::AdaLoRA) {
    o["target_rank"] = a.targetRank;
    o["tinit"] = a.tinit;
    o["tfinal"] = a.tfinal;
    o["delta_t"] = a.deltaT;
    o["beta1"] = a.beta1;
    o["beta2"] = a.beta2;
    o["orth_reg"] = a.orthReg;
  }
  if (a.init == AdapterInit::LoftQ)
    o["init_iters"] = a.initIters;
  if (a.kind == AdapterKind::QBLoRA)
    o["lambda"] = a.lambda;
  return o;
}

//===----------------------------------------------------------------------===//
// Resolution
//===----------------------------------------------------------------------===//

static bool matches(const ConfigEntry &e, int64_t layer, StringRef role) {
  if (e.layer && *e.layer != layer)
    return false;
  if (e.role)
    return *e.role == role;
  return isProjectionRole(role);
}

bool VariantConfig::configures(int64_t layer, StringRef role) const {
  if (isProjectionRole(role) && !defaults.empty())
    return true;
  for (const ConfigEntry &e : entries)
    if (matches(e, layer, role))
      return true;
  return false;
}

namespace {
/// Applies the fields of one JSON object onto a spec.
class SpecBuilder {
public:
  SpecBuilder(StringRef origin, int64_t layer, StringRef role)
      : origin(origin), layer(layer), role(role) {}

  Error apply(const json::Object &o);
  LinearSpec spec;
  bool targetRankSet = false; ///< an entry gave "target_rank"

private:
  Error fail(const Twine &msg) {
    return configError(origin, formatv("layer {0} {1}: ", layer, role) + msg);
  }
  Expected<int64_t> getInt(const json::Value &v, StringRef key) {
    if (std::optional<int64_t> n = v.getAsInteger())
      return *n;
    return fail("'" + key + "' must be an integer");
  }
  Expected<double> getNumber(const json::Value &v, StringRef key) {
    if (std::optional<double> n = v.getAsNumber())
      return *n;
    return fail("'" + key + "' must be a number");
  }
  Expected<std::pair<int64_t, int64_t>> getPair(const json::Value &v,
                                                StringRef key);

  StringRef origin;
  int64_t layer;
  StringRef role;
};
} // namespace

Expected<std::pair<int64_t, int64_t>> SpecBuilder::getPair(const json::Value &v,
                                                           StringRef key) {
  if (std::optional<int64_t> n = v.getAsInteger())
    return std::make_pair(int64_t(1), *n);
  const json::Array *a = v.getAsArray();
  if (!a || a->size() != 2 || !(*a)[0].getAsInteger() ||
      !(*a)[1].getAsInteger())
    return fail("'" + key + "' must be an integer or [rows, cols]");
  return std::make_pair(*(*a)[0].getAsInteger(), *(*a)[1].getAsInteger());
}

Error SpecBuilder::apply(const json::Object &o) {
  QuantSpec &q = spec.quant;
  AdapterSpec &a = spec.adapter;
  for (const auto &kv : o) {
    StringRef key = kv.first;
    const json::Value &v = kv.second;
    if (key == "format") {
      std::optional<StringRef> s = v.getAsString();
      std::optional<QuantFormat> f = s ? parseQuantFormat(*s) : std::nullopt;
      if (!f)
        return fail("unknown format; expected one of f32, bf16, nf4, fp4, "
                    "int8, int4, int3, int2");
      q.format = *f;
    } else if (key == "bits") {
      Expected<int64_t> b = getInt(v, key);
      if (!b)
        return b.takeError();
      std::optional<QuantFormat> f = formatForBits(*b);
      if (!f)
        return fail(formatv("bits {0} not allowed; expected 2, 3, 4, 8, 16 "
                            "or 32",
                            *b));
      q.format = *f;
    } else if (key == "block") {
      Expected<int64_t> b = getInt(v, key);
      if (!b)
        return b.takeError();
      q.block = *b;
    } else if (key == "double_quant") {
      std::optional<bool> b = v.getAsBoolean();
      if (!b)
        return fail("'double_quant' must be a boolean");
      q.doubleQuant = *b;
    } else if (key == "tile") {
      auto t = getPair(v, key);
      if (!t)
        return t.takeError();
      q.tileRows = t->first;
      q.tileCols = t->second;
    } else if (key == "adapter") {
      std::optional<StringRef> s = v.getAsString();
      std::optional<AdapterKind> k =
          s ? StringSwitch<std::optional<AdapterKind>>(*s)
                  .Case("none", AdapterKind::None)
                  .Case("lora", AdapterKind::LoRA)
                  .Case("qblora", AdapterKind::QBLoRA)
                  .Case("qablora", AdapterKind::QABLoRA)
                  .Case("adalora", AdapterKind::AdaLoRA)
                  .Default(std::nullopt)
            : std::nullopt;
      if (!k)
        return fail("unknown adapter; expected none, lora, qblora, qablora "
                    "or adalora");
      a.kind = *k;
    } else if (key == "rank") {
      Expected<int64_t> r = getInt(v, key);
      if (!r)
        return r.takeError();
      a.rank = *r;
    } else if (key == "alpha") {
      Expected<double> x = getNumber(v, key);
      if (!x)
        return x.takeError();
      a.alpha = *x;
    } else if (key == "dropout") {
      Expected<double> x = getNumber(v, key);
      if (!x)
        return x.takeError();
      a.dropout = *x;
    } else if (key == "init") {
      std::optional<StringRef> s = v.getAsString();
      std::optional<AdapterInit> i =
          s ? StringSwitch<std::optional<AdapterInit>>(*s)
                  .Case("gaussian", AdapterInit::Gaussian)
                  .Case("loftq", AdapterInit::LoftQ)
                  .Case("pissa", AdapterInit::PiSSA)
                  .Default(std::nullopt)
            : std::nullopt;
      if (!i)
        return fail("unknown init; expected gaussian, loftq or pissa");
      a.init = *i;
    } else if (key == "init_iters") {
      Expected<int64_t> n = getInt(v, key);
      if (!n)
        return n.takeError();
      a.initIters = *n;
    } else if (key == "lambda") {
      if (std::optional<int64_t> n = v.getAsInteger()) {
        a.lambda = a.lambdaRows = a.lambdaCols = *n;
        continue;
      }
      auto t = getPair(v, key);
      if (!t)
        return t.takeError();
      a.lambdaRows = t->first;
      a.lambdaCols = a.lambda = t->second;
    } else if (key == "target_rank" || key == "tinit" || key == "tfinal" ||
               key == "delta_t") {
      Expected<int64_t> n = getInt(v, key);
      if (!n)
        return n.takeError();
      if (key == "target_rank") {
        a.targetRank = *n;
        targetRankSet = true;
      } else if (key == "tinit") {
        a.tinit = *n;
      } else if (key == "tfinal") {
        a.tfinal = *n;
      } else {
        a.deltaT = *n;
      }
    } else if (key == "beta1" || key == "beta2" || key == "orth_reg") {
      Expected<double> x = getNumber(v, key);
      if (!x)
        return x.takeError();
      if (key == "beta1")
        a.beta1 = *x;
      else if (key == "beta2")
        a.beta2 = *x;
      else
        a.orthReg = *x;
    }
  }
  return Error::success();
}

Expected<LinearSpec> VariantConfig::resolve(int64_t layer,
                                            StringRef role) const {
  SpecBuilder builder(origin.empty() ? StringRef("<config>") : origin, layer,
                      role);
  if (isProjectionRole(role))
    if (Error e = builder.apply(defaults))
      return std::move(e);
  for (const ConfigEntry &e : entries)
    if (matches(e, layer, role))
      if (Error err = builder.apply(e.fields))
        return std::move(err);
  LinearSpec spec = builder.spec;
  // double_quant is a property of the nf4/fp4 absmax scales: an entry that
  // switches a layer to another format drops an inherited double_quant.
  if (spec.quant.format != QuantFormat::NF4 &&
      spec.quant.format != QuantFormat::FP4)
    spec.quant.doubleQuant = false;
  // A rank without an explicit adapter kind means LoRA; alpha defaults to
  // 2 * rank (the common PEFT choice: scale 2).
  if (spec.adapter.kind == AdapterKind::None && spec.adapter.rank > 0)
    spec.adapter.kind = AdapterKind::LoRA;
  if (spec.adapter.kind != AdapterKind::None && spec.adapter.alpha == 0.0)
    spec.adapter.alpha = 2.0 * double(spec.adapter.rank);
  if (spec.adapter.kind == AdapterKind::AdaLoRA) {
    AdapterSpec &a = spec.adapter;
    // PEFT's target_r is 8; a smaller initial rank keeps its own.
    if (!builder.targetRankSet)
      a.targetRank = std::min<int64_t>(a.targetRank, a.rank);
    auto bad = [&](const Twine &msg) -> Error {
      return configError(origin.empty() ? StringRef("<config>")
                                        : StringRef(origin),
                         formatv("layer {0} {1}: ", layer, role) + msg);
    };
    if (a.rank <= 0)
      return bad("adalora needs a positive 'rank' (the initial rank)");
    if (a.targetRank <= 0 || a.targetRank > a.rank)
      return bad(formatv("adalora 'target_rank' {0} must be in [1, rank = "
                         "{1}]",
                         a.targetRank, a.rank));
    if (a.tinit < 0 || a.tfinal < 0 || a.deltaT < 1)
      return bad("adalora needs 'tinit' >= 0, 'tfinal' >= 0, 'delta_t' >= 1");
    if (!(a.beta1 >= 0.0 && a.beta1 < 1.0) ||
        !(a.beta2 >= 0.0 && a.beta2 < 1.0))
      return bad("adalora 'beta1' and 'beta2' must be in [0, 1)");
    if (!(a.orthReg >= 0.0))
      return bad("adalora 'orth_reg' must be >= 0");
    if (a.init != AdapterInit::Gaussian)
      return bad("adalora supports only 'init': 'gaussian' (P, Q ~ "
                 "N(0, 0.02^2), lambda = 0)");
  }
  return spec;
}

} // namespace mixq
