#!/usr/bin/env python3
"""kubeapi: a Kubernetes API server test double for llmgw's e2e tests.

Python 3 standard library only. It implements the parts of the Kubernetes API
that the llmgw controller and kubectl use, following the API conventions
(sig-architecture/api-conventions.md, api-concepts): discovery, a single global
resourceVersion, LIST and WATCH with selectors, bookmarks and 410 Expired,
optimistic concurrency (409), the status subresource, merge / JSON / strategic
merge patches, graceful pod deletion and Status error objects. README.md in
this directory is its specification; every behaviour listed there is checked
by e2e/cases/kube_api_double.sh with real kubectl and curl.

Design: one in-memory store guarded by one condition variable. Every write
bumps the global resourceVersion, stores a deep copy of the object and
appends an event to a bounded history (--history events). A watch from a
resourceVersion older than the oldest event still in the history gets the
real server's answer: HTTP 200 with one ERROR event carrying a 410 Expired
Status. Watchers block on the condition variable and stream chunked JSON
lines.
"""

import argparse
import base64
import collections
import copy
import heapq
import json
import os
import random
import re
import signal
import socket
import ssl
import string
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# --------------------------------------------------------------------------
# Errors: every failure is a metav1.Status (api-conventions "Response Status
# Kind"), with the reason and code pairs the real server uses.
# --------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        return status_obj(self.code, self.reason, self.message, self.details)


def status_obj(code, reason, message, details=None):
    st = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        st["details"] = details
    return st


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.qualified(), name),
                    {"name": name, "group": res.group, "kind": res.plural})


def conflict(res, name, why):
    return ApiError(409, "Conflict",
                    'Operation cannot be fulfilled on %s "%s": %s' % (res.qualified(), name, why),
                    {"name": name, "group": res.group, "kind": res.plural})


def invalid(res, name, causes):
    """422 Invalid with field causes [(field, message)]."""
    msg = "; ".join("%s: %s" % (f, m) for f, m in causes)
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (res.kind, name, msg),
                    {"name": name, "group": res.group, "kind": res.kind,
                     "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f}
                                for f, m in causes]})


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


# --------------------------------------------------------------------------
# Resource registry (what discovery advertises and the router serves).
# --------------------------------------------------------------------------

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


class Res:
    def __init__(self, group, version, plural, kind, singular, namespaced, short=(), status=False,
                 crd=False, categories=(), fields=(), gen=False):
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
        self.singular = singular
        self.namespaced = namespaced
        self.short = list(short)
        self.status = status  # has a /status subresource
        self.crd = crd  # custom resource: no strategic merge, rv required on update
        self.categories = list(categories)
        self.fields = set(["metadata.name", "metadata.namespace"]) | set(fields)
        self.gen = gen

    @property
    def gv(self):
        return self.group + "/" + self.version if self.group else self.version

    @property
    def key(self):
        return (self.group, self.plural)

    def qualified(self):
        return self.plural + ("." + self.group if self.group else "")

    def tracks_generation(self):
        # Custom resources always carry metadata.generation, and so do the
        # built-in workload types.
        return self.crd or self.gen


POD_FIELDS = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
              "spec.serviceAccountName", "status.phase", "status.podIP",
              "status.nominatedNodeName")
EVENT_FIELDS = ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                "involvedObject.uid", "involvedObject.apiVersion",
                "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason",
                "reportingComponent", "source", "type")

RESOURCES = [
    Res("", "v1", "namespaces", "Namespace", "namespace", False, ["ns"], status=True,
        fields=("status.phase",)),
    Res("", "v1", "pods", "Pod", "pod", True, ["po"], status=True, categories=["all"],
        fields=POD_FIELDS),
    Res("", "v1", "services", "Service", "service", True, ["svc"], status=True,
        categories=["all"]),
    Res("", "v1", "configmaps", "ConfigMap", "configmap", True, ["cm"]),
    Res("", "v1", "secrets", "Secret", "secret", True, fields=("type",)),
    Res("", "v1", "events", "Event", "event", True, ["ev"], fields=EVENT_FIELDS),
    Res("coordination.k8s.io", "v1", "leases", "Lease", "lease", True),
    Res("", "v1", "serviceaccounts", "ServiceAccount", "serviceaccount", True, ["sa"]),
    Res("apps", "v1", "deployments", "Deployment", "deployment", True, ["deploy"], status=True,
        categories=["all"], gen=True),
    Res("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", "clusterrole", False),
    Res("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
        "clusterrolebinding", False),
    Res("rbac.authorization.k8s.io", "v1", "roles", "Role", "role", True),
    Res("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", "rolebinding", True),
    Res("gateway.networking.k8s.io", "v1", "gatewayclasses", "GatewayClass", "gatewayclass", False,
        ["gc"], status=True, crd=True),
    Res("gateway.networking.k8s.io", "v1", "gateways", "Gateway", "gateway", True, ["gtw"],
        status=True, crd=True),
    Res("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute", "httproute", True,
        status=True, crd=True),
    # What the Helm chart renders besides the above (charts/llmgw).
    Res("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", "poddisruptionbudget",
        True, ["pdb"], status=True, gen=True),
    Res("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
        "horizontalpodautoscaler", True, ["hpa"], status=True, categories=["all"], gen=True),
    # The Prometheus Operator's CRD (no status subresource).
    Res("monitoring.coreos.com", "v1", "servicemonitors", "ServiceMonitor", "servicemonitor",
        True, ["smon"], crd=True),
]
RES_BY_GV = collections.defaultdict(dict)  # gv -> plural -> Res
for _r in RESOURCES:
    RES_BY_GV[_r.gv][_r.plural] = _r
NAMESPACES = RES_BY_GV["v1"]["namespaces"]

# Structural schema pruning of custom resources' status (what a real server
# does with a CRD's structural schema): only these top-level status fields
# survive a write; anything else is dropped silently.
CRD_STATUS_FIELDS = {
    ("gateway.networking.k8s.io", "httproutes"): {"parents"},
    ("gateway.networking.k8s.io", "gatewayclasses"): {"conditions", "supportedFeatures"},
    ("gateway.networking.k8s.io", "gateways"): {"addresses", "conditions", "listeners"},
}

# Strategic merge patch: list merge keys of the built-in types we serve
# (from the Go struct tags patchMergeKey), by field name.
SMP_MERGE_KEYS = {
    "conditions": "type",
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "ownerReferences": "uid",
}

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def now_rfc3339(offset=0.0):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


def valid_qualified_name(k):
    """A label or annotation key: [prefix/]name (api-conventions labels)."""
    if "/" in k:
        prefix, _, name = k.partition("/")
        if not prefix or len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix):
            return False
    else:
        name = k
    return 0 < len(name) <= 63 and bool(LABEL_NAME.match(name))


def validate_meta(res, obj, name):
    """Field validation the real server does on every write we care about."""
    causes = []
    md = obj.get("metadata", {})
    if res in (NAMESPACES, RES_BY_GV["v1"]["services"]):
        if len(name) > 63 or not DNS1123_LABEL.match(name):
            causes.append(("metadata.name", "a lowercase RFC 1123 label must consist of lower case "
                           "alphanumeric characters or '-'"))
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        causes.append(("metadata.name", "a lowercase RFC 1123 subdomain must consist of lower "
                       "case alphanumeric characters, '-' or '.'"))
    labels = md.get("labels") or {}
    if not isinstance(labels, dict):
        causes.append(("metadata.labels", "must be a map of strings"))
    else:
        for k, v in labels.items():
            if not valid_qualified_name(k):
                causes.append(("metadata.labels", "Invalid value: %r: name part must consist of "
                               "alphanumeric characters, '-', '_' or '.'" % k))
            if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
                causes.append(("metadata.labels", "Invalid value: %r: a valid label must be an "
                               "empty string or consist of alphanumeric characters, '-', '_' or "
                               "'.', and must start and end with an alphanumeric character" % v))
    ann = md.get("annotations") or {}
    if not isinstance(ann, dict):
        causes.append(("metadata.annotations", "must be a map of strings"))
    else:
        for k, v in ann.items():
            if not valid_qualified_name(k):
                causes.append(("metadata.annotations", "Invalid value: %r" % k))
            if not isinstance(v, str):
                causes.append(("metadata.annotations", "values must be strings"))
    if res.plural == "leases":
        spec = obj.get("spec") or {}
        lds = spec.get("leaseDurationSeconds")
        if lds is not None and (not isinstance(lds, int) or lds <= 0):
            causes.append(("spec.leaseDurationSeconds", "must be greater than 0"))
    if causes:
        raise invalid(res, name, causes)


