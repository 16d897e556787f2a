// ElasticVM JSON/YAML: round-trips, and bad input is an error naming the field and value.
#include "crd/codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace hotplug::crd {
namespace {

constexpr const char* kFullYaml = R"(apiVersion: hotplug.dev/v1alpha1
kind: ElasticVM
metadata:
  name: web-01
  namespace: prod
  generation: 7
  labels: {hotplug.dev/node: host-b}
spec:
  domain: web-01-dom
  nodeName: host-a
  cpu: {vcpus: 4, guestOnline: agent}
  memory: {size: 2Gi, method: virtio-mem, allowShrink: true}
  persist: false
  suspend: true
status:
  observedGeneration: 6
  vcpus: {desired: 4, current: 3, maximum: 8, enabled: "0-2"}
  conditions:
    - {type: Ready, status: "False", reason: InProgress, message: m, lastTransitionTime: "2026-01-01T00:00:00Z", observedGeneration: 6}
  failures:
    - {resource: vcpu, id: 3, operation: plug, reason: HypervisorError, message: boom, time: "2026-01-01T00:00:00Z"}
)";

TEST(CodecTest, DecodesEveryFieldOfTheContract) {
  auto results = DecodeYamlText(kFullYaml);
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].ok()) << results[0].error;
  const ElasticVM& vm = *results[0].object;
  EXPECT_FALSE(vm.spec_error) << *vm.spec_error;
  EXPECT_EQ(vm.Key(), "prod/web-01");
  EXPECT_EQ(vm.metadata.generation, 7);
  EXPECT_EQ(vm.EffectiveDomain(), "web-01-dom");
  EXPECT_EQ(vm.TargetNode(), "host-a");
  EXPECT_EQ(vm.spec.cpu.vcpus, 4);
  EXPECT_EQ(vm.spec.cpu.guest_online, GuestOnline::kAgent);
  EXPECT_EQ(vm.spec.memory.size->Value(), 2LL << 30);
  EXPECT_EQ(vm.spec.memory.method, MemoryMethod::kVirtioMem);
  EXPECT_TRUE(vm.spec.memory.allow_shrink);
  EXPECT_FALSE(vm.spec.persist);
  EXPECT_TRUE(vm.spec.suspend);
  EXPECT_EQ(vm.status.observed_generation, 6);
  ASSERT_TRUE(vm.status.vcpus);
  EXPECT_EQ(vm.status.vcpus->enabled, "0-2");
  ASSERT_EQ(vm.status.conditions.size(), 1u);
  EXPECT_EQ(vm.status.conditions[0].reason, "InProgress");
  ASSERT_EQ(vm.status.failures.size(), 1u);
  EXPECT_EQ(vm.status.failures[0].id, 3);
}

TEST(CodecTest, JsonRoundTripsThroughEncodeAndDecode) {
  auto first = DecodeYamlText(kFullYaml)[0];
  ASSERT_TRUE(first.ok());
  std::string text = EncodeJsonText(*first.object);
  auto second = DecodeJsonText(text);
  ASSERT_TRUE(second.ok()) << second.error;
  EXPECT_EQ(EncodeJsonText(*second.object), text);
  EXPECT_EQ(second.object->status, first.object->status);
}

TEST(CodecTest, YamlRoundTripsThroughEncodeAndDecode) {
  auto first = DecodeYamlText(kFullYaml)[0];
  std::string yaml = EncodeYamlText(*first.object);
  auto second = DecodeYamlText(yaml);
  ASSERT_EQ(second.size(), 1u);
  ASSERT_TRUE(second[0].ok()) << second[0].error << "\n" << yaml;
  EXPECT_EQ(EncodeJsonText(*second[0].object), EncodeJsonText(*first.object));
}

TEST(CodecTest, DefaultsFollowTheContract) {
  auto vm = DecodeJsonText(R"({"metadata":{"name":"a"},"spec":{"cpu":{"vcpus":2}}})");
  ASSERT_TRUE(vm.ok()) << vm.error;
  EXPECT_EQ(vm.object->metadata.namespace_, "default");
  EXPECT_EQ(vm.object->EffectiveDomain(), "a");
  EXPECT_TRUE(vm.object->spec.persist);
  EXPECT_FALSE(vm.object->spec.suspend);
  EXPECT_FALSE(vm.object->spec.memory.size);
  EXPECT_EQ(vm.object->spec.cpu.guest_online, GuestOnline::kAuto);
}

