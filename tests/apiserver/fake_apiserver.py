#!/usr/bin/env python3
"""A test Kubernetes API server: the subset hotplug-operator and kubectl v1.32 use.

Never shipped. Serves discovery, OpenAPI v3 (enough for kubectl's server-side field
validation and `kubectl explain`), CRUD with resourceVersion/generation/status-subresource
semantics, watches with bookmarks and 410 Expired, Tables for `kubectl get`, and a small
admin API (/_admin/...) for fault injection and the request log. See README.md next to it
for what it does NOT implement.

Standard library only. Start: fake_apiserver.py [--port 0] [--port-file F]; it prints
`LISTENING <port>` on stdout once it accepts connections and stops cleanly on SIGTERM.
"""

import argparse
import base64
import bisect
import copy
import datetime
import hashlib
import json
import os
import random
import re
import signal
import ssl
import string
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVER_VERSION = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0-hotplug-test",
    "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
    "platform": "linux/amd64",
}
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
DNS1123_SUBDOMAIN_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
STANDARD_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                  "watch"]
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def human_duration(seconds):
    """Kubernetes' duration.HumanDuration, as shown in the AGE column."""
    if seconds < -1:
        return "<invalid>"
    seconds = int(max(seconds, 0))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    return f"{hours // (24 * 365)}y"


# ----------------------------------------------------------------------------------------
# Errors: every failure leaves the server as a metav1.Status, like kube's apierrors.


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(rtype, name):
    return ApiError(404, "NotFound", f'{rtype.qualified()} "{name}" not found',
                    {"name": name, "group": rtype.group, "kind": rtype.plural})


def conflict(rtype, name):
    return ApiError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {rtype.qualified()} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": rtype.group, "kind": rtype.plural})


def expired(requested_rv, oldest_rv):
    return ApiError(410, "Expired",
                    f"too old resource version: {requested_rv} ({oldest_rv})")


def invalid(rtype, name, causes):
    """causes: list of (field, reason, message) as kube's field.ErrorList renders them."""
    texts = [f"{field}: {message}" if field else message for field, _, message in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiError(
        422, "Invalid", f'{rtype.kind}.{rtype.group or "core"} "{name}" is invalid: {summary}'
        if rtype.group else f'{rtype.kind} "{name}" is invalid: {summary}',
        {"name": name, "group": rtype.group, "kind": rtype.kind,
         "causes": [{"reason": reason, "message": message, "field": field}
                    for field, reason, message in causes]})


def bad_request(message):
    return ApiError(400, "BadRequest", message)


# ----------------------------------------------------------------------------------------
# Resource types: what discovery lists and what the store keys objects by.


class ResourceType:
    def __init__(self, group, version, plural, kind, namespaced, singular=None,
                 short_names=(), categories=(), status_subresource=False, custom=False):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.namespaced = namespaced
        self.singular = singular or kind.lower()
        self.short_names = list(short_names)
        self.categories = list(categories)
        self.status_subresource = status_subresource
        self.custom = custom          # served like a custom resource (no strategic merge)
        self.schema = None            # openAPIV3Schema from a CRD, when one is installed
        self.printer_columns = None   # additionalPrinterColumns from a CRD

    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    def qualified(self):
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def list_kind(self):
        return self.kind + "List"

    def discovery_entries(self):
        entry = {"name": self.plural, "singularName": self.singular,
                 "namespaced": self.namespaced, "kind": self.kind, "verbs": STANDARD_VERBS,
                 "storageVersionHash": base64.b64encode(hashlib.sha256(
                     self.qualified().encode()).digest()[:8]).decode()}
        if self.short_names:
            entry["shortNames"] = self.short_names
        if self.categories:
            entry["categories"] = self.categories
        entries = [entry]
        if self.status_subresource:
            entries.append({"name": self.plural + "/status", "singularName": "",
                            "namespaced": self.namespaced, "kind": self.kind,
                            "verbs": ["get", "patch", "update"]})
        return entries


OBJECT_REFERENCE = "<kind/name of involvedObject>"   # a pseudo-path for the events table


def column(name, json_path, column_type="string"):
    return {"name": name, "type": column_type, "jsonPath": json_path}


def builtin_types():
    namespaces = ResourceType("", "v1", "namespaces", "Namespace", False, short_names=["ns"],
                              status_subresource=True)
    namespaces.printer_columns = [column("Status", ".status.phase"),
                                  column("Age", ".metadata.creationTimestamp", "date")]
    events = ResourceType("", "v1", "events", "Event", True, short_names=["ev"])
    events.printer_columns = [column("Last Seen", ".lastTimestamp", "date"),
                              column("Type", ".type"), column("Reason", ".reason"),
                              column("Object", OBJECT_REFERENCE),
                              column("Message", ".message")]
    leases = ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True)
    leases.printer_columns = [column("Holder", ".spec.holderIdentity"),
                              column("Age", ".metadata.creationTimestamp", "date")]
    return [
        namespaces, events, leases,
        # A separate store from core/v1 events (kube shares one and converts between them).
        ResourceType("events.k8s.io", "v1", "events", "Event", True, short_names=["ev"]),
        ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                     "CustomResourceDefinition", False, short_names=["crd", "crds"],
                     categories=["api-extensions"], status_subresource=True),
        # Served before any CRD is applied, so a test may skip `kubectl apply -f crd/`; the
        # CRD, once applied, brings its schema (validation, defaults) and printer columns.
        ResourceType("hotplug.dev", "v1alpha1", "elasticvms", "ElasticVM", True,
                     short_names=["evm"], categories=["hotplug"], status_subresource=True,
                     custom=True),
    ]


# ----------------------------------------------------------------------------------------
# Selectors.


def split_outside_parens(text):
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


LABEL_SET_RE = re.compile(r"^([A-Za-z0-9_./-]+)\s+(in|notin)\s+\((.*)\)$")
LABEL_CMP_RE = re.compile(r"^([A-Za-z0-9_./-]+)\s*(==|=|!=)\s*([A-Za-z0-9_.-]*)$")
LABEL_EXISTS_RE = re.compile(r"^(!?)([A-Za-z0-9_./-]+)$")


def parse_label_selector(text):
    """Returns a predicate over a labels dict; raises ApiError on a malformed selector."""
    requirements = []
    for part in split_outside_parens(text or ""):
        match = LABEL_SET_RE.match(part)
        if match:
            values = {v.strip() for v in match.group(3).split(",") if v.strip()}
            key, positive = match.group(1), match.group(2) == "in"
            requirements.append(
                lambda labels, k=key, vs=values, pos=positive:
                (labels.get(k) in vs) if pos else (labels.get(k) not in vs))
            continue
        match = LABEL_CMP_RE.match(part)
        if match:
            key, op, value = match.groups()
            if op == "!=":
                requirements.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                requirements.append(lambda labels, k=key, v=value: labels.get(k) == v)
            continue
        match = LABEL_EXISTS_RE.match(part)
        if match:
            negate, key = match.groups()
            requirements.append(
                lambda labels, k=key, neg=bool(negate): (k in labels) != neg)
            continue
        raise bad_request(f'unable to parse requirement: invalid label selector "{part}"')
    return lambda labels: all(req(labels) for req in requirements)


def parse_field_selector(text):
    requirements = []
    for part in split_outside_parens(text or ""):
        match = re.match(r"^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$", part)
        if not match:
            raise bad_request(f'invalid field selector "{part}"')
        field, op, value = match.groups()
        requirements.append((field.split("."), op, value))

    def matches(obj):
        # Any dotted path is accepted (kube allows a fixed set per kind, e.g. the
        # involvedObject.* fields of Events that `kubectl describe` uses).
        for path, op, value in requirements:
            actual = obj
            for key in path:
                actual = actual.get(key) if isinstance(actual, dict) else None
            actual = "" if actual is None else (
                json.dumps(actual) if not isinstance(actual, str) else actual)
            if (actual == value) != (op != "!="):
                return False
        return True
    return matches


# ----------------------------------------------------------------------------------------
# Patches.


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer_tokens(pointer):
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise bad_request(f'json patch: invalid path "{pointer}"')
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _resolve_parent(doc, tokens, path):
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ApiError(422, "Invalid", f'json patch: path "{path}" does not exist')
    return node


def _pointer_get(doc, path):
    node = doc
    for token in _pointer_tokens(path):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise ApiError(422, "Invalid", f'json patch: path "{path}" does not exist')
    return node