# --------------------------------------------------------------------------
# Selectors (labels.Parse and fields.ParseSelector semantics).
# --------------------------------------------------------------------------


class LabelSelector:
    """Parses the label selector grammar: `k=v`, `k==v`, `k!=v`, `k in (a,b)`,
    `k notin (a,b)`, `k` (exists) and `!k` (does not exist), comma-separated.
    A requirement on a missing key: `!=` and `notin` match, the rest do not."""

    TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|[^\s(),!=]+)")

    def __init__(self, text):
        self.reqs = []
        toks = []
        pos = 0
        text = text or ""
        while pos < len(text):
            m = self.TOKEN.match(text, pos)
            if not m:
                if text[pos:].strip() == "":
                    break
                raise bad_request("unable to parse requirement: invalid label selector: %r" % text)
            toks.append(m.group(1))
            pos = m.end()
        i = 0

        def expect_value(j):
            if j >= len(toks) or toks[j] in ("(", ")", ",", "!=", "==", "=", "!"):
                raise bad_request("unable to parse requirement: found '%s', expected: identifier"
                                  % (toks[j] if j < len(toks) else "EOS"))
            return toks[j]

        while i < len(toks):
            if toks[i] == "!":
                key = expect_value(i + 1)
                self._check_key(key)
                self.reqs.append((key, "!", None))
                i += 2
            else:
                key = expect_value(i)
                self._check_key(key)
                i += 1
                if i >= len(toks) or toks[i] == ",":
                    self.reqs.append((key, "exists", None))
                elif toks[i] in ("=", "==", "!="):
                    op = "!=" if toks[i] == "!=" else "="
                    # An empty value is legal: `k=` selects k with value "".
                    if i + 1 < len(toks) and toks[i + 1] not in (",",):
                        val = expect_value(i + 1)
                        i += 2
                    else:
                        val = ""
                        i += 1
                    self._check_value(val)
                    self.reqs.append((key, op, val))
                elif toks[i] in ("in", "notin"):
                    op = toks[i]
                    if i + 1 >= len(toks) or toks[i + 1] != "(":
                        raise bad_request("unable to parse requirement: found '%s', expected: '('"
                                          % (toks[i + 1] if i + 1 < len(toks) else "EOS"))
                    i += 2
                    vals = set()
                    while True:
                        if i >= len(toks):
                            raise bad_request("unable to parse requirement: found 'EOS', "
                                              "expected: ')'")
                        if toks[i] == ")":
                            i += 1
                            break
                        if toks[i] == ",":
                            i += 1
                            continue
                        self._check_value(toks[i])
                        vals.add(toks[i])
                        i += 1
                    if not vals and op == "in":
                        raise bad_request("unable to parse requirement: for 'in', 'notin' "
                                          "operators, values set can't be empty")
                    self.reqs.append((key, op, vals))
                else:
                    raise bad_request("unable to parse requirement: found '%s', expected: "
                                      "'=', '!=', '==', 'in', notin'" % toks[i])
            if i < len(toks):
                if toks[i] != ",":
                    raise bad_request("found '%s', expected: ',' or 'end of string'" % toks[i])
                i += 1

    @staticmethod
    def _check_key(k):
        if not valid_qualified_name(k):
            raise bad_request("unable to parse requirement: invalid label key %r" % k)

    @staticmethod
    def _check_value(v):
        if len(v) > 63 or not LABEL_VALUE.match(v):
            raise bad_request("unable to parse requirement: invalid label value: %r" % v)

    def matches(self, labels):
        labels = labels or {}
        for key, op, val in self.reqs:
            has = key in labels
            v = labels.get(key)
            if op == "exists" and not has:
                return False
            if op == "!" and has:
                return False
            if op == "=" and (not has or v != val):
                return False
            if op == "!=" and has and v == val:
                return False
            if op == "in" and (not has or v not in val):
                return False
            if op == "notin" and has and v in val:
                return False
        return True


class FieldSelector:
    """`a=b,c!=d` over the fields a resource supports; `\\` escapes , = and \\."""

    def __init__(self, text, res):
        self.reqs = []
        for part in self._split(text or "", ","):
            if part == "":
                continue
            m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", part)
            if not m:
                raise bad_request("invalid selector: '%s'; can't understand '%s'" % (text, part))
            field, op, val = m.group(1), m.group(2), self._unescape(m.group(3))
            if field not in res.fields:
                raise bad_request('field label not supported: %s' % field)
            self.reqs.append((field, "!=" if op == "!=" else "=", val))

    @staticmethod
    def _split(s, sep):
        out, cur, esc = [], "", False
        for ch in s:
            if esc:
                cur += "\\" + ch
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == sep:
                out.append(cur)
                cur = ""
            else:
                cur += ch
        out.append(cur)
        return out

    @staticmethod
    def _unescape(s):
        return re.sub(r"\\(.)", r"\1", s)

    @staticmethod
    def value(obj, field):
        cur = obj
        for p in field.split("."):
            if not isinstance(cur, dict):
                return ""
            cur = cur.get(p)
        if cur is None:
            return ""
        if isinstance(cur, dict):  # e.g. `source` on events: its component
            return cur.get("component", "")
        return str(cur)

    def matches(self, obj):
        for field, op, val in self.reqs:
            v = self.value(obj, field)
            if (op == "=") != (v == val):
                return False
        return True