TEST(CodecTest, MultiDocumentYamlGivesOneResultPerDocument) {
  auto results = DecodeYamlText(
      "metadata: {name: a}\nspec: {cpu: {vcpus: 1}}\n---\n---\nmetadata: {name: b}\n"
      "spec: {cpu: {vcpus: two}}\n---\nkind: ConfigMap\nmetadata: {name: c}\n");
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].ok());
  ASSERT_TRUE(results[1].ok());
  ASSERT_TRUE(results[1].object->spec_error);
  EXPECT_EQ(*results[1].object->spec_error, "spec.cpu.vcpus: expected an integer >= 1, got \"two\"");
  EXPECT_FALSE(results[2].ok());
  EXPECT_NE(results[2].error.find("document 4"), std::string::npos) << results[2].error;
  EXPECT_NE(results[2].error.find("kind"), std::string::npos);
}

// Bad specs are kept as objects with a precise error, so they can be reported InvalidSpec.
TEST(CodecTest, BadSpecsNameTheFieldAndTheValue) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"cpu":{"vcpus":"four"}})", R"(spec.cpu.vcpus: expected an integer >= 1, got "four")"},
      {R"({"cpu":{"vcpus":2.5}})", "spec.cpu.vcpus: expected an integer >= 1, got 2.5"},
      {R"({"cpu":{"vcpus":9223372036854775808}})",
       "spec.cpu.vcpus: expected an integer >= 1, got 9223372036854775808"},
      {R"({"cpu":{"vcpus":5000}})", "spec.cpu.vcpus: expected an integer from 1 to 4096, got 5000"},
      {R"({"cpu":{"guestOnline":"maybe"}})",
       R"(spec.cpu.guestOnline: expected one of auto, agent, none, got "maybe")"},
      {R"({"memory":{"size":"2GB"}})", "spec.memory.size: unknown quantity suffix"},
      {R"({"memory":{"size":-5}})", "spec.memory.size: expected a positive quantity"},
      {R"({"memory":{"size":"0"}})", "spec.memory.size: expected a positive quantity"},
      {R"({"memory":{"size":"1500m"}})", "spec.memory.size: expected a whole number of bytes"},
      {R"({"memory":{"size":true}})", "spec.memory.size: expected a quantity such as 2Gi, got true"},
      {R"({"memory":{"method":"ram"}})", "spec.memory.method: expected one of auto, virtio-mem"},
      {R"({"persist":"yes"})", R"(spec.persist: expected true or false, got "yes")"},
      {R"({"cpu":[1]})", "spec.cpu: expected an object, got [1]"},
      {R"({"domain":7})", "spec.domain: expected a string, got 7"},
  };
  for (const auto& [spec, expected] : cases) {
    auto result = DecodeJsonText(std::string(R"({"metadata":{"name":"x"},"spec":)") + spec + "}");
    ASSERT_TRUE(result.ok()) << spec << ": " << result.error;
    ASSERT_TRUE(result.object->spec_error) << spec;
    EXPECT_EQ(result.object->spec_error->rfind(expected, 0), 0u)
        << spec << " -> " << *result.object->spec_error;
  }
}

TEST(CodecTest, ZeroAndNegativeVcpusDecodeSoTheReconcilerCanSayBelowMinimum) {
  auto result = DecodeJsonText(R"({"metadata":{"name":"x"},"spec":{"cpu":{"vcpus":0}}})");
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result.object->spec_error);
  EXPECT_EQ(result.object->spec.cpu.vcpus, 0);
}

TEST(CodecTest, UnusableDocumentsAreErrorsNotCrashes) {
  const std::pair<std::string, const char*> cases[] = {
      {"{", "not valid JSON"},
      {"[]", "expected an object"},
      {R"({"spec":{}})", "metadata: required"},
      {R"({"metadata":{"name":""},"spec":{}})", "metadata.name: required"},
      {R"({"metadata":{"name":5},"spec":{}})", "metadata.name: expected a string, got 5"},
      {R"({"apiVersion":"v1","metadata":{"name":"a"}})", "apiVersion"},
      {std::string("{\"metadata\":{\"name\":\"\xff\xfe\"}}"), "not valid JSON"},
  };
  for (const auto& [text, expected] : cases) {
    auto result = DecodeJsonText(text);
    EXPECT_FALSE(result.ok()) << text;
    EXPECT_NE(result.error.find(expected), std::string::npos) << text << " -> " << result.error;
  }
}

