#include "crd/quantity.h"

#include <algorithm>
#include <array>
#include <climits>

namespace hotplug::crd {
namespace {

constexpr __int128 kNanosPerUnit = 1'000'000'000;
// Amounts are kept so that Value() fits int64; larger quantities are refused.
constexpr __int128 kMaxNanos = static_cast<__int128>(INT64_MAX) * kNanosPerUnit;
// Input longer than this is refused before any arithmetic (a megabyte "quantity" is junk).
constexpr size_t kMaxTextLength = 128;
constexpr int kMaxExponent = 1000;

void SetError(std::string* error, std::string message) {
  if (error != nullptr) *error = std::move(message);
}

// Decimal digit string arithmetic: exact, and the strings are short (bounded input).
void DoubleDigits(std::string& digits) {
  int carry = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int d = (*it - '0') * 2 + carry;
    *it = static_cast<char>('0' + d % 10);
    carry = d / 10;
  }
  if (carry != 0) digits.insert(digits.begin(), static_cast<char>('0' + carry));
}

void StripLeadingZeros(std::string& digits) {
  size_t first = digits.find_first_not_of('0');
  digits.erase(0, first == std::string::npos ? digits.size() : first);
}

struct Suffix {
  std::string_view text;
  int exp10;
  int exp2;
  Quantity::Format format;
};

constexpr Suffix Binary(std::string_view text, int exp2) {
  return {text, 0, exp2, Quantity::Format::kBinarySI};
}
constexpr Suffix Decimal(std::string_view text, int exp10) {
  return {text, exp10, 0, Quantity::Format::kDecimalSI};
}

// Kubernetes' quantity suffixes: 2^10 .. 2^60, and 10^-9 .. 10^18.
constexpr std::array<Suffix, 15> kSuffixes{{
    Binary("Ki", 10),
    Binary("Mi", 20),
    Binary("Gi", 30),
    Binary("Ti", 40),
    Binary("Pi", 50),
    Binary("Ei", 60),
    Decimal("n", -9),
    Decimal("u", -6),
    Decimal("m", -3),
    Decimal("k", 3),
    Decimal("M", 6),
    Decimal("G", 9),
    Decimal("T", 12),
    Decimal("P", 15),
    Decimal("E", 18),
}};

std::string Int128ToString(__int128 value) {
  if (value == 0) return "0";
  bool negative = value < 0;
  std::string out;
  while (value != 0) {
    int digit = static_cast<int>(value % 10);
    out.push_back(static_cast<char>('0' + (negative ? -digit : digit)));
    value /= 10;
  }
  if (negative) out.push_back('-');
  std::reverse(out.begin(), out.end());
  return out;
}

__int128 Pow10(int exp) {
  __int128 result = 1;
  for (int i = 0; i < exp; ++i) result *= 10;
  return result;
}

}  // namespace

Quantity Quantity::FromInt(int64_t value, Format format) {
  Quantity q;
  q.nanos_ = static_cast<__int128>(value) * kNanosPerUnit;
  q.format_ = format;
  return q;
}