# --------------------------------------------------------------------------
# Patches.
# --------------------------------------------------------------------------


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge(target, patch):
    """Strategic merge patch for the built-in types served here: a merge patch
    whose lists of objects with a known merge key (conditions by type,
    containers by name, ...) merge element by element, with the `$patch:
    delete|replace` element directive, `$deleteFromPrimitiveList/<f>`,
    and `$setElementOrder/<f>` / `$retainKeys` accepted (kubectl apply sends
    them)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        p = dict(patch)
        del p["$patch"]
        return copy.deepcopy(p)
    if patch.get("$patch") == "delete":
        return None
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if k.startswith("$setElementOrder/") or k in ("$retainKeys", "$patch"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            f = k.split("/", 1)[1]
            if isinstance(out.get(f), list):
                out[f] = [x for x in out[f] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
        elif isinstance(v, list) and k in SMP_MERGE_KEYS and all(isinstance(e, dict) for e in v):
            mk = SMP_MERGE_KEYS[k]
            cur = [copy.deepcopy(e) for e in (out.get(k) or []) if isinstance(e, dict)]
            for e in v:
                idx = next((i for i, c in enumerate(cur) if c.get(mk) == e.get(mk)), None)
                if e.get("$patch") == "delete":
                    if idx is not None:
                        del cur[idx]
                elif idx is None:
                    cur.append(strategic_merge({}, e))
                else:
                    cur[idx] = strategic_merge(cur[idx], e)
            out[k] = cur
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = copy.deepcopy(v)
    return out


def _ptr_parts(ptr):
    if ptr == "":
        return []
    if not ptr.startswith("/"):
        raise ValueError("JSON pointer %r must start with /" % ptr)
    return [p.replace("~1", "/").replace("~0", "~") for p in ptr[1:].split("/")]


def _ptr_parent(doc, parts):
    cur = doc
    for p in parts[:-1]:
        if isinstance(cur, dict):
            if p not in cur:
                raise ValueError("path %s does not exist" % "/".join(parts))
            cur = cur[p]
        elif isinstance(cur, list):
            i = int(p)
            if not 0 <= i < len(cur):
                raise ValueError("index %s out of range" % p)
            cur = cur[i]
        else:
            raise ValueError("cannot walk into a scalar")
    return cur


def _ptr_get(doc, parts):
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise ValueError("path /%s does not exist" % "/".join(parts))
            cur = cur[p]
        elif isinstance(cur, list):
            if not p.isdigit() or int(p) >= len(cur):
                raise ValueError("index %s out of range" % p)
            cur = cur[int(p)]
        else:
            raise ValueError("cannot walk into a scalar")
    return cur


def _ptr_add(doc, parts, value):
    if not parts:
        return value
    parent = _ptr_parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        else:
            i = int(last)
            if not 0 <= i <= len(parent):
                raise ValueError("index %s out of range" % last)
            parent.insert(i, value)
    else:
        raise ValueError("cannot add into a scalar")
    return doc


def _ptr_remove(doc, parts):
    if not parts:
        raise ValueError("cannot remove the whole document")
    parent = _ptr_parent(doc, parts)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise ValueError("path /%s does not exist" % "/".join(parts))
        return parent.pop(last)
    if isinstance(parent, list):
        i = int(last)
        if not 0 <= i < len(parent):
            raise ValueError("index %s out of range" % last)
        return parent.pop(i)
    raise ValueError("cannot remove from a scalar")


def json_patch(doc, ops):
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise ValueError("a JSON patch must be an array of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ValueError("every operation needs op and path")
        kind, parts = op["op"], _ptr_parts(op["path"])
        if kind == "add":
            doc = _ptr_add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _ptr_remove(doc, parts)
        elif kind == "replace":
            _ptr_get(doc, parts)  # must exist
            if parts:
                _ptr_remove(doc, parts)
            doc = _ptr_add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            src = _ptr_parts(op.get("from", ""))
            val = copy.deepcopy(_ptr_get(doc, src))
            if kind == "move":
                _ptr_remove(doc, src)
            doc = _ptr_add(doc, parts, val)
        elif kind == "test":
            if _ptr_get(doc, parts) != op.get("value"):
                raise ValueError("testing value %s failed" % op["path"])
        else:
            raise ValueError("unknown operation %r" % kind)
    return doc


# --------------------------------------------------------------------------
# The store.
# --------------------------------------------------------------------------

Event = collections.namedtuple("Event", "rv res type obj old")


class Store:
    def __init__(self, history):
        self.cond = threading.Condition()
        self.rv = 1
        self.objs = {r.key: {} for r in RESOURCES}  # res.key -> (ns, name) -> obj
        self.history = collections.deque()
        self.window = history
        # The oldest resourceVersion a watch may start from: every event with
        # rv > floor is still in the history.
        self.floor = 1
        self.closing = False
        self.watch_epoch = 0  # bumped by /_test/close-watches
        self.watchers = 0
        self.kubelet = []  # heap of (deadline, res.key, ns, name, uid)
        for ns in ("default", "kube-system", "kube-public"):
            with self.cond:
                self._write(NAMESPACES, "ADDED", self._new_meta(NAMESPACES, {
                    "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns},
                    "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}},
                    None), None)

    # -- internals; called with self.cond held --

    def _new_meta(self, res, obj, ns):
        md = obj.setdefault("metadata", {})
        if ns is not None:
            md["namespace"] = ns
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        if res.tracks_generation():
            md["generation"] = 1
        return obj

    def _write(self, res, etype, obj, old):
        """Commits one change: next rv, store, history, wake watchers."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        key = (obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if etype == "DELETED":
            self.objs[res.key].pop(key, None)
        else:
            self.objs[res.key][key] = obj
        self.history.append(Event(self.rv, res.key, etype, copy.deepcopy(obj),
                                  copy.deepcopy(old) if old is not None else None))
        while len(self.history) > self.window:
            self.floor = self.history.popleft().rv
        self.cond.notify_all()
        return obj

    def compact(self):
        with self.cond:
            self.history.clear()
            self.floor = self.rv
            return self.rv

    def events_after(self, rv):
        """Events with rv > <rv>, oldest first; None when some were dropped."""
        if rv < self.floor:
            return None
        out = []
        for ev in reversed(self.history):
            if ev.rv <= rv:
                break
            out.append(ev)
        out.reverse()
        return out

    def get(self, res, ns, name):
        obj = self.objs[res.key].get((ns if res.namespaced else None, name))
        if obj is None:
            raise not_found(res, name)
        return obj

    def require_namespace(self, ns):
        if ns is not None and (None, ns) not in self.objs[NAMESPACES.key]:
            raise ApiError(404, "NotFound", 'namespaces "%s" not found' % ns,
                           {"name": ns, "kind": "namespaces"})
        nsobj = self.objs[NAMESPACES.key].get((None, ns)) if ns else None
        if nsobj is not None and nsobj["metadata"].get("deletionTimestamp"):
            raise ApiError(403, "Forbidden", 'unable to create new content in namespace %s because '
                           'it is being terminated' % ns)


STORE = None  # set in main
ARGS = None


def strip_for_compare(obj):
    o = copy.deepcopy(obj)
    md = o.get("metadata", {})
    for k in ("resourceVersion", "managedFields"):
        md.pop(k, None)
    return o


def spec_part(obj):
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def drop_empty_meta(obj):
    """ObjectMeta's maps and lists are omitempty: an empty one is absent."""
    md = obj.get("metadata") or {}
    for k in ("labels", "annotations", "finalizers", "ownerReferences"):
        if k in md and not md[k]:
            del md[k]


def prune_status(res, obj):
    keep = CRD_STATUS_FIELDS.get(res.key)
    if keep is not None and isinstance(obj.get("status"), dict):
        obj["status"] = {k: v for k, v in obj["status"].items() if k in keep}


def secret_fold(obj):
    """Secret.stringData is write-only: it is merged into data, base64."""
    sd = obj.pop("stringData", None)
    if sd:
        data = obj.setdefault("data", {})
        for k, v in sd.items():
            data[k] = base64.b64encode(v.encode()).decode()
    for k, v in (obj.get("data") or {}).items():
        try:
            base64.b64decode(v, validate=True)
        except Exception:
            raise invalid(RES_BY_GV["v1"]["secrets"], obj["metadata"].get("name", ""),
                          [("data[%s]" % k, "illegal base64 data")])


def default_status(res):
    if res.plural == "pods":
        return {"phase": "Pending", "qosClass": "BestEffort"}
    if res.plural == "namespaces":
        return {"phase": "Active"}
    if res.plural == "services":
        return {"loadBalancer": {}}
    return None


