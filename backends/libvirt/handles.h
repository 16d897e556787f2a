// Owning handles for the C objects of libvirt and libxml2: every one of them is freed by a
// unique_ptr deleter, so no early return can leak a domain, a document or a string.
#pragma once

#include <libvirt/libvirt.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>

#include <cstdlib>
#include <memory>
#include <string>

namespace hotplug::backends::libvirt {

// A deleter that frees with `Free`: a C function, or the address of a function pointer
// (libxml2's xmlFree is one).
template <auto Free>
struct FreeWith {
  template <typename T>
  void operator()(T* handle) const {
    (*Free)(handle);
  }
};

using DomainHandle = std::unique_ptr<virDomain, FreeWith<virDomainFree>>;
using XmlDoc = std::unique_ptr<xmlDoc, FreeWith<xmlFreeDoc>>;
using XPathContext = std::unique_ptr<xmlXPathContext, FreeWith<xmlXPathFreeContext>>;
using XPathObject = std::unique_ptr<xmlXPathObject, FreeWith<xmlXPathFreeObject>>;
// Strings libxml2 allocates (xmlGetProp, xmlNodeGetContent).
using XmlString = std::unique_ptr<xmlChar, FreeWith<&xmlFree>>;

// Strings libvirt hands over with malloc (virDomainGetXMLDesc, virDomainGetMetadata, ...).
struct MallocDeleter {
  void operator()(void* pointer) const { std::free(pointer); }
};
using MallocString = std::unique_ptr<char, MallocDeleter>;

// Typed parameters filled by virDomainGetJobStats, virDomainGetGuestVcpus, ...
class TypedParams {
 public:
  TypedParams() = default;
  TypedParams(const TypedParams&) = delete;
  TypedParams& operator=(const TypedParams&) = delete;
  ~TypedParams() { virTypedParamsFree(params_, count_); }
  virTypedParameterPtr* out_params() { return &params_; }
  int* out_count() { return &count_; }
  virTypedParameterPtr get() const { return params_; }
  int count() const { return count_; }

 private:
  virTypedParameterPtr params_ = nullptr;
  int count_ = 0;
};

// Takes ownership of a malloc'ed C string and returns it as std::string ("" for null).
inline std::string TakeString(char* text) {
  MallocString owned(text);
  return owned ? std::string(owned.get()) : std::string();
}

}  // namespace hotplug::backends::libvirt
