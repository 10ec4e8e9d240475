"""A small Iceberg REST catalog for the tests, backed by pyiceberg's SqlCatalog.

No Iceberg REST server installs here (they ship as containers), so this one implements the endpoints that
pyiceberg's `RestCatalog` calls, with what the sidecar must cope with: a bearer token or SigV4 signatures
checked on every request, and faults on demand (a 409 conflict, or "committed, then 500"). It is not a
conformance-tested server; acceptance against real R2 / S3 Tables is a separate, manual step.
"""

from __future__ import annotations

import collections
import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import CommitTableRequest, Table
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortOrder

NAMESPACES = re.compile(r"^/v1/namespaces$")
NAMESPACE = re.compile(r"^/v1/namespaces/(?P<ns>[^/]+)$")
TABLES = re.compile(r"^/v1/namespaces/(?P<ns>[^/]+)/tables$")
TABLE = re.compile(r"^/v1/namespaces/(?P<ns>[^/]+)/tables/(?P<table>[^/]+)$")


class HttpError(Exception):
    def __init__(self, code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.code, self.kind = code, kind


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


def sigv4_valid(request: Received, host: str, credentials: Credentials, service: str, region: str) -> bool:
    """Recompute the signature over exactly the signed headers, at the request's own timestamp."""
    auth = request.headers.get("Authorization", "")
    match = re.match(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)"
                     r"/aws4_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$", auth)
    if match is None or (match["key"], match["region"], match["service"]) != (credentials.access_key, region, service):
        return False
    lowered = {k.lower(): v for k, v in request.headers.items()}
    signed = {name: lowered[name] for name in match["signed"].split(";") if name in lowered}
    params = dict(urllib.parse.parse_qsl(request.query))
    aws = AWSRequest(method=request.method, url=f"http://{host}{request.path}", params=params,
                     data=request.body or None, headers=signed)
    aws.context["timestamp"] = lowered.get("x-amz-date", "")
    signer = SigV4Auth(credentials, service, region)
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    return expected == match["signature"]


@dataclass
class RestCatalogServer:
    """Serve `catalog` on 127.0.0.1; `token` or `sigv4` (credentials, service, region) guards every request."""

    catalog: SqlCatalog
    token: str | None = None
    sigv4: tuple[Credentials, str, str] | None = None
    faults: collections.deque[str] = field(default_factory=collections.deque)
    requests: list[Received] = field(default_factory=list)
    commits: collections.Counter[str] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.uri = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, name="rest-catalog", daemon=True)
        self._thread.start()

    def inject(self, *faults: str) -> None:
        """Faults for the next table commits: "conflict" (409, nothing applied) or "lost" (applied, then 500)."""
        self.faults.extend(faults)

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    # -- request handling -------------------------------------------------------------------------------------

    def _authorize(self, request: Received) -> None:
        if self.token is not None and request.headers.get("Authorization") != f"Bearer {self.token}":
            raise HttpError(401, "NotAuthorizedException", "missing or wrong bearer token")
        if self.sigv4 is not None:
            host = self.uri.removeprefix("http://")
            if not sigv4_valid(request, host, *self.sigv4):
                raise HttpError(403, "ForbiddenException", "SigV4 signature does not match")

    def _load(self, ns: str, table: str) -> Table:
        try:
            return self.catalog.load_table((ns, table))
        except NoSuchTableError as exc:
            raise HttpError(404, "NoSuchTableException", str(exc)) from None

    @staticmethod
    def _table_result(table: Table) -> dict[str, Any]:
        return {"metadata-location": table.metadata_location, "metadata": json.loads(table.metadata.model_dump_json()),
                "config": {}}

    def route(self, request: Received) -> tuple[int, dict[str, Any] | None]:
        self._authorize(request)
        method, path = request.method, request.path
        body = json.loads(request.body) if request.body else {}
        with self._lock:  # SQLite behind it: one catalog operation at a time
            if path == "/v1/config" and method == "GET":
                return 200, {"defaults": {}, "overrides": {}}
            if NAMESPACES.match(path):
                if method == "GET":
                    return 200, {"namespaces": [list(ns) for ns in self.catalog.list_namespaces()]}
                try:
                    self.catalog.create_namespace(tuple(body["namespace"]), body.get("properties") or {})
                except NamespaceAlreadyExistsError as exc:
                    raise HttpError(409, "AlreadyExistsException", str(exc)) from None
                return 200, {"namespace": body["namespace"], "properties": body.get("properties") or {}}
            if m := NAMESPACE.match(path):
                ns = urllib.parse.unquote(m["ns"])
                try:
                    properties = self.catalog.load_namespace_properties(ns)
                except NoSuchNamespaceError as exc:
                    raise HttpError(404, "NoSuchNamespaceException", str(exc)) from None
                return 200, {"namespace": [ns], "properties": properties}
            if m := TABLES.match(path):
                ns = urllib.parse.unquote(m["ns"])
                if method == "GET":
                    return 200, {"identifiers": [{"namespace": [ns], "name": t[-1]}
                                                 for t in self.catalog.list_tables(ns)]}
                spec = body.get("partition-spec")
                order = body.get("write-order")
                try:
                    table = self.catalog.create_table(
                        (ns, body["name"]), Schema.model_validate(body["schema"]), location=body.get("location"),
                        partition_spec=PartitionSpec.model_validate(spec) if spec else UNPARTITIONED_PARTITION_SPEC,
                        sort_order=SortOrder.model_validate(order) if order else UNSORTED_SORT_ORDER,
                        properties=body.get("properties") or {})
                except TableAlreadyExistsError as exc:
                    raise HttpError(409, "AlreadyExistsException", str(exc)) from None
                return 200, self._table_result(table)
            if m := TABLE.match(path):
                ns, name = urllib.parse.unquote(m["ns"]), urllib.parse.unquote(m["table"])
                table = self._load(ns, name)
                if method in ("GET", "HEAD"):
                    return (204, None) if method == "HEAD" else (200, self._table_result(table))
                return self._commit(table, name, body)
        raise HttpError(404, "NotFoundException", f"no route for {method} {path}")

    def _commit(self, table: Table, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        commit = CommitTableRequest.model_validate(body)
        fault = self.faults.popleft() if self.faults else None
        if fault == "conflict":
            raise HttpError(409, "CommitFailedException", "injected conflict")
        try:
            response = self.catalog.commit_table(table, commit.requirements, commit.updates)
        except CommitFailedException as exc:
            raise HttpError(409, "CommitFailedException", str(exc)) from None
        self.commits[name] += 1
        if fault == "lost":
            raise HttpError(500, "ServerError", "injected: the commit was applied but the response is lost")
        return 200, json.loads(response.model_dump_json())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(self.command, url.path, url.query, dict(self.headers.items()),
                                   self.rfile.read(length) if length else b"")
                server.requests.append(request)
                try:
                    code, payload = server.route(request)
                except HttpError as exc:
                    code, payload = exc.code, {"error": {"message": str(exc), "type": exc.kind, "code": exc.code}}
                except Exception as exc:  # a bug here must show up as a failure, not a hang
                    code, payload = 500, {"error": {"message": repr(exc), "type": "ServerError", "code": 500}}
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_HEAD = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests assert on `requests` instead."""

        return Handler