def do_create(res, ns, body, dry_run=False):
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    for field, want in (("kind", res.kind), ("apiVersion", res.gv)):
        if body.get(field) not in (None, want):
            raise bad_request("the API version in the data (%s) does not match the expected API "
                              "version (%s)" % (body.get("apiVersion"), res.gv)
                              if field == "apiVersion" else
                              "the kind in the data (%s) does not match the expected kind (%s)"
                              % (body.get("kind"), res.kind))
    obj = copy.deepcopy(body)
    obj["kind"], obj["apiVersion"] = res.kind, res.gv
    md = obj.setdefault("metadata", {})
    if not isinstance(md, dict):
        raise bad_request("metadata must be an object")
    if res.namespaced:
        if md.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the namespace "
                              "sent on the request")
    else:
        md.pop("namespace", None)
    for k in ("resourceVersion", "uid", "deletionTimestamp", "deletionGracePeriodSeconds",
              "generation", "creationTimestamp", "managedFields"):
        md.pop(k, None)
    with STORE.cond:
        if not md.get("name"):
            if md.get("generateName"):
                md["name"] = md["generateName"] + "".join(
                    random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
            else:
                raise invalid(res, "", [("metadata.name",
                                         "name or generateName is required")])
        name = md["name"]
        validate_meta(res, obj, name)
        if res.namespaced:
            STORE.require_namespace(ns)
        key = (ns if res.namespaced else None, name)
        if key in STORE.objs[res.key]:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.qualified(), name),
                           {"name": name, "group": res.group, "kind": res.plural})
        if res.status:
            st = default_status(res)
            if st is None:
                obj.pop("status", None)
            else:
                obj["status"] = st
        if res.plural == "secrets":
            secret_fold(obj)
        if res.plural == "services":
            spec = obj.setdefault("spec", {})
            if spec.get("clusterIP") in (None, ""):
                spec["clusterIP"] = "10.96.%d.%d" % (random.randint(0, 255), random.randint(1, 254))
        if res.plural == "pods":
            obj.setdefault("spec", {}).setdefault("terminationGracePeriodSeconds", 30)
        STORE._new_meta(res, obj, ns if res.namespaced else None)
        drop_empty_meta(obj)
        prune_status(res, obj)
        if dry_run:
            return copy.deepcopy(obj)
        return copy.deepcopy(STORE._write(res, "ADDED", obj, None))


def do_update(res, ns, name, new, subresource, require_rv, dry_run=False):
    """PUT semantics, also the last step of PATCH. <new> is the full object the
    client wants; <require_rv> says whether metadata.resourceVersion must be
    present (PUT on custom resources)."""
    if not isinstance(new, dict):
        raise bad_request("the body of the request must be a JSON object")
    md = new.get("metadata")
    if not isinstance(md, dict):
        raise bad_request("metadata must be an object")
    if md.get("name") not in (None, name):
        raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                          % (md.get("name"), name))
    if res.namespaced and md.get("namespace") not in (None, "", ns):
        raise bad_request("the namespace of the provided object does not match the namespace "
                          "sent on the request")
    with STORE.cond:
        old = STORE.get(res, ns, name)
        rv = md.get("resourceVersion")
        if rv in (None, ""):
            if require_rv:
                raise invalid(res, name, [("metadata.resourceVersion",
                                           "Invalid value: 0x0: must be specified for an update")])
        elif rv != old["metadata"]["resourceVersion"]:
            raise conflict(res, name, "the object has been modified; please apply your changes "
                           "to the latest version and try again")
        if subresource == "status":
            # Status writes change only .status (api-conventions "spec and
            # status"); everything else comes from the stored object.
            obj = copy.deepcopy(old)
            if "status" in new:
                obj["status"] = copy.deepcopy(new["status"])
            else:
                obj.pop("status", None)
        else:
            obj = copy.deepcopy(new)
            obj["kind"], obj["apiVersion"] = res.kind, res.gv
            omd = obj["metadata"]
            omd["name"] = name
            if res.namespaced:
                omd["namespace"] = ns
            for k in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation"):
                if k in old["metadata"]:
                    omd[k] = old["metadata"][k]
                else:
                    omd.pop(k, None)
            if res.status:
                # The main resource ignores status when /status exists.
                if "status" in old:
                    obj["status"] = copy.deepcopy(old["status"])
                else:
                    obj.pop("status", None)
            if res.plural == "secrets":
                secret_fold(obj)
            validate_meta(res, obj, name)
            if res.tracks_generation() and spec_part(obj) != spec_part(old):
                omd["generation"] = old["metadata"].get("generation", 1) + 1
        prune_status(res, obj)
        drop_empty_meta(obj)
        if strip_for_compare(obj) == strip_for_compare(old):
            # A no-op write changes nothing: no new resourceVersion, no event.
            return copy.deepcopy(old)
        if dry_run:
            obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            return obj
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers") \
                and res.plural != "pods":
            # The last finalizer went away: the deletion completes now.
            STORE._write(res, "MODIFIED", obj, old)
            done = copy.deepcopy(obj)
            return copy.deepcopy(STORE._write(res, "DELETED", done, obj))
        return copy.deepcopy(STORE._write(res, "MODIFIED", obj, old))


def do_patch(res, ns, name, ctype, body, subresource, dry_run=False):
    ctype = (ctype or "").split(";")[0].strip().lower()
    if ctype == "application/apply-patch+yaml":
        raise ApiError(415, "UnsupportedMediaType", "server-side apply is not implemented by "
                       "this test double; use client-side apply")
    if ctype not in ("application/merge-patch+json", "application/json-patch+json",
                     "application/strategic-merge-patch+json"):
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                       "format - accepted media types include: application/json-patch+json, "
                       "application/merge-patch+json, application/apply-patch+yaml")
    if ctype == "application/strategic-merge-patch+json" and res.crd:
        raise ApiError(415, "UnsupportedMediaType",
                       "strategic merge patch is not supported for custom resources: "
                       "application/strategic-merge-patch+json is not supported by %s, Kind=%s: "
                       "the body of the request was in an unknown format - accepted media types "
                       "include: application/json-patch+json, application/merge-patch+json, "
                       "application/apply-patch+yaml" % (res.gv, res.kind))
    try:
        patch = json.loads(body or b"null")
    except ValueError as e:
        raise bad_request("error decoding patch: %s" % e)
    with STORE.cond:
        cur = copy.deepcopy(STORE.get(res, ns, name))
        cur_rv = cur["metadata"]["resourceVersion"]
        try:
            if ctype == "application/json-patch+json":
                new = json_patch(cur, patch)
            elif ctype == "application/merge-patch+json":
                if not isinstance(patch, dict):
                    raise ValueError("a merge patch must be a JSON object")
                new = merge_patch(cur, patch)
            else:
                if not isinstance(patch, dict):
                    raise ValueError("a strategic merge patch must be a JSON object")
                new = strategic_merge(cur, patch)
        except (ValueError, TypeError, IndexError) as e:
            raise ApiError(422, "Invalid", "the server rejected our request due to an error in "
                           "our request: %s" % e)
        if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
            raise ApiError(422, "Invalid", "the patch removed the object's metadata")
        # A resourceVersion the patch itself sets is a precondition.
        if new["metadata"].get("resourceVersion", cur_rv) != cur_rv:
            raise conflict(res, name, "the object has been modified; please apply your changes "
                           "to the latest version and try again")
        new["metadata"]["resourceVersion"] = cur_rv
        return do_update(res, ns, name, new, subresource, False, dry_run)


