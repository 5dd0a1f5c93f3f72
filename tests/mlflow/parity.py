"""Differential testing against the real `mlflow server`.

A scenario is a function of a `Session`: it makes calls through the
official client (or plain HTTP) and records what each returns or the error
it raises. The same scenario runs against the reference server and against
`weft server`; the two transcripts must be equal once what legitimately
differs between two servers is normalised: ids (numbered in the order they
first appear), timestamps, and the server's own address.

Every difference that remains and is accepted on purpose is listed in
`ACCEPTED` with its reason, and in the README's MLflow section.
"""
import difflib
import pprint
import re
import uuid

import requests
from google.protobuf.json_format import MessageToDict
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

# Keys whose values are times: only their presence (and order, where a
# scenario sorts by them) is compared.
TIME_KEYS = {
    "creation_time",
    "last_update_time",
    "start_time",
    "end_time",
    "timestamp",
    "creation_timestamp",
    "last_updated_timestamp",
    "deleted_time",
    "last_updated",
    "creation_timestamp_ms",
    "last_updated_timestamp_ms",
}
# Keys whose values are server-assigned ids: compared by first appearance.
# A run name the server made up (adjective-noun-number).
GENERATED_NAME = re.compile(r"[a-z]+-[a-z]+-[0-9]{1,3}")
ID_KEYS = {"experiment_id", "run_id", "run_uuid", "model_id", "source_run_id"}


class Session:
    """One side of a differential test: a client and a transcript."""

    def __init__(self, url, prefix):
        self.url = url.rstrip("/")
        self.client = MlflowClient(tracking_uri=self.url, registry_uri=self.url)
        # Names are unique per test: the reference server is shared.
        self.prefix = prefix
        self.transcript = []

    def name(self, text):
        return f"{self.prefix}-{text}"

    def call(self, label, fn, *args, **kwargs):
        """Calls `fn` and records its result or its error code."""
        try:
            value = fn(*args, **kwargs)
        except MlflowException as e:
            self.transcript.append((label, "error", e.error_code))
            return None
        if getattr(fn, "__name__", "") == "create_experiment":
            # A bare id: mark it as one.
            self.transcript.append((label, "ok", {"experiment_id": value}))
        elif isinstance(value, str) and ":/" in value:
            # A bare URI: its ids are normalised like an artifact URI's.
            self.transcript.append((label, "ok", {"uri": value}))
        else:
            self.transcript.append((label, "ok", plain(value)))
        return value

    def http(self, label, method, path, **kwargs):
        """A raw request; records the status and the JSON body (or its
        error code)."""
        resp = requests.request(method, self.url + path, timeout=30, **kwargs)
        try:
            body = resp.json()
        except ValueError:
            body = None
        if resp.status_code >= 400:
            code = body.get("error_code") if isinstance(body, dict) else None
            self.transcript.append((label, resp.status_code, code))
        else:
            self.transcript.append((label, resp.status_code, body))
        return resp

    def note(self, label, value):
        """Records a value computed by the scenario itself."""
        self.transcript.append((label, "value", plain(value)))


def plain(value):
    """An entity, list or page as plain data."""
    if hasattr(value, "to_proto"):
        return MessageToDict(value.to_proto(), preserving_proto_field_name=True)
    if hasattr(value, "token") and isinstance(value, list):
        return {"items": [plain(v) for v in value], "has_next_page": bool(value.token)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


class Normaliser:
    def __init__(self, url, prefix):
        self.url = url.rstrip("/")
        self.prefix = prefix
        self.ids = {}

    def id(self, value):
        if value in (None, "", "0"):
            return value
        return self.ids.setdefault(str(value), f"<id{len(self.ids) + 1}>")

    def text(self, value):
        if GENERATED_NAME.fullmatch(value):
            return "<generated name>"
        value = value.replace(self.url, "<server>").replace(self.prefix, "<p>")
        for raw, placeholder in sorted(self.ids.items(), key=lambda kv: -len(kv[0])):
            if len(raw) >= 1 and raw.isdigit() and len(raw) < 4:
                continue  # short numbers are replaced only as whole values
            value = value.replace(raw, placeholder)
        return value

    def __call__(self, value, key=None):
        if isinstance(value, dict):
            return {k: self(v, k) for k, v in sorted(value.items())}
        if isinstance(value, list):
            items = [self(v, key) for v in value]
            if items and all(isinstance(i, dict) and "key" in i for i in items):
                # Tags, params and latest metrics are mappings sent as
                # lists: their order means nothing (a stable sort keeps
                # the order of points of one metric).
                items.sort(key=lambda i: str(i["key"]))
            return items
        if key in TIME_KEYS:
            return "<time>" if value not in (None, "", 0, "0") else value
        if key in ID_KEYS:
            return self.id(value)
        if key in {"artifact_location", "artifact_uri", "source", "storage_location", "uri", "mlflow.artifactLocation"} and isinstance(value, str):
            return self.artifact_uri(value)
        if isinstance(value, str):
            return self.text(value)
        return value

    def artifact_uri(self, value):
        # mlflow-artifacts:/<experiment>[/<run>/artifacts]
        parts = value.split("/")
        out = []
        for part in parts:
            if part in self.ids:
                out.append(self.ids[part])
            elif part.isdigit() or (len(part) == 32 and all(c in "0123456789abcdef" for c in part)) or part.startswith("m-"):
                out.append(self.id(part))
            else:
                out.append(part)
        return self.text("/".join(out))


def compare(scenario, reference_url, weft_url, accepted=()):
    """Runs `scenario` on both servers and fails with the differences."""
    prefix = f"p{uuid.uuid4().hex[:10]}"
    sides = {}
    for side, url in (("mlflow", reference_url), ("weft", weft_url)):
        session = Session(url, prefix)
        scenario(session)
        normalise = Normaliser(url, prefix)
        sides[side] = [tuple(normalise(list(entry))) for entry in session.transcript]
    ref, ours = sides["mlflow"], sides["weft"]
    differences = []
    for i in range(max(len(ref), len(ours))):
        a = ref[i] if i < len(ref) else None
        b = ours[i] if i < len(ours) else None
        if a != b and not any(rule(a, b) for rule in accepted):
            diff = difflib.unified_diff(
                pprint.pformat(a, width=100).splitlines(),
                pprint.pformat(b, width=100).splitlines(),
                "mlflow",
                "weft",
                lineterm="",
                n=1,
            )
            differences.append(f"#{i} {a[0] if a else b[0]}:\n" + "\n".join(diff))
    assert not differences, "weft differs from mlflow server:\n" + "\n".join(differences)
    return ref