TEST(CodecTest, YamlAliasBombIsStoppedByTheNodeBudget) {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [*" + prev + ", *" + prev + ", *" + prev + ", *" +
            prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev +
            ", *" + prev + "]\n";
    prev = c;
  }
  auto results = DecodeYamlText(bomb);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok());
  EXPECT_NE(results[0].error.find("more than"), std::string::npos) << results[0].error;
}

TEST(CodecTest, YamlDuplicateKeysAndDeepNestingAreRejected) {
  auto dup = DecodeYamlText("metadata: {name: a}\nmetadata: {name: b}\n");
  ASSERT_EQ(dup.size(), 1u);
  EXPECT_NE(dup[0].error.find("duplicate key \"metadata\""), std::string::npos) << dup[0].error;

  std::string deep = std::string(200, '[') + std::string(200, ']');
  auto nested = DecodeYamlText(deep);
  ASSERT_EQ(nested.size(), 1u);
  EXPECT_FALSE(nested[0].ok());
}

// A caller tells what was lost by the kind, never by the wording: a syntax error loses the
// rest of the text, an unusable object only its own document.
TEST(CodecTest, EveryFailureSaysWhetherTheRestOfTheTextIsLost) {
  const std::string vm = "metadata: {name: a}\nspec: {cpu: {vcpus: 1}}\n";
  const std::pair<std::string, DecodeError> cases[] = {
      {"metadata: {name: a\nspec: [", DecodeError::kSyntax},
      {"metadata: {name: a}\nmetadata: {name: b}\n", DecodeError::kSyntax},
      {"metadata: {name: a, name: b}\nspec: {}\n", DecodeError::kSyntax},
      {std::string(200, '[') + std::string(200, ']'), DecodeError::kSyntax},
      {"a: &a [*a]\n", DecodeError::kSyntax},
      {"kind: ConfigMap\nmetadata: {name: c}\n", DecodeError::kInvalidObject},
      {"spec: {}\n", DecodeError::kInvalidObject},
      {"[1, 2]\n", DecodeError::kInvalidObject},
  };
  for (const auto& [document, kind] : cases) {
    auto results = DecodeYamlText(vm + "---\n" + document + "---\n" + vm);
    ASSERT_GE(results.size(), 2u) << document;
    EXPECT_TRUE(results[0].ok()) << document;
    EXPECT_FALSE(results[1].ok()) << document;
    EXPECT_EQ(results[1].kind, kind) << document << " -> " << results[1].error;
    // After a syntax error nothing more is read; after an unusable object the next one is.
    EXPECT_EQ(results.size(), kind == DecodeError::kSyntax ? 2u : 3u) << document;
  }
  EXPECT_EQ(DecodeJsonText("{").kind, DecodeError::kSyntax);
  EXPECT_EQ(DecodeJsonText("[]").kind, DecodeError::kInvalidObject);
  EXPECT_EQ(DecodeJsonText(R"({"metadata":{"name":"x"},"spec":{}})").kind, DecodeError::kNone);
  EXPECT_EQ(DecodeYamlText(std::string(kMaxDocumentBytes + 1, ' '))[0].kind, DecodeError::kSyntax);
}

TEST(CodecTest, QuotedYamlScalarsStayStrings) {
  auto results = DecodeYamlText("metadata: {name: a}\nspec: {domain: \"123\", cpu: {vcpus: \"2\"}}\n");
  ASSERT_TRUE(results[0].ok());
  EXPECT_EQ(results[0].object->spec.domain, "123");
  ASSERT_TRUE(results[0].object->spec_error);  // "2" is a string, not an integer
}

TEST(CodecTest, MalformedYamlSaysWhere) {
  auto results = DecodeYamlText("metadata: {name: a\nspec: [");
  ASSERT_EQ(results.size(), 1u);
  EXPECT_NE(results[0].error.find("not valid YAML"), std::string::npos);
  EXPECT_NE(results[0].error.find("line"), std::string::npos) << results[0].error;
}

}  // namespace
}  // namespace hotplug::crd

namespace hotplug::crd {
namespace {

TEST(CodecTest, PlainScalarsResolveByTheYaml12CoreSchema) {
  nlohmann::json out;
  std::string error;
  ASSERT_TRUE(YamlToJson("[1, -2, +3, 1.5, .5, 1e3, 2., True, FALSE, ~, null, '', x1, '1', "
                         "1_000, 1.2.3, 18446744073709551615, .e3]",
                         &out, &error))
      << error;
  nlohmann::json expected = nlohmann::json::parse(
      R"([1, -2, 3, 1.5, 0.5, 1000.0, 2.0, true, false, null, null, "", "x1", "1", "1_000",
          "1.2.3", 18446744073709551615, ".e3"])");
  EXPECT_EQ(out, expected) << out.dump();
}

}  // namespace
}  // namespace hotplug::crd