def delete_options(q, body):
    opts = {}
    if body:
        try:
            opts = json.loads(body)
        except ValueError as e:
            raise bad_request("error decoding DeleteOptions: %s" % e)
        if not isinstance(opts, dict):
            raise bad_request("DeleteOptions must be an object")
    if "gracePeriodSeconds" in q:
        try:
            opts["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        except ValueError:
            raise bad_request("invalid gracePeriodSeconds")
    if "dryRun" in q:
        opts["dryRun"] = [q["dryRun"]]
    return opts


def do_delete(res, ns, name, opts):
    dry = bool(opts.get("dryRun"))
    with STORE.cond:
        obj = STORE.get(res, ns, name)
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in object "
                           "meta: %s" % (pre["uid"], obj["metadata"]["uid"]))
        if pre.get("resourceVersion") and pre["resourceVersion"] != \
                obj["metadata"]["resourceVersion"]:
            raise conflict(res, name, "Precondition failed: ResourceVersion in precondition: %s, "
                           "ResourceVersion in object meta: %s"
                           % (pre["resourceVersion"], obj["metadata"]["resourceVersion"]))
        if dry:
            return copy.deepcopy(obj)
        grace = 0
        if res.plural == "pods":
            grace = opts.get("gracePeriodSeconds")
            if grace is None:
                grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
            # An unscheduled pod has no kubelet to wait for: it goes at once.
            if not (obj.get("spec") or {}).get("nodeName"):
                grace = 0
            cur = obj["metadata"].get("deletionGracePeriodSeconds")
            if cur is not None and grace > cur:
                grace = cur  # a second delete may only shorten the grace period
        finalizers = obj["metadata"].get("finalizers") or []
        if res.plural == "namespaces":
            for r in RESOURCES:
                if r.namespaced:
                    for (ons, oname), o in list(STORE.objs[r.key].items()):
                        if ons == name:
                            STORE._write(r, "DELETED", copy.deepcopy(o), o)
            finalizers = []
        if grace > 0 or finalizers:
            if obj["metadata"].get("deletionTimestamp") and \
                    obj["metadata"].get("deletionGracePeriodSeconds") == grace:
                return copy.deepcopy(obj)
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = now_rfc3339(grace)
            new["metadata"]["deletionGracePeriodSeconds"] = grace
            STORE._write(res, "MODIFIED", new, obj)
            if res.plural == "pods":
                # The simulated kubelet confirms the deletion when the grace
                # period is over (it would after stopping the containers).
                heapq.heappush(STORE.kubelet, (time.time() + grace, res.key, ns, name,
                                               new["metadata"]["uid"]))
                STORE.cond.notify_all()
            return copy.deepcopy(new)
        gone = copy.deepcopy(obj)
        if not gone["metadata"].get("deletionTimestamp"):
            gone["metadata"]["deletionTimestamp"] = now_rfc3339()
            gone["metadata"]["deletionGracePeriodSeconds"] = 0
        return copy.deepcopy(STORE._write(res, "DELETED", gone, obj))


def kubelet_loop():
    """Finishes graceful pod deletions whose grace period is over."""
    with STORE.cond:
        while not STORE.closing:
            now = time.time()
            while STORE.kubelet and STORE.kubelet[0][0] <= now:
                _, rkey, ns, name, uid = heapq.heappop(STORE.kubelet)
                res = next(r for r in RESOURCES if r.key == rkey)
                obj = STORE.objs[rkey].get((ns, name))
                if obj is not None and obj["metadata"]["uid"] == uid and \
                        not obj["metadata"].get("finalizers"):
                    STORE._write(res, "DELETED", copy.deepcopy(obj), obj)
                if ARGS.verbose:
                    sys.stderr.write("kubeapi: kubelet: %s/%s grace over (%s)\n" % (
                        ns, name, "deleted" if obj is not None else "already gone"))
            wait = STORE.kubelet[0][0] - now if STORE.kubelet else 1.0
            STORE.cond.wait(max(0.01, min(wait, 1.0)))


# --------------------------------------------------------------------------
# Discovery documents.
# --------------------------------------------------------------------------


def groups():
    out = collections.OrderedDict()
    for r in RESOURCES:
        if r.group:
            out.setdefault(r.group, [])
            if r.version not in out[r.group]:
                out[r.group].append(r.version)
    return out


def verbs_of(r):
    return ALL_VERBS


def resource_list(gv):
    res = []
    for r in RESOURCES:
        if r.gv != gv:
            continue
        e = {"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
             "kind": r.kind, "verbs": verbs_of(r)}
        if r.short:
            e["shortNames"] = r.short
        if r.categories:
            e["categories"] = r.categories
        res.append(e)
        if r.status:
            res.append({"name": r.plural + "/status", "singularName": "",
                        "namespaced": r.namespaced, "kind": r.kind,
                        "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": res}


def aggregated(group_names, api_version):
    """apidiscovery.k8s.io APIGroupDiscoveryList for /api (core) or /apis."""
    items = []
    for g in group_names:
        versions = []
        for v in (["v1"] if g == "" else groups()[g]):
            gv = g + "/" + v if g else v
            rs = []
            for r in RESOURCES:
                if r.gv != gv:
                    continue
                e = {"resource": r.plural,
                     "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                     "scope": "Namespaced" if r.namespaced else "Cluster",
                     "singularResource": r.singular, "verbs": verbs_of(r)}
                if r.short:
                    e["shortNames"] = r.short
                if r.categories:
                    e["categories"] = r.categories
                if r.status:
                    e["subresources"] = [{"subresource": "status",
                                          "responseKind": dict(e["responseKind"]),
                                          "verbs": ["get", "patch", "update"]}]
                rs.append(e)
            versions.append({"version": v, "resources": rs, "freshness": "Current"})
        items.append({"metadata": {"name": g, "creationTimestamp": None}, "versions": versions})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {},
            "items": items}


def wants_aggregated(accept):
    """The aggregated discovery version the client accepts first, or None."""
    for part in (accept or "").split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("g") == "apidiscovery.k8s.io" and \
                params.get("as") == "APIGroupDiscoveryList" and params.get("v") in ("v2",
                                                                                   "v2beta1"):
            return params["v"]
    return None


# --------------------------------------------------------------------------
# Test control: request log, injected faults, tokens.
# --------------------------------------------------------------------------

CONTROL_LOCK = threading.Lock()
REQUEST_LOG = collections.deque(maxlen=20000)
REQUEST_SEQ = [0]
FAULTS = []  # dicts: method, path (regex), code, count, action (error|bump|close)
TOKENS = set()


def take_fault(method, path):
    with CONTROL_LOCK:
        for f in FAULTS:
            if f.get("count", 1) <= 0:
                continue
            if f.get("method") not in (None, "", method):
                continue
            if not re.search(f.get("path", ""), path):
                continue
            f["count"] = f.get("count", 1) - 1
            return dict(f)
    return None


def bump(res, ns, name):
    """A real concurrent write (annotation touch), so the client's next write
    with the old resourceVersion gets a genuine 409."""
    with STORE.cond:
        try:
            old = STORE.get(res, ns, name)
        except ApiError:
            return
        new = copy.deepcopy(old)
        ann = new["metadata"].setdefault("annotations", {})
        ann["kubeapi.test/touched"] = str(STORE.rv + 1)
        STORE._write(res, "MODIFIED", new, old)


# --------------------------------------------------------------------------
# Authorization: RBAC for service-account users (--token-user), evaluated
# against the Roles, ClusterRoles and bindings stored in the double itself,
# so applying a manifest's RBAC and running a client with its token checks
# that the rules are enough (and that anything else is refused).
# --------------------------------------------------------------------------

TOKEN_USERS = {}  # token -> user name ("system:serviceaccount:<ns>:<name>")


def rule_allows(rule, verb, group, resource, name):
    def has(field, value):
        vals = rule.get(field) or []
        return "*" in vals or value in vals
    if not has("verbs", verb) or not has("apiGroups", group) or not has("resources", resource):
        return False
    names = rule.get("resourceNames") or []
    return not names or (name is not None and name in names)


def rbac_allows(user, verb, group, resource, ns, name):
    """The RBAC authorizer: some binding of <user> grants the request."""
    if not user.startswith("system:serviceaccount:"):
        return True
    sa_ns, sa_name = user.split(":")[2:4]

    def subject_ok(b):
        return any(sj.get("kind") == "ServiceAccount" and sj.get("name") == sa_name and
                   (sj.get("namespace") or b["metadata"].get("namespace")) == sa_ns
                   for sj in b.get("subjects") or [])

    def role_rules(ref, ns):
        if ref.get("kind") == "ClusterRole":
            r = STORE.objs[("rbac.authorization.k8s.io", "clusterroles")].get(
                (None, ref.get("name")))
        else:
            r = STORE.objs[("rbac.authorization.k8s.io", "roles")].get((ns, ref.get("name")))
        return (r or {}).get("rules") or []

    with STORE.cond:
        for b in STORE.objs[("rbac.authorization.k8s.io", "clusterrolebindings")].values():
            if subject_ok(b) and any(rule_allows(r, verb, group, resource, name)
                                     for r in role_rules(b.get("roleRef") or {}, None)):
                return True
        if ns is not None:
            for (bns, _), b in STORE.objs[("rbac.authorization.k8s.io", "rolebindings")].items():
                if bns == ns and subject_ok(b) and any(
                        rule_allows(r, verb, group, resource, name)
                        for r in role_rules(b.get("roleRef") or {}, ns)):
                    return True
    return False