def _pointer_remove(doc, path):
    tokens = _pointer_tokens(path)
    parent = _resolve_parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise ApiError(422, "Invalid", f'json patch: unable to remove nonexistent key "{path}"')


def _pointer_add(doc, path, value, replace=False):
    tokens = _pointer_tokens(path)
    if not tokens:
        return value
    parent = _resolve_parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise ApiError(422, "Invalid",
                           f'json patch: replace of missing key "{path}"')
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise ApiError(422, "Invalid", f'json patch: bad index in "{path}"')
    else:
        raise ApiError(422, "Invalid", f'json patch: path "{path}" does not exist')
    return doc


def json_patch(target, operations):
    """RFC 6902."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        kind, path = op.get("op"), op.get("path", "")
        if kind == "add":
            doc = _pointer_add(doc, path, copy.deepcopy(op.get("value")))
        elif kind == "replace":
            doc = _pointer_add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            _pointer_remove(doc, path)
        elif kind == "move":
            value = _pointer_remove(doc, op.get("from", ""))
            doc = _pointer_add(doc, path, value)
        elif kind == "copy":
            doc = _pointer_add(doc, path, copy.deepcopy(_pointer_get(doc, op.get("from", ""))))
        elif kind == "test":
            if _pointer_get(doc, path) != op.get("value"):
                raise ApiError(422, "Invalid", f'json patch: test failed at "{path}"')
        else:
            raise bad_request(f'json patch: unknown op "{kind}"')
    return doc


# ----------------------------------------------------------------------------------------
# Schema: validation, defaulting and pruning against a CRD's openAPIV3Schema (a subset).

QUANTITY_TYPES = (int, float, str)


def _json_type_ok(value, expected):
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    return True


def _render(value):
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return '"' + type(value).__name__ + '"'
    return json.dumps(value)


def _go_type_name(value):
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def validate_against_schema(value, schema, path, causes, unknown):
    """Appends (field, reason, message) to causes, unknown field paths to unknown."""
    if schema is None:
        return
    int_or_string = schema.get("x-kubernetes-int-or-string")
    expected = schema.get("type")
    if int_or_string:
        if not isinstance(value, QUANTITY_TYPES) or isinstance(value, bool):
            causes.append((path, "FieldValueInvalid",
                           f"Invalid value: {_render(value)}: {path} in body must be of type "
                           f"integer,string: \"{_go_type_name(value)}\""))
            return
    elif expected and not _json_type_ok(value, expected):
        causes.append((path, "FieldValueInvalid",
                       f"Invalid value: {_render(value)}: {path} in body must be of type "
                       f"{expected}: \"{_go_type_name(value)}\""))
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(json.dumps(v) for v in schema["enum"])
        causes.append((path, "FieldValueNotSupported",
                       f"Unsupported value: {_render(value)}: supported values: {supported}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            causes.append((path, "FieldValueInvalid",
                           f"Invalid value: {_render(value)}: {path} in body should be greater "
                           f"than or equal to {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            causes.append((path, "FieldValueInvalid",
                           f"Invalid value: {_render(value)}: {path} in body should be less "
                           f"than or equal to {schema['maximum']}"))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append((path, "FieldValueInvalid",
                           f"Invalid value: {_render(value)}: {path} in body should be at least "
                           f"{schema['minLength']} chars long"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append((path, "FieldValueTooLong",
                           f"Too long: may not be longer than {schema['maxLength']}"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            causes.append((path, "FieldValueInvalid",
                           f"Invalid value: {_render(value)}: {path} in body should match "
                           f"'{schema['pattern']}'"))
    if isinstance(value, dict):
        properties = schema.get("properties")
        for required in schema.get("required", []):
            if required not in value:
                causes.append((f"{path}.{required}" if path else required,
                               "FieldValueRequired", "Required value"))
        if properties is not None and path != "metadata":
            for key, child in value.items():
                child_path = f"{path}.{key}" if path else key
                if key in properties:
                    validate_against_schema(child, properties[key], child_path, causes,
                                            unknown)
                elif not schema.get("x-kubernetes-preserve-unknown-fields") and \
                        "additionalProperties" not in schema:
                    unknown.append(child_path)
        elif isinstance(schema.get("additionalProperties"), dict):
            for key, child in value.items():
                validate_against_schema(child, schema["additionalProperties"],
                                        f"{path}.{key}" if path else key, causes, unknown)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            validate_against_schema(item, schema["items"], f"{path}[{index}]", causes, unknown)


def apply_defaults(value, schema):
    if not isinstance(value, dict) or not schema:
        return
    for key, child in (schema.get("properties") or {}).items():
        if key not in value and "default" in child:
            value[key] = copy.deepcopy(child["default"])
        if key in value:
            if isinstance(value[key], dict):
                apply_defaults(value[key], child)
            elif isinstance(value[key], list) and isinstance(child.get("items"), dict):
                for item in value[key]:
                    apply_defaults(item, child["items"])


def prune_unknown(obj, paths):
    for path in paths:
        tokens = re.findall(r"[^.\[\]]+", path)
        node = obj
        for token in tokens[:-1]:
            node = node[int(token)] if isinstance(node, list) else node.get(token)
            if node is None:
                break
        if isinstance(node, dict):
            node.pop(tokens[-1], None)


# ----------------------------------------------------------------------------------------
# JSONPath, the subset CRD printer columns use: .a.b, [n], [*], [?(@.k=="v")].

JSONPATH_TOKEN_RE = re.compile(
    r"\.([A-Za-z0-9_-]+)|\[(\d+|\*)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*[\"']([^\"']*)[\"']\)\]")


def jsonpath_values(obj, expression):
    expression = expression.strip()
    if expression.startswith("{") and expression.endswith("}"):
        expression = expression[1:-1]
    nodes, position = [obj], 0
    while position < len(expression):
        match = JSONPATH_TOKEN_RE.match(expression, position)
        if not match:
            return []
        position = match.end()
        field, index, filter_key, filter_value = match.groups()
        next_nodes = []
        for node in nodes:
            if field is not None and isinstance(node, dict) and field in node:
                next_nodes.append(node[field])
            elif index is not None and isinstance(node, list):
                if index == "*":
                    next_nodes.extend(node)
                elif int(index) < len(node):
                    next_nodes.append(node[int(index)])
            elif filter_key is not None and isinstance(node, list):
                for item in node:
                    found = item
                    for part in filter_key.split("."):
                        found = found.get(part) if isinstance(found, dict) else None
                    if found is not None and str(found) == filter_value:
                        next_nodes.append(item)
        nodes = next_nodes
    return nodes


# ----------------------------------------------------------------------------------------
# Faults: the state a test flips at start (flags) or at runtime (POST /_admin/faults).


class Faults:
    """All fields guarded by self.lock."""

    FIELDS = {
        "watch_close_after_events": 0,   # >0: end each watch after this many events
        "watch_close_abrupt": False,     # true: end it by dropping the connection mid-stream
        "watch_gone_on_reconnect": False,  # every watch with resourceVersion>0 gets 410
        "watch_gone_mode": "event",      # "event": 200 + ERROR event; "http": HTTP 410
        "watch_gone_count": 0,           # >0: only this many 410s, then the fault turns off
        "status_conflict_every": 0,      # N>0: every Nth status write answers 409
        "errors": [],                    # [{prefix, code, seconds|count, methods}] rules
        "delay_ms": 0,                   # delay every answer (not /_admin)
        "delay_prefix": "",              # only for paths starting with this
        "validation": True,              # false: store invalid objects as sent
        "bookmark_interval_seconds": 5.0,
        # true: a LIST that asks for a resourceVersion gets 410 Expired (a server that can no
        # longer serve the version asked for); a quorum LIST (no resourceVersion) still works.
        "list_refuse_resource_version": False,
        "list_continue_gone_count": 0,   # >0: this many LISTs with a continue token get 410
        # >0: a LIST answer sends its first half of items, then waits this long before the
        # rest (a long answer still arriving); its request log entry gets "finished" at the end.
        "list_stall_ms": 0,
    }

    def __init__(self):
        self.lock = threading.Lock()
        self.values = copy.deepcopy(self.FIELDS)
        self.status_writes = 0

    def update(self, changes):
        with self.lock:
            if changes.get("reset"):
                keep_validation = self.values["validation"]
                self.values = copy.deepcopy(self.FIELDS)
                self.values["validation"] = keep_validation
                self.status_writes = 0
            for key, value in changes.items():
                if key == "reset":
                    continue
                if key not in self.FIELDS:
                    raise bad_request(f"unknown fault {key!r}; known: {sorted(self.FIELDS)}")
                if key == "errors":
                    value = [self._arm_error_rule(rule) for rule in value]
                self.values[key] = value
            return self.snapshot_locked()

    @staticmethod
    def _arm_error_rule(rule):
        armed = {"prefix": rule.get("prefix", "/"), "code": int(rule.get("code", 500)),
                 "methods": [m.upper() for m in rule.get("methods", [])],
                 "verbs": list(rule.get("verbs", []))}
        if "seconds" in rule:
            armed["until"] = time.time() + float(rule["seconds"])
        if "count" in rule:
            armed["remaining"] = int(rule["count"])
        if "until" not in armed and "remaining" not in armed:
            armed["remaining"] = 1
        return armed

    def snapshot_locked(self):
        return copy.deepcopy(self.values)

    def snapshot(self):
        with self.lock:
            return self.snapshot_locked()

    def get(self, key):
        with self.lock:
            return self.values[key]

    def injected_error(self, method, path, verbs):
        """The HTTP code to fail this request with, or None. verbs: the kube verbs the
        request may be (a GET is "get" and "list" until its path is parsed)."""
        with self.lock:
            now = time.time()
            live = []
            code = None
            for rule in self.values["errors"]:
                expired_rule = ("until" in rule and now >= rule["until"]) or \
                    ("remaining" in rule and rule["remaining"] <= 0)
                if expired_rule:
                    continue
                live.append(rule)
                if code is None and path.startswith(rule["prefix"]) and \
                        (not rule["methods"] or method in rule["methods"]) and \
                        (not rule["verbs"] or set(rule["verbs"]) & set(verbs)):
                    code = rule["code"]
                    if "remaining" in rule:
                        rule["remaining"] -= 1
            self.values["errors"] = live
            return code

    def take_list_continue_gone(self):
        """Whether this LIST's continue token must be refused as expired, counting it."""
        with self.lock:
            if self.values["list_continue_gone_count"] <= 0:
                return False
            self.values["list_continue_gone_count"] -= 1
            return True

    def take_watch_gone(self):
        """Whether this watch (one with a resourceVersion) must get 410, counting it."""
        with self.lock:
            if not self.values["watch_gone_on_reconnect"]:
                return False
            if self.values["watch_gone_count"] > 0:
                self.values["watch_gone_count"] -= 1
                if self.values["watch_gone_count"] == 0:
                    self.values["watch_gone_on_reconnect"] = False
            return True

    def status_write_conflicts(self):
        with self.lock:
            every = self.values["status_conflict_every"]
            if every <= 0:
                return False
            self.status_writes += 1
            return self.status_writes % every == 0