namespace hotplug::crd {
namespace {

// JSON parsing already refuses broken UTF-8; YAML files reach the field checks with it.
TEST(CodecTest, NonUtf8TextInYamlIsAnInvalidSpec) {
  const std::pair<std::string, const char*> cases[] = {
      {"metadata: {name: a}\nspec: {domain: \"web-\xff\"}\n", "spec.domain: expected UTF-8 text"},
      {"metadata: {name: a}\nspec: {nodeName: \"\xc0\xaf\"}\n",  // overlong "/"
       "spec.nodeName: expected UTF-8 text"},
  };
  for (const auto& [yaml, expected] : cases) {
    auto results = DecodeYamlText(yaml);
    ASSERT_EQ(results.size(), 1u);
    ASSERT_TRUE(results[0].ok()) << results[0].error;
    ASSERT_TRUE(results[0].object->spec_error);
    EXPECT_EQ(results[0].object->spec_error->rfind(expected, 0), 0u) << *results[0].object->spec_error;
  }
  auto bad_name = DecodeYamlText("metadata: {name: \"\xed\xa0\x80\"}\nspec: {}\n");  // surrogate
  ASSERT_EQ(bad_name.size(), 1u);
  EXPECT_FALSE(bad_name[0].ok());
}

}  // namespace
}  // namespace hotplug::crd

namespace hotplug::crd {
namespace {

// Found by the fuzzer: nlohmann's parser throws on a number beyond a double's range even
// when asked not to throw, and std::stod throws on YAML floats such as 1e400.
TEST(CodecTest, NumbersBeyondADoubleAreErrorsNotCrashes) {
  auto json_result = DecodeJsonText(R"({"metadata":{"name":"a"},"spec":{"cpu":{"vcpus":1E99999}}})");
  EXPECT_FALSE(json_result.ok());
  EXPECT_NE(json_result.error.find("not valid JSON"), std::string::npos) << json_result.error;

  auto yaml = DecodeYamlText("metadata: {name: a}\nspec: {cpu: {vcpus: 1e99999}}\n");
  ASSERT_EQ(yaml.size(), 1u);
  ASSERT_TRUE(yaml[0].ok()) << yaml[0].error;
  ASSERT_TRUE(yaml[0].object->spec_error);
  EXPECT_EQ(*yaml[0].object->spec_error,
            "spec.cpu.vcpus: expected an integer >= 1, got \"1e99999\"");
}

}  // namespace
}  // namespace hotplug::crd

namespace hotplug::crd {
namespace {

TEST(CodecTest, AFileHasABoundedNumberOfDocuments) {
  std::string many;
  for (size_t i = 0; i <= kMaxDocuments; ++i) many += "---\nmetadata: {name: a}\nspec: {}\n";
  auto results = DecodeYamlText(many);
  ASSERT_EQ(results.size(), kMaxDocuments + 1);
  EXPECT_FALSE(results.back().ok());
  EXPECT_NE(results.back().error.find("more than 1000 documents"), std::string::npos);
}

}  // namespace
}  // namespace hotplug::crd