def authorize(user, method, q, target):
    res, ns, name, sub, watch_path = target
    if method == "GET":
        verb = "get" if name is not None and not watch_path else (
            "watch" if watch_path or q.get("watch") in ("true", "1") else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name is not None else "deletecollection"}[method]
    if name is None:
        # list/watch restricted to one object by a metadata.name field
        # selector are authorized against that name (resourceNames).
        m = re.search(r"(?:^|,)metadata\.name==?([^,]+)", q.get("fieldSelector") or "")
        name = m.group(1) if m else None
    resource = res.plural + ("/" + sub if sub else "")
    if rbac_allows(user, verb, res.group, resource, ns, name):
        return
    scope = 'in the namespace "%s"' % ns if ns else "at the cluster scope"
    raise ApiError(403, "Forbidden", '%s is forbidden: User "%s" cannot %s resource "%s" in API '
                   'group "%s" %s' % (res.qualified(), user, verb, resource, res.group, scope),
                   {"kind": res.plural, "group": res.group})


# --------------------------------------------------------------------------
# HTTP.
# --------------------------------------------------------------------------


class WatchClosed(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubeapi-test-double/1"
    # Without TCP_NODELAY keep-alive answers wait ~40 ms for delayed ACKs.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        if ARGS.verbose:
            sys.stderr.write("kubeapi: %s\n" % (fmt % args))

    # -- plumbing --

    def send_json(self, code, obj, ctype="application/json", headers=None):
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.status_sent = code

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def json_body(self, raw):
        try:
            return json.loads(raw or b"null")
        except ValueError as e:
            raise bad_request("error decoding the request body: %s" % e)

    def user(self):
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            with CONTROL_LOCK:
                if auth[7:] in TOKEN_USERS:
                    return TOKEN_USERS[auth[7:]]
                if auth[7:] in TOKENS:
                    return "token"
        cert = getattr(self.connection, "getpeercert", None)
        if cert is not None:
            c = cert()
            if c:
                for rdn in c.get("subject", ()):
                    for k, v in rdn:
                        if k == "commonName":
                            return "cert:" + v
        return None

    def auth_required(self):
        with CONTROL_LOCK:
            return bool(TOKENS) or bool(TOKEN_USERS) or bool(ARGS.client_ca)

    # -- dispatch --

    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        self.status_sent = 0
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        q = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body = self.read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
        user = None
        # Logged when it starts (an open watch shows with code 0 until it
        # ends), completed in the finally clause.
        entry = {"method": method, "path": path, "query": q,
                 "contentType": self.headers.get("Content-Type") or "",
                 "userAgent": self.headers.get("User-Agent") or "", "user": None, "code": 0,
                 "body": body.decode("utf-8", "replace")[:4096] if method != "GET" else ""}
        if not path.startswith("/_test"):
            with CONTROL_LOCK:
                REQUEST_SEQ[0] += 1
                entry["seq"] = REQUEST_SEQ[0]
                REQUEST_LOG.append(entry)
        try:
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if body and "protobuf" in ctype:
                # Built-in types may be sent as protobuf; this double speaks
                # JSON only and says so the way a server does for a media
                # type it lacks (client-go then retries with JSON).
                raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                               "unknown format - accepted media types include: application/json")
            if path.startswith("/_test"):
                return self.control(method, path, q, body)
            if path in ("/healthz", "/livez", "/readyz"):
                data = b"ok"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(data)
                return
            user = self.user()
            if user is None and self.auth_required():
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self.request_user = user or "anonymous"
            fault = take_fault(method, path)
            if fault is not None:
                action = fault.get("action", "error")
                if action == "close":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.status_sent = -1
                    return
                if action == "delay":
                    time.sleep(float(fault.get("seconds", 1)))
                elif action == "bump":
                    target = self.route(method, path)
                    if target and target[2]:
                        bump(target[0], target[1], target[2])
                else:
                    code = int(fault.get("code", 500))
                    reasons = {409: "Conflict", 429: "TooManyRequests", 500: "InternalError",
                               503: "ServiceUnavailable", 504: "Timeout", 410: "Expired",
                               403: "Forbidden"}
                    raise ApiError(code, reasons.get(code, "Unknown"),
                                   fault.get("message", "injected fault"),
                                   headers={"Retry-After": "1"} if code == 429 else None)
            self.api(method, path, q, body)
        except ApiError as e:
            self.send_json(e.code, e.status(), headers=e.headers)
        except (BrokenPipeError, ConnectionResetError, WatchClosed):
            self.close_connection = True
        except Exception as e:  # a bug in the double: say so loudly
            import traceback
            sys.stderr.write("kubeapi: Traceback (internal error) on %s %s\n%s" % (
                method, self.path, traceback.format_exc()))
            if self.status_sent == 0:
                self.send_json(500, status_obj(500, "InternalError", "test double bug: %s" % e))
            self.close_connection = True
        finally:
            with CONTROL_LOCK:
                entry["user"] = user
                entry["code"] = self.status_sent

    def control(self, method, path, q, body):
        """Test hooks (no auth): see README.md, "Test control"."""
        if path == "/_test/compact" and method == "POST":
            return self.send_json(200, {"resourceVersion": str(STORE.compact())})
        if path == "/_test/close-watches" and method == "POST":
            with STORE.cond:
                STORE.watch_epoch += 1
                STORE.cond.notify_all()
            return self.send_json(200, {"closed": True})
        if path == "/_test/state":
            with STORE.cond:
                return self.send_json(200, {"resourceVersion": str(STORE.rv),
                                            "floor": str(STORE.floor),
                                            "history": len(STORE.history),
                                            "watchers": STORE.watchers})
        if path == "/_test/tokens" and method in ("POST", "PUT"):
            toks = self.json_body(body).get("tokens", [])
            with CONTROL_LOCK:
                TOKENS.clear()
                TOKENS.update(toks)
            return self.send_json(200, {"tokens": len(toks)})
        if path == "/_test/requests":
            if method == "DELETE":
                with CONTROL_LOCK:
                    REQUEST_LOG.clear()
                return self.send_json(200, {})
            since = int(q.get("since", "0"))
            with CONTROL_LOCK:
                return self.send_json(200, [r for r in REQUEST_LOG if r["seq"] > since])
        if path == "/_test/faults":
            with CONTROL_LOCK:
                if method == "DELETE":
                    FAULTS.clear()
                elif method == "POST":
                    f = self.json_body(body)
                    FAULTS.extend(f if isinstance(f, list) else [f])
                return self.send_json(200, FAULTS)
        raise ApiError(404, "NotFound", "unknown test hook %s %s" % (method, path))

    def route(self, method, path):
        """(res, ns, name, subresource, watch_path) or None for a resource path."""
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            gv, rest = "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            gv, rest = parts[1] + "/" + parts[2], parts[3:]
        else:
            return None
        table = RES_BY_GV.get(gv)
        if table is None or not rest:
            return None
        watch_path = False
        if rest[0] == "watch":  # deprecated /watch/ paths
            watch_path, rest = True, rest[1:]
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in table and \
                table[rest[2]].namespaced:
            ns, rest = rest[1], rest[2:]
        if not rest or rest[0] not in table:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = table[rest[0]]
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and (sub != "status" or not res.status)):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if res.namespaced and name is not None and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return res, ns, name, sub, watch_path

    def api(self, method, path, q, body):
        accept = self.headers.get("Accept") or ""
        if path == "/version":
            return self.send_json(200, {"major": "1", "minor": "32", "gitVersion": "v1.32.4",
                                        "gitCommit": "kubeapi-test-double",
                                        "gitTreeState": "clean",
                                        "buildDate": "2026-01-01T00:00:00Z",
                                        "goVersion": "go1.23", "compiler": "gc",
                                        "platform": "linux/amd64"})
        if path in ("/api", "/apis"):
            agg = wants_aggregated(accept)
            if agg:
                names = [""] if path == "/api" else list(groups())
                return self.send_json(200, aggregated(names, "apidiscovery.k8s.io/" + agg),
                                      "application/json;g=apidiscovery.k8s.io;v=%s;"
                                      "as=APIGroupDiscoveryList" % agg)
            if path == "/api":
                host = self.headers.get("Host") or "127.0.0.1"
                return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                            "serverAddressByClientCIDRs": [
                                                {"clientCIDR": "0.0.0.0/0",
                                                 "serverAddress": host}]})
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": g + "/" + v, "version": v}
                                         for v in vs],
                 "preferredVersion": {"groupVersion": g + "/" + vs[0], "version": vs[0]}}
                for g, vs in groups().items()]})
        if path == "/api/v1":
            return self.send_json(200, resource_list("v1"))
        parts = path.strip("/").split("/")
        if parts[0] == "apis" and len(parts) == 2 and parts[1] in groups():
            vs = groups()[parts[1]]
            return self.send_json(200, {"kind": "APIGroup", "apiVersion": "v1", "name": parts[1],
                                        "versions": [{"groupVersion": parts[1] + "/" + v,
                                                      "version": v} for v in vs],
                                        "preferredVersion": {"groupVersion": parts[1] + "/" +
                                                             vs[0], "version": vs[0]}})
        if parts[0] == "apis" and len(parts) == 3 and parts[1] + "/" + parts[2] in RES_BY_GV:
            return self.send_json(200, resource_list(parts[1] + "/" + parts[2]))
        if path.startswith("/openapi/"):
            raise ApiError(404, "NotFound", "OpenAPI documents are not served by this test double "
                           "(use kubectl --validate=false)")
        target = self.route(method, path)
        if target is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        authorize(self.request_user, method, q, target)
        res, ns, name, sub, watch_path = target
        dry = q.get("dryRun") == "All"
        if method == "GET" and name is None:
            if watch_path or q.get("watch") in ("true", "1"):
                return self.watch(res, ns, q)
            return self.send_json(200, self.list(res, ns, q))
        if method == "GET" and watch_path:
            # /watch/namespaces/ns/pods/name: a watch on one object.
            q = dict(q)
            q["fieldSelector"] = ",".join(x for x in (q.get("fieldSelector"),
                                                      "metadata.name=" + name) if x)
            return self.watch(res, ns, q)
        if method == "GET":
            with STORE.cond:
                return self.send_json(200, copy.deepcopy(STORE.get(res, ns, name)))
        if method == "POST" and name is None:
            return self.send_json(201, do_create(res, ns, self.json_body(body), dry))
        if method == "PUT" and name is not None:
            return self.send_json(200, do_update(res, ns, name, self.json_body(body), sub,
                                                 res.crd, dry))
        if method == "PATCH" and name is not None:
            return self.send_json(200, do_patch(res, ns, name, self.headers.get("Content-Type"),
                                                body, sub, dry))
        if method == "DELETE" and name is not None and sub is None:
            return self.send_json(200, do_delete(res, ns, name, delete_options(q, body)))
        if method == "DELETE" and name is None:
            return self.delete_collection(res, ns, q, body)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                       "requested resource")

    # -- reads --

    def selectors(self, res, q):
        return LabelSelector(q.get("labelSelector")), FieldSelector(q.get("fieldSelector"), res)

    def match(self, res, ns, ls, fs, obj):
        if res.namespaced and ns is not None and obj["metadata"].get("namespace") != ns:
            return False
        return ls.matches(obj["metadata"].get("labels")) and fs.matches(obj)

    def list(self, res, ns, q):
        ls, fs = self.selectors(res, q)
        limit = int(q.get("limit") or 0)
        cont = q.get("continue") or ""
        with STORE.cond:
            rv_param = q.get("resourceVersion") or ""
            if q.get("resourceVersionMatch") == "Exact" and rv_param:
                if int(rv_param) < STORE.floor:
                    raise ApiError(410, "Expired", "The resourceVersion for the provided list is "
                                   "too old.")
            if cont:
                try:
                    tok = json.loads(base64.urlsafe_b64decode(cont.encode()).decode())
                    list_rv, start = int(tok["rv"]), tok["start"]
                except Exception:
                    raise bad_request("continue key is not valid")
                snap = CONTINUE_SNAPSHOTS.get(tok.get("id"))
                if list_rv < STORE.floor or snap is None:
                    raise ApiError(410, "Expired", "The provided continue parameter is too old to "
                                   "display a consistent list result. You can start a new list "
                                   "without the continue parameter.")
                items = [o for o in snap if [o["metadata"].get("namespace") or "",
                                             o["metadata"]["name"]] > start]
                snap_id = tok["id"]
            else:
                list_rv = STORE.rv
                items = [copy.deepcopy(o) for o in STORE.objs[res.key].values()
                         if self.match(res, ns, ls, fs, o)]
                items.sort(key=lambda o: (o["metadata"].get("namespace") or "",
                                          o["metadata"]["name"]))
                snap_id = None
            md = {"resourceVersion": str(list_rv)}
            if limit > 0 and len(items) > limit:
                # A consistent paginated list: the rest is served from a
                # snapshot taken now, valid until the history moves past it.
                if snap_id is None:
                    snap_id = uuid.uuid4().hex
                    CONTINUE_SNAPSHOTS[snap_id] = items
                last = items[limit - 1]["metadata"]
                md["continue"] = base64.urlsafe_b64encode(json.dumps(
                    {"rv": list_rv, "id": snap_id,
                     "start": [last.get("namespace") or "", last["name"]]}).encode()).decode()
                md["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            return {"kind": res.kind + "List", "apiVersion": res.gv, "metadata": md,
                    "items": items}

    def delete_collection(self, res, ns, q, body):
        lst = self.list(res, ns, {k: v for k, v in q.items() if k in ("labelSelector",
                                                                          "fieldSelector")})
        opts = delete_options(q, body)
        for o in lst["items"]:
            try:
                do_delete(res, o["metadata"].get("namespace"), o["metadata"]["name"], opts)
            except ApiError:
                pass
        lst["metadata"]["resourceVersion"] = str(STORE.rv)
        return self.send_json(200, lst)

    # -- watch --

    def chunk(self, obj):
        data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            raise WatchClosed()

    def watch(self, res, ns, q):
        ls, fs = self.selectors(res, q)
        bookmarks = q.get("allowWatchBookmarks") in ("true", "1")
        initial_events = q.get("sendInitialEvents") == "true"
        rv_param = q.get("resourceVersion") or ""
        if "timeoutSeconds" in q:
            try:
                timeout = int(q["timeoutSeconds"])
            except ValueError:
                raise bad_request("invalid timeoutSeconds")
        else:
            # The real server picks minRequestTimeout * [1, 2).
            timeout = ARGS.min_request_timeout * (1 + random.random())
        if rv_param and not rv_param.isdigit():
            raise bad_request("invalid resourceVersion %r" % rv_param)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.status_sent = 200
        initial = []
        with STORE.cond:
            STORE.watchers += 1
            epoch = STORE.watch_epoch
            if rv_param in ("", "0") or initial_events:
                # No resourceVersion ("most recent") or 0 ("any"): the
                # current state first, as synthetic ADDED events.
                pos = STORE.rv
                objs = sorted(STORE.objs[res.key].values(),
                              key=lambda o: (o["metadata"].get("namespace") or "",
                                             o["metadata"]["name"]))
                initial = [copy.deepcopy(o) for o in objs if self.match(res, ns, ls, fs, o)]
            else:
                pos = int(rv_param)
                if pos < STORE.floor:
                    STORE.watchers -= 1
                    gone = (pos, STORE.floor)
                    pos = None
        try:
            if pos is None:
                self.chunk({"type": "ERROR", "object": status_obj(
                    410, "Expired", "too old resource version: %d (%d)" % gone)})
                return self.end_chunks()
            for o in initial:
                self.chunk({"type": "ADDED", "object": o})
            if initial_events and bookmarks:
                self.chunk(self.bookmark(res, pos, {"k8s.io/initial-events-end": "true"}))
            deadline = time.time() + timeout
            next_bm = time.time() + ARGS.bookmark_interval
            while True:
                with STORE.cond:
                    while True:
                        now = time.time()
                        if STORE.closing or STORE.watch_epoch != epoch or STORE.rv != pos:
                            break
                        wake = min(deadline, next_bm if bookmarks else deadline)
                        if now >= wake:
                            break
                        STORE.cond.wait(wake - now)
                    if STORE.closing or STORE.watch_epoch != epoch:
                        break
                    evs = STORE.events_after(pos)
                    cur = STORE.rv
                    floor = STORE.floor
                if evs is None:
                    # This watcher fell behind the retained history (the
                    # real cacher closes too-slow watchers the same way).
                    self.chunk({"type": "ERROR", "object": status_obj(
                        410, "Expired", "too old resource version: %d (%d)" % (pos, floor))})
                    break
                for ev in evs:
                    out = self.translate(res, ns, ls, fs, ev)
                    if out is not None:
                        self.chunk(out)
                pos = cur
                now = time.time()
                if now >= deadline:
                    break
                if bookmarks and now >= next_bm:
                    self.chunk(self.bookmark(res, pos))
                    next_bm = now + ARGS.bookmark_interval
            self.end_chunks()
        finally:
            if pos is not None:
                with STORE.cond:
                    STORE.watchers -= 1

    def end_chunks(self):
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            raise WatchClosed()

    @staticmethod
    def bookmark(res, rv, annotations=None):
        md = {"resourceVersion": str(rv)}
        if annotations:
            md["annotations"] = annotations
        return {"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.gv,
                                               "metadata": md}}

    def translate(self, res, ns, ls, fs, ev):
        """One stored event as this watcher sees it (the cacher's rules):
        an object that starts matching the filter is ADDED, one that stops
        matching is DELETED (its previous state at the event's rv)."""
        if ev.res != res.key:
            return None
        cur = self.match(res, ns, ls, fs, ev.obj)
        if ev.type == "DELETED":
            return {"type": "DELETED", "object": ev.obj} if cur else None
        was = ev.old is not None and self.match(res, ns, ls, fs, ev.old)
        if cur and was:
            return {"type": "MODIFIED", "object": ev.obj}
        if cur:
            return {"type": "ADDED", "object": ev.obj}
        if was:
            prev = copy.deepcopy(ev.old)
            prev["metadata"]["resourceVersion"] = str(ev.rv)
            return {"type": "DELETED", "object": prev}
        return None


