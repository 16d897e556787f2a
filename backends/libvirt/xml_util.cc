#include "backends/libvirt/xml_util.h"

#include <libxml/xmlsave.h>

#include <charconv>
#include <climits>
#include <string>

namespace hotplug::backends::libvirt {
namespace {

std::optional<uint64_t> ParseUnsigned(const std::string& text) {
  uint64_t value = 0;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  while (begin < end && (*begin == ' ' || *begin == '\n' || *begin == '\t')) ++begin;
  while (end > begin && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\t')) --end;
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr != end || begin == end) return std::nullopt;
  return value;
}

std::optional<uint64_t> UnitMultiplier(const std::string& unit) {
  if (unit.empty() || unit == "k" || unit == "K" || unit == "KiB") return 1024ull;
  if (unit == "b" || unit == "bytes") return 1ull;
  if (unit == "KB") return 1000ull;
  if (unit == "M" || unit == "m" || unit == "MiB") return 1024ull * 1024;
  if (unit == "MB") return 1000ull * 1000;
  if (unit == "G" || unit == "g" || unit == "GiB") return 1024ull * 1024 * 1024;
  if (unit == "GB") return 1000ull * 1000 * 1000;
  if (unit == "T" || unit == "t" || unit == "TiB") return 1024ull * 1024 * 1024 * 1024;
  if (unit == "TB") return 1000ull * 1000 * 1000 * 1000;
  return std::nullopt;
}

}  // namespace

Result<XmlDocument> ParseXml(std::string_view xml, std::string_view what) {
  XmlDocument document;
  if (xml.size() > static_cast<size_t>(INT_MAX)) {
    return Status::Error(ErrorCode::kInternal, std::string(what) + " is too large to parse");
  }
  document.doc.reset(xmlReadMemory(xml.data(), static_cast<int>(xml.size()), nullptr, nullptr,
                                   XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING));
  if (!document.doc) {
    return Status::Error(ErrorCode::kInternal, "could not parse " + std::string(what) + " as XML");
  }
  document.xpath.reset(xmlXPathNewContext(document.doc.get()));
  if (!document.xpath) {
    return Status::Error(ErrorCode::kInternal, "could not create an XPath context");
  }
  return document;
}

std::optional<std::string> XPathText(const XmlDocument& document, const char* expr,
                                     xmlNodePtr node) {
  document.xpath->node = node != nullptr ? node : xmlDocGetRootElement(document.doc.get());
  std::string wrapped = std::string("string(") + expr + ")";
  XPathObject result(xmlXPathEvalExpression(reinterpret_cast<const xmlChar*>(wrapped.c_str()),
                                            document.xpath.get()));
  if (!result || result->type != XPATH_STRING || result->stringval == nullptr ||
      result->stringval[0] == '\0') {
    return std::nullopt;
  }
  return std::string(reinterpret_cast<const char*>(result->stringval));
}

std::vector<xmlNodePtr> XPathNodes(const XmlDocument& document, const char* expr, xmlNodePtr node) {
  document.xpath->node = node != nullptr ? node : xmlDocGetRootElement(document.doc.get());
  XPathObject result(
      xmlXPathEvalExpression(reinterpret_cast<const xmlChar*>(expr), document.xpath.get()));
  std::vector<xmlNodePtr> nodes;
  if (!result || result->type != XPATH_NODESET || result->nodesetval == nullptr) return nodes;
  for (int i = 0; i < result->nodesetval->nodeNr; ++i) {
    nodes.push_back(result->nodesetval->nodeTab[i]);
  }
  return nodes;
}

std::optional<uint64_t> XPathUnsigned(const XmlDocument& document, const char* expr,
                                      xmlNodePtr node) {
  auto text = XPathText(document, expr, node);
  if (!text) return std::nullopt;
  return ParseUnsigned(*text);
}

std::optional<uint64_t> XPathBytes(const XmlDocument& document, const char* expr, xmlNodePtr node) {
  auto value = XPathUnsigned(document, expr, node);
  if (!value) return std::nullopt;
  const std::string unit_expr = std::string(expr) + "/@unit";
  auto multiplier = UnitMultiplier(XPathText(document, unit_expr.c_str(), node).value_or(""));
  uint64_t bytes = 0;
  if (!multiplier || __builtin_mul_overflow(*value, *multiplier, &bytes)) return std::nullopt;
  return bytes;
}

std::string NodeToString(xmlDocPtr doc, xmlNodePtr node) {
  std::unique_ptr<xmlBuffer, FreeWith<xmlBufferFree>> buffer(xmlBufferCreate());
  if (!buffer || xmlNodeDump(buffer.get(), doc, node, 0, 0) < 0) return "";
  return std::string(reinterpret_cast<const char*>(xmlBufferContent(buffer.get())));
}

}  // namespace hotplug::backends::libvirt