namespace hotplug::crd {
namespace {

TEST(CodecTest, ControlCharactersInNamesAreAnInvalidSpec) {
  const std::pair<const char*, const char*> cases[] = {
      {R"({"domain":"vm\u0000x"})", "spec.domain: expected a name without control characters"},
      {R"({"domain":"vm\u001b[31m"})", "spec.domain: expected a name without control characters"},
      {R"({"domain":"vm\n2"})", "spec.domain: expected a name without control characters"},
      {R"({"domain":"vm\u007f"})", "spec.domain: expected a name without control characters"},
      {R"({"domain":"vm\u0085"})", "spec.domain: expected a name without control characters"},
      {R"({"nodeName":"host\u0000b"})",
       "spec.nodeName: expected a name without control characters"},
  };
  for (const auto& [spec, expected] : cases) {
    auto result = DecodeJsonText(std::string(R"({"metadata":{"name":"x"},"spec":)") + spec + "}");
    ASSERT_TRUE(result.ok()) << spec << ": " << result.error;
    ASSERT_TRUE(result.object->spec_error) << spec;
    EXPECT_EQ(result.object->spec_error->rfind(expected, 0), 0u)
        << spec << " -> " << *result.object->spec_error;
  }
  auto fine = DecodeJsonText(R"({"metadata":{"name":"x"},"spec":{"domain":"web-é 01"}})");
  ASSERT_TRUE(fine.ok());
  EXPECT_FALSE(fine.object->spec_error) << *fine.object->spec_error;
}

TEST(CodecTest, YamlFeaturesTheDecoderDoesNotImplementAreErrorsNamingTheLine) {
  const std::pair<const char*, const char*> cases[] = {
      {"metadata: {name: a}\nspec:\n  cpu: &c {vcpus: 2}\n  memory:\n    <<: *c\n",
       "merge keys (<<) are not supported; write the fields out at line 5"},
      {"metadata: {name: a}\nspec:\n  cpu:\n    vcpus: !cpus 2\n",
       "the tag !cpus on a scalar is not supported (only YAML's own tags are) at line 4"},
      {"metadata: {name: a}\nspec: !!python/object {}\n",
       "the tag !!python/object on a map is not supported"},
      {"metadata: {name: a}\nspec: {cpu: !list [1]}\n", "the tag !list on a list is not supported"},
      {"metadata: {name: a}\nspec: {cpu: {vcpus: !!int two}}\n",
       "the tag !!int on a scalar is not supported"},
  };
  for (const auto& [text, expected] : cases) {
    auto results = DecodeYamlText(text);
    ASSERT_EQ(results.size(), 1u) << text;
    EXPECT_FALSE(results[0].ok()) << text;
    EXPECT_EQ(results[0].kind, DecodeError::kSyntax);
    EXPECT_NE(results[0].error.find(expected), std::string::npos) << text << results[0].error;
  }
  // YAML's own tags keep working, and a quoted "<<" is an ordinary key.
  auto results = DecodeYamlText(
      "metadata: {name: a, labels: {\"<<\": x}}\nspec: !!map {cpu: {vcpus: !!int 2}, domain: !!str "
      "7}\n");
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].ok()) << results[0].error;
  EXPECT_EQ(results[0].object->spec.cpu.vcpus, 2);
  EXPECT_EQ(results[0].object->spec.domain, "7");
  EXPECT_EQ(results[0].object->metadata.labels.at("<<"), "x");
}

TEST(CodecTest, AnAnchorOnEveryNodeCostsItsCopiesAgainstTheBudget) {
  // Each anchored map keeps a copy of all it holds: 40 nested levels of 1,000 nodes cost the
  // square of the size unless the copies count.
  std::string text;
  for (int level = 0; level < 40; ++level) {
    const std::string indent(static_cast<size_t>(level) * 2, ' ');
    for (int i = 0; i < 500; ++i) {
      text += indent + "k" + std::to_string(i) + ": &a" + std::to_string(level) + "_" +
              std::to_string(i) + " v\n";
    }
    text += indent + "child: &c" + std::to_string(level) + "\n";
  }
  text += std::string(80, ' ') + "end: x\n";
  auto results = DecodeYamlText(text);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].ok());
  EXPECT_NE(results[0].error.find("nodes (after expanding aliases)"), std::string::npos)
      << results[0].error;
}

TEST(CodecTest, AFileOfManyAliasedDocumentsIsBoundedAsAWhole) {
  // Each document stays under the per-document budget; the file as a whole does not.
  const std::string doc =
      "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
      "e: [*d,*d,*d,*d,*d,*d]\n---\n";
  std::string text;
  for (int i = 0; i < 50; ++i) text += doc;
  auto results = DecodeYamlText(text);
  ASSERT_FALSE(results.empty());
  EXPECT_LT(results.size(), 5u);
  EXPECT_FALSE(results.back().ok());
  EXPECT_EQ(results.back().kind, DecodeError::kSyntax);
  EXPECT_NE(results.back().error.find("the file has more than 250000 nodes in all"),
            std::string::npos)
      << results.back().error;
}

TEST(CodecTest, MapKeysThatLookLikeOtherTypesReadBackAsWritten) {
  ElasticVM vm;
  vm.metadata.name = "a";
  vm.metadata.namespace_ = "default";
  for (const char* key : {"null", "~", "1e3", "true", "<<", "", "a: b", "- x", "#c", "é"}) {
    vm.metadata.labels[key] = key;
  }
  auto results = DecodeYamlText(EncodeYamlText(vm));
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].ok()) << results[0].error << "\n" << EncodeYamlText(vm);
  EXPECT_EQ(results[0].object->metadata.labels, vm.metadata.labels);
}

}  // namespace
}  // namespace hotplug::crd