CONTINUE_SNAPSHOTS = {}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    ssl_ctx = None

    def finish_request(self, request, client_address):
        # TLS handshakes run in the connection's own thread, so one slow
        # client cannot stall accept().
        if self.ssl_ctx is not None:
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                if ARGS.verbose:
                    sys.stderr.write("kubeapi: TLS handshake failed: %s\n" % e)
                return
        Handler(request, client_address, self)


def write_kubeconfig(path, server, args):
    user = {}
    if args.kubeconfig_token:
        user["token"] = args.kubeconfig_token
    if args.kubeconfig_client_cert:
        user["client-certificate"] = os.path.abspath(args.kubeconfig_client_cert)
        user["client-key"] = os.path.abspath(args.kubeconfig_client_key)
    cluster = {"server": server}
    if args.tls_cert:
        cluster["certificate-authority"] = os.path.abspath(args.kubeconfig_ca or args.tls_cert)
    lines = ["apiVersion: v1", "kind: Config", "clusters:", "- name: kubeapi", "  cluster:"]
    lines += ["    %s: %s" % (k, json.dumps(v)) for k, v in cluster.items()]
    lines += ["users:", "- name: tester", "  user:" + ("" if user else " {}")]
    lines += ["    %s: %s" % (k, json.dumps(v)) for k, v in user.items()]
    lines += ["contexts:", "- name: kubeapi", "  context:", "    cluster: kubeapi",
              "    user: tester", "    namespace: %s" % args.kubeconfig_namespace,
              "current-context: kubeapi", ""]
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines))
    os.replace(tmp, path)


