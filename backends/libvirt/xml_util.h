// Small XPath helpers over libxml2 for reading libvirt's domain XML.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backends/hypervisor.h"
#include "backends/libvirt/handles.h"

namespace hotplug::backends::libvirt {

// A parsed document with its XPath context.
struct XmlDocument {
  XmlDoc doc;
  XPathContext xpath;
};

// Parses `xml` without network access or entity expansion; `what` names it in errors.
Result<XmlDocument> ParseXml(std::string_view xml, std::string_view what);

// The string value of `expr` evaluated at `node` (the document root when null); nullopt
// when the expression selects nothing or an empty string.
std::optional<std::string> XPathText(const XmlDocument& document, const char* expr,
                                     xmlNodePtr node = nullptr);

// The nodes `expr` selects at `node` (the root when null).
std::vector<xmlNodePtr> XPathNodes(const XmlDocument& document, const char* expr,
                                   xmlNodePtr node = nullptr);

// Unsigned integer value of `expr`, nullopt when absent or not a number.
std::optional<uint64_t> XPathUnsigned(const XmlDocument& document, const char* expr,
                                      xmlNodePtr node = nullptr);

// A libvirt memory size: the number in `expr` scaled by the unit in `expr`/@unit (libvirt's
// units: b, k/KiB (the default), KB, M/MiB, MB, G/GiB, GB, T/TiB, TB).
std::optional<uint64_t> XPathBytes(const XmlDocument& document, const char* expr,
                                   xmlNodePtr node = nullptr);

// The node serialized as XML text.
std::string NodeToString(xmlDocPtr doc, xmlNodePtr node);

}  // namespace hotplug::backends::libvirt
