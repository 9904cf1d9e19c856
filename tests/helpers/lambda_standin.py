"""A local stand-in for AWS Lambda's Invoke API that runs the packaged handlers, for aws-mode tests.

`POST /2015-03-31/functions/{name}/invocations` (RequestResponse) runs the function's handler in a fresh
interpreter (a cold start per invocation) that sees only the unzipped host build of its zip (`fraud package
--target host`: the deployable zip's code and pruning, with this interpreter's distributions, since the python3.12
wheels of the Lambda build cannot load here) plus the AWS SDK the managed runtime provides, with the function's
environment. As Lambda does: `X-Amz-Log-Type: Tail` returns the last 4 KB of the invocation's log (stdout and
stderr, between START and END/REPORT lines) base64-encoded in `X-Amz-Log-Result`, and an exception answers 200
with `X-Amz-Function-Error: Unhandled` and an `errorMessage` payload. Every invocation is recorded (function name,
event) for assertions."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

LOG_TAIL_BYTES = 4096
INVOKE_PREFIX = "/2015-03-31/functions/"

# The function's process: sys.path = the unzipped code (like /var/task), then the runtime's SDK (like
# /var/runtime); -I -S: no PYTHON* variables, no site-packages (not the project's .venv); -B: no .pyc writes.
RUNNER = textwrap.dedent("""
    import importlib, json, sys, traceback
    sys.path[:0] = json.loads(sys.argv[1])
    module, name = sys.argv[2].rsplit(".", 1)
    event = json.loads(sys.stdin.read())
    try:
        payload, failed = getattr(importlib.import_module(module), name)(event, None), False
        text = json.dumps(payload)
    except Exception as error:
        traceback.print_exc()
        failed = True
        text = json.dumps({"errorMessage": str(error), "errorType": type(error).__name__,
                           "stackTrace": traceback.format_exception(error)})
    sys.stdout.flush()
    sys.stderr.flush()
    with open(sys.argv[3], "w") as out:
        json.dump({"payload": text, "failed": failed}, out)
""")


@dataclass
class Invocation:
    function: str
    event: dict
    failed: bool
    log: str
    seconds: float


def host_function_folder(function: str, into: Path) -> Path:
    """The host build of `lambda-<function>.zip` (built or reused in dist/host/), unzipped into `into`."""
    from fraud.app.packaging import DIST_DIR, HOST, build_function

    build = build_function(function, DIST_DIR, target=HOST)
    with zipfile.ZipFile(build.file) as archive:
        archive.extractall(into)
    return into


def runtime_sdk_path() -> list[Path]:
    """The AWS SDK as the managed runtime provides it (boto3 is not shipped in the zips): boto3 and its
    dependencies, each staged alone from this virtualenv, so nothing else of the .venv becomes importable."""
    from fraud.app.packaging import HOST
    from fraud.app.packaging.build import staged_distribution
    from fraud.app.packaging.targets import CACHE_DIR
    from fraud.app.packaging.wheels import resolve_distributions, third_party

    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return [staged_distribution(third_party(d, HOST), HOST, CACHE_DIR) for d in resolve_distributions(("boto3",), HOST)]


class LambdaStandIn:
    """`functions`: name -> (unzipped folder, handler as `module.function`); `environment`: every function's
    variables (the FRAUD_* settings and the AWS credentials for moto)."""

    def __init__(
        self,
        functions: dict[str, tuple[Path, str]],
        environment: dict[str, str],
        timeout: float = 300,
    ):
        self.functions = functions
        self.environment = environment
        self.timeout = timeout
        self.invocations: list[Invocation] = []
        self.runtime = runtime_sdk_path()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LambdaStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def invoked(self, function: str) -> list[Invocation]:
        return [i for i in self.invocations if i.function == function]

    def run(self, function: str, event_bytes: bytes) -> tuple[bytes, bool, str]:
        """(payload, failed, log) of one invocation, recorded."""
        folder, handler = self.functions[function]
        request_id = str(uuid.uuid4())
        began = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="lambda-standin-") as tmp:
            out = Path(tmp) / "result.json"
            paths = json.dumps([str(folder), *map(str, self.runtime)])
            process = subprocess.run(
                [sys.executable, "-I", "-S", "-B", "-c", RUNNER, paths, handler, str(out)],
                input=event_bytes,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.environment,
                cwd=tmp,
                timeout=self.timeout,
            )
            output = process.stdout.decode(errors="replace")
            if out.exists():
                result = json.loads(out.read_text())
                payload, failed = result["payload"].encode(), result["failed"]
            else:  # the interpreter died (Lambda's Runtime.ExitError)
                message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {process.returncode}"
                payload, failed = json.dumps({"errorMessage": message, "errorType": "Runtime.ExitError"}).encode(), True
        seconds = time.perf_counter() - began
        log = (
            f"START RequestId: {request_id} Version: $LATEST\n{output}"
            f"END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {seconds * 1000:.2f} ms\n"
        )
        self.invocations.append(Invocation(function, json.loads(event_bytes or b"{}"), failed, log, seconds))
        return payload, failed, log

    def _handler_class(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802  (http.server's naming)
                path = self.path.split("?")[0]
                if not (path.startswith(INVOKE_PREFIX) and path.endswith("/invocations")):
                    return self._reply(
                        404, {"message": f"no such API: {path}"}, {"x-amzn-ErrorType": "UnknownOperation"}
                    )
                name = unquote(path[len(INVOKE_PREFIX) : -len("/invocations")]).split(":function:")[-1]
                if name not in standin.functions:
                    message = f"Function not found: {name}"
                    return self._reply(
                        404, {"Type": "User", "message": message}, {"x-amzn-ErrorType": "ResourceNotFoundException"}
                    )
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                payload, failed, log = standin.run(name, body)
                headers = {"X-Amz-Executed-Version": "$LATEST"}
                if self.headers.get("X-Amz-Log-Type") == "Tail":
                    headers["X-Amz-Log-Result"] = base64.b64encode(log.encode()[-LOG_TAIL_BYTES:]).decode()
                if failed:
                    headers["X-Amz-Function-Error"] = "Unhandled"
                self._reply(200, payload, headers)

            def _reply(self, status: int, body, headers: dict[str, str]) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:  # quiet
                pass

        return Handler


def pipes_event(event: dict, asset_key: str) -> dict:
    """`event` as PipesLambdaClient sends it: with the Pipes bootstrap parameters of a one-asset step and the
    messages asked for on buffered stderr (what PipesLambdaLogsMessageReader reads from the log tail)."""
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, DAGSTER_PIPES_MESSAGES_ENV_VAR, encode_param

    data = {
        "asset_keys": [asset_key],
        "code_version_by_asset_key": None,
        "provenance_by_asset_key": None,
        "partition_key": None,
        "partition_key_range": None,
        "partition_time_window": None,
        "run_id": "test-run",
        "job_name": None,
        "retry_number": 0,
        "extras": {},
    }
    return {
        **event,
        DAGSTER_PIPES_CONTEXT_ENV_VAR: encode_param({"data": data}),
        DAGSTER_PIPES_MESSAGES_ENV_VAR: encode_param({"buffered_stdio": "stderr"}),
    }


def pipes_messages(log: str) -> list[dict]:
    """The Pipes messages among a log's lines."""
    return [json.loads(line) for line in log.splitlines() if line.startswith("{") and "__dagster_pipes_version" in line]