def main():
    global STORE, ARGS
    p = argparse.ArgumentParser(description="Kubernetes API server test double (README.md)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = any free port")
    p.add_argument("--port-file", help="write the bound port here once listening")
    p.add_argument("--history", type=int, default=1000,
                   help="events kept for watches; older resourceVersions get 410 Expired")
    p.add_argument("--bookmark-interval", type=float, default=1.0,
                   help="seconds between BOOKMARK events on watches that allow them")
    p.add_argument("--min-request-timeout", type=float, default=1800.0,
                   help="watches without timeoutSeconds last this times [1, 2) seconds")
    p.add_argument("--token", action="append", default=[],
                   help="accepted bearer token (repeatable); none = no authentication")
    p.add_argument("--token-user", action="append", default=[],
                   help="TOKEN=system:serviceaccount:NS:NAME: a token whose requests RBAC "
                        "authorizes (repeatable)")
    p.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", help="key of --tls-cert")
    p.add_argument("--client-ca", help="accept client certificates signed by this CA")
    p.add_argument("--kubeconfig", help="write a kubeconfig for this server here")
    p.add_argument("--kubeconfig-token", help="token written into --kubeconfig")
    p.add_argument("--kubeconfig-client-cert", help="client certificate for --kubeconfig")
    p.add_argument("--kubeconfig-client-key", help="client key for --kubeconfig")
    p.add_argument("--kubeconfig-ca", help="CA for --kubeconfig (default: --tls-cert)")
    p.add_argument("--kubeconfig-namespace", default="default")
    p.add_argument("--verbose", action="store_true")
    ARGS = p.parse_args()
    STORE = Store(max(1, ARGS.history))
    TOKENS.update(ARGS.token)
    for tu in ARGS.token_user:
        tok, _, user = tu.partition("=")
        TOKEN_USERS[tok] = user
    if ARGS.kubeconfig and ARGS.kubeconfig_token is None and ARGS.token:
        ARGS.kubeconfig_token = ARGS.token[0]

    srv = Server((ARGS.host, ARGS.port), Handler)
    scheme = "http"
    if ARGS.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        if ARGS.client_ca:
            ctx.load_verify_locations(ARGS.client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
        srv.ssl_ctx = ctx
        scheme = "https"
    port = srv.server_address[1]
    server_url = "%s://%s:%d" % (scheme, ARGS.host, port)
    if ARGS.kubeconfig:
        write_kubeconfig(ARGS.kubeconfig, server_url, ARGS)
    threading.Thread(target=kubelet_loop, daemon=True).start()

    def on_term(signo, frame):
        with STORE.cond:
            STORE.closing = True
            STORE.cond.notify_all()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if ARGS.port_file:
        with open(ARGS.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.replace(ARGS.port_file + ".tmp", ARGS.port_file)
    sys.stderr.write("kubeapi: listening on %s (history %d events)\n" % (server_url, ARGS.history))
    sys.stderr.flush()
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