# ----------------------------------------------------------------------------------------
# The store: objects, the global resourceVersion and a bounded event history.


class WatchEvent:
    """One change. obj/previous are shared with the store, never mutated (see Store)."""
    __slots__ = ("rv", "type", "rtype_key", "namespace", "obj", "previous", "line")

    def __init__(self, rv, event_type, rtype_key, namespace, obj, previous):
        self.rv = rv
        self.type = event_type
        self.rtype_key = rtype_key
        self.namespace = namespace
        self.obj = obj
        self.previous = previous
        self.line = None   # the JSON line, encoded once by the first watcher that needs it

    def json_line(self):
        if self.line is None:
            self.line = json.dumps({"type": self.type, "object": self.obj}).encode() + b"\n"
        return self.line


class Store:
    """Objects keyed by (group, plural, namespace, name). Everything guarded by self.lock;
    self.changed (a Condition on the same lock) wakes watchers on every write. A stored
    object is never mutated in place: a write stores a new dict, so the history and
    watchers may hold references to old ones without copying."""

    def __init__(self, faults, history_size):
        self.lock = threading.RLock()   # re-entered by dry_run around a write
        self.changed = threading.Condition(self.lock)
        self.faults = faults
        self.types = {}            # (group, version, plural) -> ResourceType
        self.objects = {}          # (group, plural, ns, name) -> object dict
        self.rv = 0
        self.history = []          # WatchEvent, ascending rv
        self.history_size = history_size
        self.compacted_rv = 0      # events with rv <= this are gone from the history
        self.stopping = False
        for rtype in builtin_types():
            self.types[(rtype.group, rtype.version, rtype.plural)] = rtype
        for namespace in DEFAULT_NAMESPACES:
            with self.lock:
                self._create_locked(self.types[("", "v1", "namespaces")], "",
                                    {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": namespace},
                                     "status": {"phase": "Active"}}, keep_status=True)

    # -- types -------------------------------------------------------------------------

    def find_type(self, group, version, plural):
        with self.lock:
            return self.types.get((group, version, plural))

    def groups(self):
        with self.lock:
            by_group = {}
            for rtype in self.types.values():
                by_group.setdefault(rtype.group, [])
                if rtype.version not in by_group[rtype.group]:
                    by_group[rtype.group].append(rtype.version)
            return by_group

    def types_in(self, group, version):
        with self.lock:
            return [t for (g, v, _), t in self.types.items() if g == group and v == version]

    def _install_crd_locked(self, crd):
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            key = (spec.get("group", ""), version.get("name"), names.get("plural"))
            rtype = self.types.get(key)
            if rtype is None:
                rtype = ResourceType(key[0], key[1], key[2], names.get("kind", ""),
                                     spec.get("scope") != "Cluster", custom=True)
                self.types[key] = rtype
            rtype.kind = names.get("kind", rtype.kind)
            rtype.singular = names.get("singular") or rtype.kind.lower()
            rtype.short_names = list(names.get("shortNames", rtype.short_names))
            rtype.categories = list(names.get("categories", rtype.categories))
            rtype.namespaced = spec.get("scope") != "Cluster"
            rtype.status_subresource = "status" in (version.get("subresources") or {})
            rtype.schema = (version.get("schema") or {}).get("openAPIV3Schema")
            rtype.printer_columns = version.get("additionalPrinterColumns")

    def _uninstall_crd_locked(self, crd):
        """Deleting a CRD deletes its objects and stops serving it; the built-in ElasticVM
        type stays served, without the CRD's schema and printer columns."""
        spec = crd.get("spec", {})
        builtin = {(t.group, t.version, t.plural): t for t in builtin_types()}
        for version in spec.get("versions", []):
            key = (spec.get("group", ""), version.get("name"),
                   spec.get("names", {}).get("plural"))
            rtype = self.types.get(key)
            if rtype is None:
                continue
            for object_key in [k for k in self.objects if k[0:2] == (key[0], key[2])]:
                previous = self.objects.pop(object_key)
                gone = copy.deepcopy(previous)
                gone["metadata"]["resourceVersion"] = self._next_rv_locked()
                self._record_locked("DELETED", rtype, object_key[2], gone, previous)
            if key in builtin:
                self.types[key] = builtin[key]
            else:
                del self.types[key]

    def _crd_established(self, crd):
        names = crd.get("spec", {}).get("names", {})
        crd["status"] = {
            "acceptedNames": names, "storedVersions": [
                v.get("name") for v in crd.get("spec", {}).get("versions", [])
                if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now_rfc3339()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted",
                 "lastTransitionTime": now_rfc3339()}]}

    # -- history -----------------------------------------------------------------------

    def _record_locked(self, event_type, rtype, namespace, obj, previous):
        self.history.append(WatchEvent(self.rv, event_type, (rtype.group, rtype.plural),
                                       namespace, obj, previous))
        # Trim in batches so a full history does not cost a list move per write.
        if len(self.history) > self.history_size + max(16, self.history_size // 8):
            drop = len(self.history) - self.history_size
            self.compacted_rv = self.history[drop - 1].rv
            del self.history[:drop]
        self.changed.notify_all()

    def compact(self):
        """Forget all history: every watch from an older resourceVersion gets 410."""
        with self.lock:
            self.compacted_rv = self.rv
            self.history = []
            self.changed.notify_all()
            return self.rv

    def events_after(self, rv):
        """Events with rv > given; raises ApiError 410 when they are no longer all known."""
        if rv < self.compacted_rv:
            raise expired(rv, self.compacted_rv + 1)
        start = bisect.bisect_right(self.history, rv, key=lambda e: e.rv)
        return self.history[start:]

    # -- helpers -----------------------------------------------------------------------

    def _next_rv_locked(self):
        self.rv += 1
        return str(self.rv)

    @staticmethod
    def _spec_part(obj):
        return {k: v for k, v in obj.items()
                if k not in ("metadata", "status", "apiVersion", "kind")}

    @staticmethod
    def _without_rv(obj):
        stripped = copy.deepcopy(obj)
        stripped.get("metadata", {}).pop("resourceVersion", None)
        return stripped

    def _check_namespace_locked(self, rtype, namespace):
        if rtype.namespaced and ("", "namespaces", "", namespace) not in self.objects:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           {"name": namespace, "kind": "namespaces"})

    def _validate_locked(self, rtype, obj, field_validation, warnings):
        if rtype.schema is None or not self.faults.get("validation"):
            return
        body = {k: v for k, v in obj.items() if k != "metadata"}
        apply_defaults(body, rtype.schema)
        causes, unknown = [], []
        validate_against_schema(body, rtype.schema, "", causes, unknown)
        name = obj.get("metadata", {}).get("name", "")
        if unknown and field_validation == "Strict":
            raise bad_request("strict decoding error: " + ", ".join(
                f'unknown field "{path}"' for path in unknown))
        if unknown and field_validation == "Warn":
            warnings.extend(f'unknown field "{path}"' for path in unknown)
        if causes:
            raise invalid(rtype, name, causes)
        prune_unknown(body, unknown)
        for key in list(obj):
            if key != "metadata":
                del obj[key]
        obj.update(body)

    # -- reads -------------------------------------------------------------------------

    def get(self, rtype, namespace, name):
        with self.lock:
            obj = self.objects.get((rtype.group, rtype.plural, namespace, name))
            if obj is None:
                raise not_found(rtype, name)
            return copy.deepcopy(obj)

    def list(self, rtype, namespace, label_match, field_match):
        """The matching objects, shared with the store: read them, do not mutate them."""
        with self.lock:
            items = [obj for (g, p, ns, _), obj in sorted(self.objects.items())
                     if g == rtype.group and p == rtype.plural
                     and (namespace is None or ns == namespace)
                     and label_match(obj.get("metadata", {}).get("labels") or {})
                     and field_match(obj)]
            return items, str(self.rv)

    # -- writes ------------------------------------------------------------------------

    def create(self, rtype, namespace, obj, field_validation="", warnings=None):
        with self.lock:
            return self._create_locked(rtype, namespace, obj, field_validation,
                                       warnings if warnings is not None else [])

    def _create_locked(self, rtype, namespace, obj, field_validation="", warnings=None,
                       keep_status=False):
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        name = meta.get("name")
        if not name:
            raise invalid(rtype, "", [("metadata.name", "FieldValueRequired",
                                       "Required value: name or generateName is required")])
        if meta.get("namespace") and rtype.namespaced and meta["namespace"] != namespace:
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        if self.faults.get("validation") and not DNS1123_SUBDOMAIN_RE.match(name):
            raise invalid(rtype, name, [(
                "metadata.name", "FieldValueInvalid",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                "lower case alphanumeric characters, '-' or '.', and must start and end with "
                "an alphanumeric character")])
        if rtype.namespaced:
            self._check_namespace_locked(rtype, namespace)
        key = (rtype.group, rtype.plural, namespace, name)
        if key in self.objects:
            raise ApiError(409, "AlreadyExists",
                           f'{rtype.qualified()} "{name}" already exists',
                           {"name": name, "group": rtype.group, "kind": rtype.plural})
        obj["apiVersion"] = rtype.api_version()
        obj["kind"] = rtype.kind
        if rtype.status_subresource and not keep_status:
            obj.pop("status", None)
        if rtype.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        self._validate_locked(rtype, obj, field_validation, warnings)
        if rtype.plural == "customresourcedefinitions":
            self._crd_established(obj)
        for transient in ("resourceVersion", "uid", "creationTimestamp", "deletionTimestamp",
                          "managedFields"):
            meta.pop(transient, None)
        if rtype.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        meta["resourceVersion"] = self._next_rv_locked()
        self.objects[key] = obj
        if rtype.plural == "customresourcedefinitions":
            self._install_crd_locked(obj)
        self._record_locked("ADDED", rtype, namespace, obj, None)
        return copy.deepcopy(obj)

    def update(self, rtype, namespace, name, mutate, subresource="", field_validation="",
               warnings=None, require_rv=False):
        """mutate(current copy) -> desired object; applies kube's update rules."""
        warnings = warnings if warnings is not None else []
        with self.lock:
            key = (rtype.group, rtype.plural, namespace, name)
            current = self.objects.get(key)
            if current is None:
                raise not_found(rtype, name)
            desired = mutate(copy.deepcopy(current))
            if not isinstance(desired, dict):
                raise bad_request("the body of the request must be a JSON object")
            desired_meta = desired.setdefault("metadata", {})
            if desired_meta.get("name", name) != name:
                raise bad_request(f'the name of the object ({desired_meta.get("name")}) does '
                                  f'not match the name on the URL ({name})')
            sent_rv = desired_meta.get("resourceVersion")
            if sent_rv in (None, "") and require_rv:
                raise invalid(rtype, name, [(
                    "metadata.resourceVersion", "FieldValueInvalid",
                    "Invalid value: 0x0: must be specified for an update")])
            if sent_rv not in (None, "") and sent_rv != current["metadata"]["resourceVersion"]:
                raise conflict(rtype, name)
            if subresource == "status" and self.faults.status_write_conflicts():
                raise conflict(rtype, name)
            if subresource == "status":
                merged = copy.deepcopy(current)
                if "status" in desired:
                    merged["status"] = desired["status"]
                else:
                    merged.pop("status", None)
                desired = merged
            else:
                if rtype.status_subresource:
                    if "status" in current:
                        desired["status"] = copy.deepcopy(current["status"])
                    else:
                        desired.pop("status", None)
                meta = desired["metadata"]
                for fixed in ("uid", "creationTimestamp", "namespace", "name", "generation",
                              "deletionTimestamp", "deletionGracePeriodSeconds"):
                    if fixed in current["metadata"]:
                        meta[fixed] = current["metadata"][fixed]
                    else:
                        meta.pop(fixed, None)
                meta.pop("managedFields", None)
            desired["apiVersion"] = rtype.api_version()
            desired["kind"] = rtype.kind
            self._validate_locked(rtype, desired, field_validation, warnings)
            if self._spec_part(desired) != self._spec_part(current):
                desired["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
            if self._without_rv(desired) == self._without_rv(current):
                return copy.deepcopy(current)   # no-op writes do not bump resourceVersion
            desired["metadata"]["resourceVersion"] = self._next_rv_locked()
            if desired["metadata"].get("deletionTimestamp") and \
                    not desired["metadata"].get("finalizers"):
                del self.objects[key]
                self._record_locked("DELETED", rtype, namespace, desired, current)
                return copy.deepcopy(desired)
            self.objects[key] = desired
            if rtype.plural == "customresourcedefinitions":
                self._install_crd_locked(desired)
            self._record_locked("MODIFIED", rtype, namespace, desired, current)
            return copy.deepcopy(desired)

    def delete(self, rtype, namespace, name, preconditions):
        with self.lock:
            key = (rtype.group, rtype.plural, namespace, name)
            current = self.objects.get(key)
            if current is None:
                raise not_found(rtype, name)
            meta = current["metadata"]
            if preconditions.get("uid") and preconditions["uid"] != meta.get("uid"):
                raise ApiError(409, "Conflict", f'Precondition failed: UID in precondition: '
                               f'{preconditions["uid"]}, UID in object meta: {meta.get("uid")}')
            if preconditions.get("resourceVersion") and \
                    preconditions["resourceVersion"] != meta.get("resourceVersion"):
                raise conflict(rtype, name)
            if meta.get("finalizers"):
                if meta.get("deletionTimestamp"):
                    return copy.deepcopy(current)
                marked = copy.deepcopy(current)
                marked["metadata"]["deletionTimestamp"] = now_rfc3339()
                marked["metadata"]["deletionGracePeriodSeconds"] = 0
                marked["metadata"]["resourceVersion"] = self._next_rv_locked()
                self.objects[key] = marked
                self._record_locked("MODIFIED", rtype, namespace, marked, current)
                return copy.deepcopy(marked)
            del self.objects[key]
            deleted = copy.deepcopy(current)
            deleted["metadata"]["resourceVersion"] = self._next_rv_locked()
            self._record_locked("DELETED", rtype, namespace, deleted, current)
            if rtype.plural == "customresourcedefinitions":
                self._uninstall_crd_locked(current)
            if rtype.plural == "namespaces":
                for other in [k for k in self.objects if k[2] == name]:
                    previous = self.objects.pop(other)
                    gone = copy.deepcopy(previous)
                    gone["metadata"]["resourceVersion"] = self._next_rv_locked()
                    other_type = next(t for t in self.types.values()
                                      if (t.group, t.plural) == other[0:2])
                    self._record_locked("DELETED", other_type, name, gone, previous)
            return deleted

    def dry_run(self, write):
        """Runs write() and undoes what it did to the store; returns its result. Watchers
        woken meanwhile find the resourceVersion unchanged and see nothing."""
        with self.lock:
            saved = (dict(self.objects), self.rv, list(self.history), self.compacted_rv,
                     {key: copy.copy(rtype) for key, rtype in self.types.items()})
            try:
                return write()
            finally:
                (self.objects, self.rv, self.history, self.compacted_rv,
                 self.types) = saved

    def stop(self):
        with self.lock:
            self.stopping = True
            self.changed.notify_all()


# ----------------------------------------------------------------------------------------
# Request log, for /_admin/requests. Guarded by its own lock.


class RequestLog:
    def __init__(self, limit=100000):
        self.lock = threading.Lock()
        self.entries = []
        self.sequence = 0
        self.limit = limit

    def add(self, entry):
        with self.lock:
            self.sequence += 1
            entry["seq"] = self.sequence
            self.entries.append(entry)
            if len(self.entries) > self.limit:
                del self.entries[: len(self.entries) - self.limit]
            return entry

    def since(self, sequence):
        with self.lock:
            return [dict(e) for e in self.entries if e["seq"] > sequence]

    def clear(self):
        with self.lock:
            self.entries = []


# ----------------------------------------------------------------------------------------
# OpenAPI v3: per group-version documents with a PATCH operation per kind that declares the
# fieldValidation parameter (kubectl then validates server-side) and the CRD's schema.


def openapi_schema_name(rtype):
    group = ".".join(reversed(rtype.group.split("."))) if rtype.group else "io.k8s.api.core"
    return f"{group}.{rtype.version}.{rtype.kind}"


def openapi_document(types):
    paths, schemas = {}, {}
    for rtype in types:
        gvk = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
        prefix = ("/api/" if not rtype.group else f"/apis/{rtype.group}/") + rtype.version
        scope = "/namespaces/{namespace}" if rtype.namespaced else ""
        ref = {"$ref": f"#/components/schemas/{openapi_schema_name(rtype)}"}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": ref}}}}
        params = [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"},
                   "description": "Strict, Warn or Ignore: what to do with unknown fields."},
                  {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                  {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}]
        item_ops = {}
        for verb in ("get", "put", "patch", "delete"):
            item_ops[verb] = {
                "operationId": f"{verb}{rtype.kind}{rtype.plural}",
                "x-kubernetes-action": {"put": "put", "get": "get", "patch": "patch",
                                        "delete": "delete"}[verb],
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params if verb in ("put", "patch") else [],
                "responses": ok}
        paths[f"{prefix}{scope}/{rtype.plural}/{{name}}"] = item_ops
        paths[f"{prefix}{scope}/{rtype.plural}"] = {
            "post": {"operationId": f"create{rtype.kind}{rtype.plural}",
                     "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk,
                     "parameters": params, "responses": ok},
            "get": {"operationId": f"list{rtype.kind}{rtype.plural}",
                    "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk,
                    "responses": {"200": {"description": "OK"}}}}
        schema = copy.deepcopy(rtype.schema) if rtype.schema else {
            "type": "object", "x-kubernetes-preserve-unknown-fields": True}
        schema.setdefault("properties", {})
        if rtype.schema:
            schema["properties"]["metadata"] = {
                "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
        schema["x-kubernetes-group-version-kind"] = [gvk]
        schemas[openapi_schema_name(rtype)] = schema
    schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] = {
        "type": "object", "description": "Standard object's metadata.",
        "x-kubernetes-preserve-unknown-fields": True}
    return {"openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": SERVER_VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}


# ----------------------------------------------------------------------------------------
# Tables, for `kubectl get`.


NAME_COLUMN = {"name": "Name", "type": "string", "format": "name", "priority": 0,
               "description": "Name must be unique within a namespace."}
AGE_COLUMN = {"name": "Age", "type": "date", "format": "", "priority": 0,
              "description": "CreationTimestamp is the time the object was created."}


def table_columns(rtype):
    if not rtype.printer_columns:
        return [NAME_COLUMN, AGE_COLUMN], [None, ".metadata.creationTimestamp"]
    # kube's event printer shows the name only with -o wide, last.
    name_last = rtype.plural == "events"
    columns, paths = ([], []) if name_last else ([NAME_COLUMN], [None])
    for column in rtype.printer_columns:
        columns.append({"name": column.get("name", ""), "type": column.get("type", "string"),
                        "format": column.get("format", ""),
                        "description": column.get("description", ""),
                        "priority": column.get("priority", 0)})
        paths.append(column.get("jsonPath", ""))
    if name_last:
        columns.append({**NAME_COLUMN, "priority": 1})
        paths.append(None)
    return columns, paths


def table_cell(obj, column, path):
    if path is None:
        return obj.get("metadata", {}).get("name", "")
    if path == OBJECT_REFERENCE:
        reference = obj.get("involvedObject") or {}
        return f'{str(reference.get("kind", "")).lower()}/{reference.get("name", "")}'
    values = jsonpath_values(obj, path)
    if not values:
        return None
    value = values[0]
    if column["type"] == "date":
        when = parse_rfc3339(value)
        if when is None:
            return None
        return human_duration(
            (datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
    if column["type"] == "integer" and isinstance(value, (int, float)) and \
            not isinstance(value, bool):
        return int(value)
    if column["type"] == "string" and not isinstance(value, str):
        return json.dumps(value)
    return value


def table_row_object(obj, include_object):
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata", {})}


def make_table(rtype, objects, resource_version, include_object, with_headers=True):
    columns, paths = table_columns(rtype)
    rows = []
    for obj in objects:
        row = {"cells": [table_cell(obj, column, path) for column, path in zip(columns, paths)]}
        row_object = table_row_object(obj, include_object)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    table = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
             "metadata": {"resourceVersion": resource_version}, "rows": rows}
    table["columnDefinitions"] = columns if with_headers else []
    return table


def wants_table(accept):
    for part in (accept or "").split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip()
                  for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
        if part.strip().startswith("application/json") or part.strip() in ("*/*", ""):
            return False
    return False


# ----------------------------------------------------------------------------------------
# HTTP.


def kube_verb(method, name, query):
    if method == "GET":
        if query.get("watch") in ("1", "true", "True"):
            return "watch"
        return "get" if name else "list"
    return {"POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection"}.get(method, method.lower())


class ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hotplug-fake-apiserver/1"
    # Headers and body leave in separate writes; with Nagle on, a keep-alive client waits
    # for the delayed ACK (~40 ms) on every request, and watch events would be batched.
    disable_nagle_algorithm = True

    # -- plumbing ----------------------------------------------------------------------

    def log_message(self, fmt, *args):
        if self.server.options.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    def _read_body(self):
        """The request body, read once at dispatch (see _read_body_from_socket)."""
        return self._body

    def _read_body_from_socket(self):
        # Always read before answering: an unread body on a keep-alive connection would be
        # taken for the next request.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            return self.rfile.read(length)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _json_body(self):
        content_type = self.headers.get("Content-Type") or ""
        if "protobuf" in content_type:
            self._read_body()
            raise ApiError(415, "UnsupportedMediaType",
                           "the test API server speaks JSON only, not " + content_type)
        raw = self._read_body()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as error:
            raise bad_request(f"invalid JSON in the request body: {error}") from None

    def _send_json(self, code, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._log_entry["code"] = code

    def _send_error(self, error):
        self._send_json(error.code, error.status())

    def _write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # -- entry -------------------------------------------------------------------------

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def do_PUT(self):
        self._dispatch()

    def do_PATCH(self):
        self._dispatch()

    def do_DELETE(self):
        self._dispatch()

    def _dispatch(self):
        parsed = urllib.parse.urlsplit(self.path)
        self.url_path = parsed.path.rstrip("/") or "/"
        self.query = {k: v[-1] for k, v in urllib.parse.parse_qs(
            parsed.query, keep_blank_values=True).items()}
        self._log_entry = {}
        self._streaming = False
        try:
            self._body = self._read_body_from_socket()
            if self.url_path.startswith("/_admin"):
                self._admin()
                return
            self._log_entry = self.server.request_log.add({
                "time": now_rfc3339(), "method": self.command, "path": self.url_path,
                "query": self.query, "verb": None,
                "user_agent": self.headers.get("User-Agent", ""),
                "authorization": self._auth_kind(), "client_cert": self._client_cert(),
                "code": None})
            self._api()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as error:  # an ApiError, or a bug: answer with a Status
            if not isinstance(error, ApiError):
                traceback.print_exc()
                error = ApiError(500, "InternalError", f"fake apiserver bug: {error!r}")
            if self._streaming:   # a watch already answered 200: the connection is spoilt
                self.close_connection = True
            else:
                self._send_error(error)

    def _auth_kind(self):
        header = self.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return "bearer"
        if header.startswith("Basic "):
            return "basic"
        return "none"

    def _client_cert(self):
        """The verified client certificate's subject CN, or None."""
        getpeercert = getattr(self.connection, "getpeercert", None)
        certificate = getpeercert() if getpeercert else None
        if not certificate:
            return None
        for rdn in certificate.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return value
        return ""

    # -- admin API ---------------------------------------------------------------------

    def _admin(self):
        path, server = self.url_path, self.server
        if path == "/_admin/healthz":
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path == "/_admin/faults" and self.command == "GET":
            self._send_json(200, server.faults.snapshot())
        elif path == "/_admin/faults" and self.command in ("POST", "PUT", "PATCH"):
            self._send_json(200, server.faults.update(self._json_body() or {}))
        elif path == "/_admin/requests" and self.command == "GET":
            self._send_json(200, {"items": server.request_log.since(
                int(self.query.get("since", "0") or 0))})
        elif path == "/_admin/requests" and self.command == "DELETE":
            server.request_log.clear()
            self._send_json(200, {"cleared": True})
        elif path == "/_admin/compact" and self.command == "POST":
            self._send_json(200, {"compactedResourceVersion": str(server.store.compact())})
        elif path == "/_admin/state" and self.command == "GET":
            with server.store.lock:
                self._send_json(200, {
                    "resourceVersion": str(server.store.rv),
                    "compactedResourceVersion": str(server.store.compacted_rv),
                    "historyLength": len(server.store.history),
                    "watches": server.active_watches})
        else:
            raise ApiError(404, "NotFound", f"no admin endpoint {self.command} {path}")

    # -- the Kubernetes API ------------------------------------------------------------

    def _api(self):
        server = self.server
        if server.options.token:
            if self.headers.get("Authorization", "") != f"Bearer {server.options.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
        delay_ms = server.faults.get("delay_ms")
        if delay_ms and self.url_path.startswith(server.faults.get("delay_prefix") or "/"):
            time.sleep(delay_ms / 1000.0)
        if self.command == "GET":
            verbs = ["watch"] if self.query.get("watch") in ("1", "true", "True") else \
                ["get", "list"]
        else:
            verbs = [kube_verb(self.command, "name", self.query),
                     kube_verb(self.command, None, self.query)]
        injected = server.faults.injected_error(self.command, self.url_path, verbs)
        if injected:
            self._log_entry["injected"] = injected
            raise ApiError(injected, {500: "InternalError", 503: "ServiceUnavailable",
                                      429: "TooManyRequests", 504: "Timeout"}.get(
                                          injected, "InternalError"),
                           f"injected fault: {injected} for {self.url_path}")
        parts = [p for p in self.url_path.split("/") if p]
        if self.url_path in ("/version", "/version/"):
            self._send_json(200, SERVER_VERSION)
            return
        if self.url_path in ("/healthz", "/livez", "/readyz"):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(data)
            self._log_entry["code"] = 200
            return
        if parts and parts[0] == "openapi":
            self._openapi(parts[1:])
            return
        if parts == ["api"]:
            host = self.headers.get("Host", "127.0.0.1")
            self._send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                  "serverAddressByClientCIDRs": [
                                      {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
            return
        if parts == ["apis"]:
            self._send_json(200, self._group_list())
            return
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        elif len(parts) == 2 and parts[0] == "apis":
            self._send_json(200, self._group(parts[1]))
            return
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rest:
            types = server.store.types_in(group, version)
            if not types:
                raise ApiError(404, "NotFound",
                               "the server could not find the requested resource")
            resources = [e for t in sorted(types, key=lambda t: t.plural)
                         for e in t.discovery_entries()]
            self._send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                  "groupVersion": f"{group}/{version}" if group else version,
                                  "resources": resources})
            return
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        rtype = server.store.find_type(group, version, rest[0])
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rtype.namespaced and namespace is None and len(rest) > 1:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rtype.namespaced and namespace is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else ""
        if subresource and (subresource != "status" or not rtype.status_subresource):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self._log_entry.update({
            "verb": kube_verb(self.command, name, self.query), "group": group,
            "version": version, "resource": rtype.plural, "namespace": namespace or "",
            "name": name or "", "subresource": subresource})
        self._resource(rtype, namespace or "", name, subresource)

    def _group_list(self):
        groups = []
        for group, versions in sorted(self.server.store.groups().items()):
            if not group:
                continue
            entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
            groups.append({"name": group, "versions": entries,
                           "preferredVersion": entries[0]})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _group(self, name):
        for group in self._group_list()["groups"]:
            if group["name"] == name:
                return {"kind": "APIGroup", "apiVersion": "v1", **group}
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _openapi(self, rest):
        store = self.server.store
        if rest == ["v2"]:
            # kubectl uses v3; v2 is deliberately absent, as on a server with it disabled.
            raise ApiError(404, "NotFound", "openapi v2 is not served; use /openapi/v3")
        if rest == ["v3"]:
            index = {}
            for group, versions in store.groups().items():
                for version in versions:
                    key = f"apis/{group}/{version}" if group else f"api/{version}"
                    doc = openapi_document(store.types_in(group, version))
                    digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode())
                    index[key] = {"serverRelativeURL":
                                  f"/openapi/v3/{key}?hash={digest.hexdigest().upper()}"}
            self._send_json(200, {"paths": index})
            return
        if len(rest) >= 3 and rest[0] == "v3":
            if rest[1] == "api" and len(rest) == 3:
                group, version = "", rest[2]
            elif rest[1] == "apis" and len(rest) == 4:
                group, version = rest[2], rest[3]
            else:
                raise ApiError(404, "NotFound", "no such OpenAPI document")
            types = store.types_in(group, version)
            if not types:
                raise ApiError(404, "NotFound", "no such OpenAPI document")
            self._send_json(200, openapi_document(types))
            return
        raise ApiError(404, "NotFound", "no such OpenAPI document")

    # -- resources ---------------------------------------------------------------------

    def _resource(self, rtype, namespace, name, subresource):
        store, method = self.server.store, self.command
        field_validation = self.query.get("fieldValidation", "")
        warnings = []
        if method in ("GET", "HEAD") and self.query.get("watch") in ("1", "true", "True"):
            if name:
                self.query["fieldSelector"] = f"metadata.name={name}"
            # A cluster-wide path reaches here with namespace "": watch every namespace.
            self._watch(rtype, (namespace or None) if rtype.namespaced else None)
            return
        if method in ("GET", "HEAD") and name:
            self._answer_object(rtype, store.get(rtype, namespace, name))
            return
        if method in ("GET", "HEAD"):
            self._list(rtype, namespace if rtype.namespaced and namespace else None)
            return
        write = self._write_operation(rtype, namespace, name, subresource, field_validation,
                                      warnings)
        if write is not None:
            # dryRun=All: do it, answer what it gave, and roll the store back.
            code, result = store.dry_run(write) if self._dry_run() else write()
            self._send_json(code, result, self._warning_headers(warnings))
            return
        if method == "DELETE" and not name:
            label_match = parse_label_selector(self.query.get("labelSelector", ""))
            field_match = parse_field_selector(self.query.get("fieldSelector", ""))
            items, _ = store.list(rtype, namespace or None, label_match, field_match)
            for item in ([] if self._dry_run() else items):
                meta = item["metadata"]
                try:
                    store.delete(rtype, meta.get("namespace", ""), meta["name"], {})
                except ApiError:
                    pass
            self._send_json(200, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                  "status": "Success"})
            return
        raise ApiError(405, "MethodNotAllowed",
                       "the server does not allow this method on the requested resource")

    def _dry_run(self):
        """dryRun comes in the query, or for DELETE in the DeleteOptions body."""
        if self.query.get("dryRun"):
            return True
        if self.command == "DELETE":
            try:
                options = json.loads(self._body or b"{}")
            except ValueError:
                return False
            return isinstance(options, dict) and bool(options.get("dryRun"))
        return False

    def _write_operation(self, rtype, namespace, name, subresource, field_validation,
                         warnings):
        """A callable doing this write and returning (HTTP code, object), or None."""
        store, method = self.server.store, self.command
        if method == "POST" and not name:
            body = self._json_body()
            return lambda: (201, store.create(rtype, namespace, body, field_validation,
                                              warnings))
        if method == "PUT" and name:
            body = self._json_body()
            if isinstance(body, dict) and body.get("kind") not in (None, rtype.kind):
                raise bad_request(f"kind {body.get('kind')} does not match {rtype.kind}")
            return lambda: (200, store.update(
                rtype, namespace, name, lambda current: body, subresource, field_validation,
                warnings, require_rv=rtype.custom))
        if method == "PATCH" and name:
            return self._patch(rtype, namespace, name, subresource, field_validation, warnings)
        if method == "DELETE" and name:
            options = self._json_body() or {}
            return lambda: (200, store.delete(rtype, namespace, name,
                                              options.get("preconditions") or {}))
        return None

    @staticmethod
    def _warning_headers(warnings):
        if not warnings:
            return None
        quoted = (w.replace("\\", "\\\\").replace('"', '\\"') for w in warnings)
        return {"Warning": ", ".join(f'299 - "{w}"' for w in quoted)}

    def _answer_object(self, rtype, obj):
        if wants_table(self.headers.get("Accept")):
            self._send_json(200, make_table(rtype, [obj], obj["metadata"]["resourceVersion"],
                                            self.query.get("includeObject", "Metadata")))
        else:
            self._send_json(200, obj)

    def _list(self, rtype, namespace):
        label_match = parse_label_selector(self.query.get("labelSelector", ""))
        field_match = parse_field_selector(self.query.get("fieldSelector", ""))
        items, rv = self.server.store.list(rtype, namespace, label_match, field_match)
        metadata = {"resourceVersion": rv}
        start = 0
        if self.query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(self.query["continue"]))
                start = int(token["start"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("invalid continue token") from None
        asked_rv = self.query.get("resourceVersion", "")
        if asked_rv and self.query.get("continue"):
            raise bad_request("specifying resource version is not allowed when using continue")
        if self.query.get("continue") and self.server.faults.take_list_continue_gone():
            raise ApiError(410, "Expired", "The provided continue parameter is too old")
        if asked_rv and self.server.faults.get("list_refuse_resource_version"):
            raise ApiError(410, "Expired", f"too old resource version: {asked_rv}")
        limit = int(self.query.get("limit") or 0)
        if asked_rv == "0":
            limit = 0  # as the real server: answered whole from its watch cache, no pages
        if start or limit:
            page = items[start: start + limit] if limit else items[start:]
            if limit and start + limit < len(items):
                metadata["continue"] = base64.urlsafe_b64encode(json.dumps(
                    {"start": start + limit, "rv": rv}).encode()).decode()
                metadata["remainingItemCount"] = len(items) - start - limit
            items = page
        if wants_table(self.headers.get("Accept")):
            table = make_table(rtype, items, rv, self.query.get("includeObject", "Metadata"))
            table["metadata"].update(metadata)
            self._send_json(200, table)
            return
        body = {"kind": rtype.list_kind(), "apiVersion": rtype.api_version(),
                "metadata": metadata, "items": items}
        stall_ms = self.server.faults.get("list_stall_ms")
        if stall_ms and len(items) > 1:
            self._send_json_stalled(body, len(items) // 2, stall_ms / 1000)
        else:
            self._send_json(200, body)
        self._log_entry["finished"] = True

    def _send_json_stalled(self, body, first_items, seconds):
        """A 200 JSON list answer whose first `first_items` items are sent and flushed, then
        the rest after `seconds`."""
        items = body["items"]
        head = dict(body, items=[])
        text = json.dumps(head)
        opening, closing = text[:text.rindex("[]") + 1], text[text.rindex("[]") + 1:]
        first = opening + ", ".join(json.dumps(item) for item in items[:first_items])
        rest = "".join(", " + json.dumps(item) for item in items[first_items:]) + closing
        data = [first.encode(), rest.encode()]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data[0]) + len(data[1])))
        self.end_headers()
        self.wfile.write(data[0])
        self.wfile.flush()
        time.sleep(seconds)
        self.wfile.write(data[1])
        self._log_entry["code"] = 200

    def _patch(self, rtype, namespace, name, subresource, field_validation, warnings):
        """The patch as a write operation (see _write_operation)."""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        store = self.server.store
        if content_type == STRATEGIC_PATCH and rtype.custom:
            raise ApiError(
                415, "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}")
        raw = self._read_body()
        if content_type == APPLY_PATCH:
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(415, "UnsupportedMediaType",
                               "the test API server accepts apply patches in JSON form only"
                               ) from None
            try:
                store.get(rtype, namespace, name)
            except ApiError as error:
                if error.code != 404 or subresource:
                    raise
                return lambda: (201, store.create(rtype, namespace, body, field_validation,
                                                  warnings))
            patcher = lambda current: merge_patch(current, body)
        elif content_type in (MERGE_PATCH, STRATEGIC_PATCH):
            try:
                body = json.loads(raw)
            except ValueError as error:
                raise bad_request(f"invalid JSON patch body: {error}") from None
            patcher = lambda current: merge_patch(current, body)
        elif content_type == JSON_PATCH:
            try:
                body = json.loads(raw)
            except ValueError as error:
                raise bad_request(f"invalid JSON patch body: {error}") from None
            patcher = lambda current: json_patch(current, body)
        else:
            raise ApiError(415, "UnsupportedMediaType",
                           f"the body of the request was in an unknown format - accepted "
                           f"media types include: {JSON_PATCH}, {MERGE_PATCH}, {APPLY_PATCH}")

        def mutate(current):
            current_rv = current["metadata"]["resourceVersion"]
            patched = patcher(current)
            if isinstance(patched, dict):
                meta = patched.setdefault("metadata", {})
                # A patch that does not name a resourceVersion is unconditional.
                if meta.get("resourceVersion") in (None, ""):
                    meta["resourceVersion"] = current_rv
            return patched

        return lambda: (200, store.update(rtype, namespace, name, mutate, subresource,
                                          field_validation, warnings))

    # -- watch -------------------------------------------------------------------------

    def _watch(self, rtype, namespace):
        server, store, faults = self.server, self.server.store, self.server.faults
        label_match = parse_label_selector(self.query.get("labelSelector", ""))
        field_match = parse_field_selector(self.query.get("fieldSelector", ""))
        as_table = wants_table(self.headers.get("Accept"))
        include_object = self.query.get("includeObject", "Metadata")
        bookmarks = self.query.get("allowWatchBookmarks") in ("1", "true", "True")
        timeout = float(self.query.get("timeoutSeconds") or server.options.watch_timeout)
        deadline = time.monotonic() + timeout
        requested_rv = self.query.get("resourceVersion", "")
        try:
            start_rv = int(requested_rv or 0)
        except ValueError:
            raise bad_request(f'invalid resourceVersion "{requested_rv}"') from None
        reconnect = start_rv > 0 and self.query.get("sendInitialEvents") not in ("1", "true")
        gone_on_reconnect = reconnect and faults.take_watch_gone()
        if gone_on_reconnect and faults.get("watch_gone_mode") == "http":
            raise expired(start_rv, store.rv + 1)

        def matches(obj, event_namespace):
            return (namespace is None or event_namespace == namespace) and \
                label_match(obj.get("metadata", {}).get("labels") or {}) and field_match(obj)

        def encode(event_type, obj, first, event=None):
            if event is not None and not as_table and event.type == event_type:
                return event.json_line()
            if as_table and event_type in ("ADDED", "MODIFIED", "DELETED"):
                obj = make_table(rtype, [obj], obj["metadata"]["resourceVersion"],
                                 include_object, with_headers=first)
            return json.dumps({"type": event_type, "object": obj}).encode() + b"\n"

        send_initial = self.query.get("sendInitialEvents") in ("1", "true", "True")
        initial_events_end = False
        pending, expired_error = [], None
        with store.lock:
            if send_initial:
                # WatchList: the current state as ADDED events, then a BOOKMARK annotated
                # k8s.io/initial-events-end, whatever resourceVersion was asked for.
                last_rv = store.rv
                for (g, p, ns, _), obj in sorted(store.objects.items()):
                    if (g, p) == (rtype.group, rtype.plural) and matches(obj, ns):
                        pending.append(("ADDED", obj, None))
                initial_events_end = bookmarks
            elif gone_on_reconnect:
                expired_error = expired(start_rv, store.rv + 1)
                last_rv = store.rv
            elif not reconnect:
                # No resourceVersion (or "0"): synthetic ADDED for what exists now.
                last_rv = store.rv
                for (g, p, ns, _), obj in sorted(store.objects.items()):
                    if (g, p) == (rtype.group, rtype.plural) and matches(obj, ns):
                        pending.append(("ADDED", obj, None))
            else:
                last_rv = start_rv
                try:
                    store.events_after(start_rv)
                except ApiError as error:
                    expired_error = error

        self._streaming = True
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self._log_entry["code"] = 200
        with store.lock:
            server.active_watches += 1
        sent, first, abrupt = 0, True, False
        close_after = faults.get("watch_close_after_events")
        last_bookmark = time.monotonic()
        try:
            if expired_error is not None:
                self._write_chunk(json.dumps({"type": "ERROR",
                                              "object": expired_error.status()}).encode() + b"\n")
                return
            while True:
                for event_type, obj, event in pending:
                    self._write_chunk(encode(event_type, obj, first, event))
                    first = False
                    sent += 1
                    if close_after and sent >= close_after:
                        abrupt = faults.get("watch_close_abrupt")
                        return
                pending = []
                if initial_events_end:
                    bookmark = {"kind": rtype.kind, "apiVersion": rtype.api_version(),
                                "metadata": {"resourceVersion": str(last_rv), "annotations": {
                                    "k8s.io/initial-events-end": "true"}}}
                    self._write_chunk(json.dumps({"type": "BOOKMARK",
                                                  "object": bookmark}).encode() + b"\n")
                    initial_events_end = False
                now = time.monotonic()
                if now >= deadline:
                    return
                interval = float(faults.get("bookmark_interval_seconds") or 0)
                if bookmarks and interval > 0 and now - last_bookmark >= interval:
                    bookmark = {"kind": rtype.kind, "apiVersion": rtype.api_version(),
                                "metadata": {"resourceVersion": str(last_rv)}}
                    self._write_chunk(json.dumps({"type": "BOOKMARK",
                                                  "object": bookmark}).encode() + b"\n")
                    last_bookmark = now
                wait = deadline - now
                if bookmarks and interval > 0:
                    wait = min(wait, max(0.0, interval - (now - last_bookmark)))
                fell_behind = None   # written after the lock is released, like all output
                with store.lock:
                    store.changed.wait_for(lambda: store.stopping or store.rv > last_rv,
                                           timeout=max(wait, 0.0))
                    if store.stopping:
                        return
                    try:
                        events = store.events_after(last_rv)
                    except ApiError as error:
                        events, fell_behind = [], error
                    for event in events:
                        if event.rtype_key != (rtype.group, rtype.plural):
                            continue
                        now_match = matches(event.obj, event.namespace)
                        was_match = event.previous is not None and \
                            matches(event.previous, event.namespace)
                        if event.type == "MODIFIED" and now_match and not was_match:
                            pending.append(("ADDED", event.obj, event))
                        elif event.type == "MODIFIED" and was_match and not now_match:
                            pending.append(("DELETED", event.obj, event))
                        elif event.type == "DELETED" and (now_match or was_match):
                            pending.append(("DELETED", event.obj, event))
                        elif now_match:
                            pending.append((event.type, event.obj, event))
                    last_rv = store.rv
                if fell_behind is not None:
                    self._write_chunk(json.dumps({"type": "ERROR",
                                                  "object": fell_behind.status()}).encode()
                                      + b"\n")
                    return
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            abrupt = True
        finally:
            with store.lock:
                server.active_watches -= 1
            if abrupt:
                self.close_connection = True
                try:
                    self.connection.shutdown(2)
                except OSError:
                    pass
            else:
                try:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128   # many informers/benchmark clients connect at once

    def __init__(self, address, options):
        super().__init__(address, ApiHandler)
        self.options = options
        self.faults = Faults()
        self.store = Store(self.faults, options.history)
        self.request_log = RequestLog()
        self.active_watches = 0   # guarded by store.lock