std::optional<Quantity> Quantity::Parse(std::string_view text, std::string* error) {
  if (text.empty()) {
    SetError(error, "quantity is empty");
    return std::nullopt;
  }
  if (text.size() > kMaxTextLength) {
    SetError(error, "quantity is longer than 128 characters");
    return std::nullopt;
  }
  size_t pos = 0;
  bool negative = false;
  if (text[pos] == '+' || text[pos] == '-') {
    negative = text[pos] == '-';
    ++pos;
  }
  std::string digits;
  int fraction_digits = 0;
  bool seen_point = false;
  bool seen_digit = false;
  for (; pos < text.size(); ++pos) {
    char c = text[pos];
    if (c >= '0' && c <= '9') {
      digits.push_back(c);
      seen_digit = true;
      if (seen_point) ++fraction_digits;
    } else if (c == '.' && !seen_point) {
      seen_point = true;
    } else {
      break;
    }
  }
  if (!seen_digit) {
    SetError(error, "quantity must start with a number");
    return std::nullopt;
  }
  std::string_view suffix = text.substr(pos);
  int exp10 = 0;
  int exp2 = 0;
  Format format = Format::kDecimalSI;
  bool is_exponent = suffix.size() >= 2 && (suffix[0] == 'e' || suffix[0] == 'E') && suffix != "Ei";
  if (is_exponent) {
    size_t i = 1;
    bool exp_negative = false;
    if (suffix[i] == '+' || suffix[i] == '-') {
      exp_negative = suffix[i] == '-';
      ++i;
    }
    if (i >= suffix.size()) {
      SetError(error, "quantity exponent has no digits");
      return std::nullopt;
    }
    int value = 0;
    for (; i < suffix.size(); ++i) {
      if (suffix[i] < '0' || suffix[i] > '9') {
        SetError(error, "unknown quantity suffix \"" + std::string(suffix) + "\"");
        return std::nullopt;
      }
      value = std::min(value * 10 + (suffix[i] - '0'), kMaxExponent + 1);
    }
    if (value > kMaxExponent) {
      SetError(error, "quantity exponent is out of range");
      return std::nullopt;
    }
    exp10 = exp_negative ? -value : value;
    format = Format::kDecimalExponent;
  } else if (!suffix.empty()) {
    auto it = std::find_if(kSuffixes.begin(), kSuffixes.end(),
                           [&](const Suffix& s) { return s.text == suffix; });
    if (it == kSuffixes.end()) {
      SetError(error, "unknown quantity suffix \"" + std::string(suffix) +
                          "\" (use Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E or eN)");
      return std::nullopt;
    }
    exp10 = it->exp10;
    exp2 = it->exp2;
    format = it->format;
  }

  for (int i = 0; i < exp2; ++i) DoubleDigits(digits);
  StripLeadingZeros(digits);
  Quantity q;
  q.format_ = format;
  if (digits.empty()) return q;

  // Scale to nano-units: shift the decimal point by exp10 + 9 - fraction_digits.
  int shift = exp10 + 9 - fraction_digits;
  bool round_up = false;
  if (shift >= 0) {
    if (digits.size() + static_cast<size_t>(shift) > 30) {
      SetError(error, "quantity is too large");
      return std::nullopt;
    }
    digits.append(static_cast<size_t>(shift), '0');
  } else {
    size_t drop = static_cast<size_t>(-shift);
    if (drop >= digits.size()) {
      digits = "0";
      round_up = true;  // a non-zero amount smaller than one nano-unit
    } else {
      std::string_view dropped(digits.data() + digits.size() - drop, drop);
      round_up = dropped.find_first_not_of('0') != std::string_view::npos;
      digits.resize(digits.size() - drop);
    }
    StripLeadingZeros(digits);
    if (digits.size() > 30) {
      SetError(error, "quantity is too large");
      return std::nullopt;
    }
  }
  __int128 nanos = 0;
  for (char c : digits) nanos = nanos * 10 + (c - '0');
  if (round_up) ++nanos;
  if (nanos > kMaxNanos) {
    SetError(error, "quantity is too large (above 2^63-1)");
    return std::nullopt;
  }
  q.nanos_ = negative ? -nanos : nanos;
  return q;
}

int64_t Quantity::Value() const {
  __int128 whole = nanos_ / kNanosPerUnit;
  if (nanos_ % kNanosPerUnit > 0) ++whole;  // round up, like resource.Quantity.Value()
  if (whole > INT64_MAX) return INT64_MAX;
  if (whole < INT64_MIN) return INT64_MIN;
  return static_cast<int64_t>(whole);
}

bool Quantity::IsInteger() const { return nanos_ % kNanosPerUnit == 0; }

std::string Quantity::ToString() const {
  if (nanos_ == 0) return "0";
  __int128 magnitude = nanos_ < 0 ? -nanos_ : nanos_;
  std::string out = nanos_ < 0 ? "-" : "";

  if (format_ == Format::kBinarySI && IsInteger() && magnitude >= 1024 * kNanosPerUnit) {
    __int128 value = magnitude / kNanosPerUnit;
    static constexpr std::array<std::string_view, 7> kBinary{"",   "Ki", "Mi", "Gi",
                                                             "Ti", "Pi", "Ei"};
    size_t index = 0;
    while (index + 1 < kBinary.size() && value % 1024 == 0) {
      value /= 1024;
      ++index;
    }
    out += Int128ToString(value);
    out += kBinary[index];
    return out;
  }

  // Decimal: the largest exponent (a multiple of 3, -9..18) that leaves a whole mantissa.
  int exp = 18;
  while (exp > -9 && magnitude % Pow10(exp + 9) != 0) exp -= 3;
  __int128 mantissa = magnitude / Pow10(exp + 9);
  out += Int128ToString(mantissa);
  if (format_ == Format::kDecimalExponent) {
    if (exp != 0) {
      out += 'e';
      out += std::to_string(exp);
    }
    return out;
  }
  static constexpr std::array<std::string_view, 10> kDecimal{"n", "u", "m", "",  "k",
                                                             "M", "G", "T", "P", "E"};
  out += kDecimal[(exp + 9) / 3];
  return out;
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes > static_cast<uint64_t>(INT64_MAX)) bytes = INT64_MAX;
  return Quantity::FromInt(static_cast<int64_t>(bytes), Quantity::Format::kBinarySI).ToString();
}

}  // namespace hotplug::crd