# ----------------------------------------------------------------------------------------
# Start-up.


def load_manifest(path):
    """JSON, or YAML converted offline by `kubectl patch --local` (stdlib has no YAML)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    try:
        return json.loads(text)
    except ValueError:
        pass
    output = subprocess.run(
        ["kubectl", "patch", "--local", "-f", path, "--type", "merge", "-p", "{}", "-o",
         "json"], check=True, capture_output=True, text=True,
        env={**os.environ, "KUBECONFIG": os.devnull}).stdout
    return json.loads(output)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the bound port here once listening")
    parser.add_argument("--token", help="require `Authorization: Bearer <token>` (else 401)")
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--tls-client-ca", help="ask for client certificates signed by this CA")
    parser.add_argument("--crd", action="append", default=[],
                        help="install this CRD (JSON or YAML) at start; repeatable")
    parser.add_argument("--namespace", action="append", default=[],
                        help="create this namespace at start; repeatable")
    parser.add_argument("--no-validate", action="store_true",
                        help="store objects as sent, without CRD schema validation")
    parser.add_argument("--history", type=int, default=1000,
                        help="watch events kept for resumption (older -> 410 Expired)")
    parser.add_argument("--watch-timeout", type=float, default=1800.0,
                        help="watch length in seconds when the client gives no timeoutSeconds")
    parser.add_argument("--bookmark-interval", type=float, default=5.0,
                        help="seconds between BOOKMARK events on watches that allow them")
    parser.add_argument("--watch-close-after", type=int, default=0,
                        help="fault: end each watch after this many events")
    parser.add_argument("--watch-gone-on-reconnect", choices=["event", "http"],
                        help="fault: every watch with a resourceVersion gets 410")
    parser.add_argument("--status-conflict-every", type=int, default=0,
                        help="fault: every Nth status write answers 409 Conflict")
    parser.add_argument("--delay-ms", type=int, default=0, help="fault: delay every answer")
    parser.add_argument("--faults", default="",
                        help="fault state as JSON, same shape as POST /_admin/faults")
    parser.add_argument("--verbose", action="store_true", help="log each request on stderr")
    return parser.parse_args(argv)


def main(argv):
    options = parse_args(argv)
    server = ApiServer((options.host, options.port), options)
    initial = {"validation": not options.no_validate,
               "bookmark_interval_seconds": options.bookmark_interval,
               "watch_close_after_events": options.watch_close_after,
               "status_conflict_every": options.status_conflict_every,
               "delay_ms": options.delay_ms}
    if options.watch_gone_on_reconnect:
        initial.update(watch_gone_on_reconnect=True,
                       watch_gone_mode=options.watch_gone_on_reconnect)
    server.faults.update(initial)
    if options.faults:
        server.faults.update(json.loads(options.faults))
    crd_type = server.store.find_type("apiextensions.k8s.io", "v1", "customresourcedefinitions")
    for path in options.crd:
        server.store.create(crd_type, "", load_manifest(path))
    namespace_type = server.store.find_type("", "v1", "namespaces")
    for namespace in options.namespace:
        server.store.create(namespace_type, "", {"metadata": {"name": namespace}})
    if options.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(options.tls_cert, options.tls_key)
        if options.tls_client_ca:
            context.load_verify_locations(options.tls_client_ca)
            context.verify_mode = ssl.CERT_OPTIONAL
        server.socket = context.wrap_socket(server.socket, server_side=True)

    port = server.server_address[1]
    stop_requested = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop_requested.set())
    signal.signal(signal.SIGINT, lambda *_: stop_requested.set())
    serving = threading.Thread(target=server.serve_forever, name="http-accept",
                               kwargs={"poll_interval": 0.2})
    serving.start()
    if options.port_file:
        temporary = options.port_file + ".tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(f"{port}\n")
        os.replace(temporary, options.port_file)
    print(f"LISTENING {port}", flush=True)
    while not stop_requested.wait(0.5):
        pass
    server.store.stop()           # ends every watch with a clean final chunk
    server.shutdown()
    serving.join()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
