"""`glmtui serve`'s gate, against real serve processes on random loopback ports: the token on
every endpoint (also on loopback), a flood of 1,000 unauthenticated requests that changes
nothing, token rotation without a restart, the Host header (DNS rebinding), CORS only when
configured, body size and JSON errors, binding beyond loopback (TLS with certificates made
here, or --insecure-bind with its warning), and no traceback reaching a client."""

from __future__ import annotations

import re
import ssl
import stat
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest

import helpers
from serve_helpers import Serve, database_counts

from glmtui.server.api import ENDPOINTS, PREFIX

pytestmark = pytest.mark.docker


@pytest.fixture
def serve(tmp_path, busybox_image):
    started: list[Serve] = []

    def start(*args: str, folder=None, **options) -> Serve:
        server = Serve(folder or tmp_path / f"serve{len(started)}", *args, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def _concrete(path: str) -> str:
    return re.sub(r"{[a-z_]+}", "x", path)


def test_every_endpoint_but_health_and_hooks_needs_the_token_and_a_flood_changes_nothing(serve, busybox_image):
    server = serve()
    server.plan("hello", (helpers.PROJECT_ROOT / "plans" / "hello.yaml").read_text())
    with server.client() as client:
        assert client.get("/runs").json() == {"runs": []}
    before = database_counts(server)
    env = helpers.unique_name()

    anonymous = httpx.Client(base_url=server.url + PREFIX, timeout=30)
    health = anonymous.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    wrong = "glmtui_wrong-token-that-must-not-be-logged"
    for ep in ENDPOINTS:
        if ep.public:
            continue
        for headers in ({}, {"Authorization": f"Bearer {wrong}"}, {"Authorization": "Basic abc"}):
            answer = anonymous.request(ep.method, _concrete(ep.path), headers=headers, json={"plan": "hello"})
            assert answer.status_code == 401, (ep.method, ep.path, answer.text)
            assert answer.headers["www-authenticate"] == 'Bearer realm="glmtui"'
            assert set(answer.json()) == {"error"}
    assert anonymous.get("/openapi.json").status_code == 401

    bodies = [
        ("POST", "/runs", {"plan": "hello", "wait": True}),
        ("POST", "/envs", {"name": env, "image": busybox_image}),
        ("POST", "/envs/x/exec", {"command": ["true"]}),
        ("DELETE", "/envs/x", None),
        ("POST", "/agents/x/run", {}),
        ("GET", "/runs", None),
    ]

    def attack(first: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=server.url + PREFIX, timeout=30) as client:
            for n in range(first, 1000, 8):
                method, path, body = bodies[n % len(bodies)]
                headers = {"Authorization": f"Bearer {wrong}{n}"} if n % 2 else {}
                statuses.append(client.request(method, path, json=body, headers=headers).status_code)
        return statuses

    with ThreadPoolExecutor(8) as pool:
        statuses = [status for part in pool.map(attack, range(8)) for status in part]
    assert statuses == [401] * 1000
    assert database_counts(server) == before
    assert not helpers.container_exists(env)
    with server.client() as client:
        assert client.get("/runs").json() == {"runs": []}
        assert client.get("/health").json() == {"status": "ok"}
    log = server.log.read_text()
    refused = [line for line in log.splitlines() if "api: refused" in line]
    assert 20 <= len(refused) < 100, "a flood is logged, but not line by line (at most 20 lines a minute)"
    assert "no bearer token" in log and "a wrong token" in log
    assert wrong not in log and server.token not in log
    assert server.token not in server.output() + server.errors()


def test_token_is_made_0600_printed_and_rotated_without_a_restart(serve):
    server = serve()
    path = server.folder / "config" / "glmtui" / "serve-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    printed = server.glmtui("serve", "token")
    assert printed.returncode == 0 and printed.stdout.strip() == server.token
    old = server.token
    with server.client(token=old) as client:
        assert client.get("/plans").status_code == 200
    rotated = server.glmtui("serve", "token", "--rotate")
    assert rotated.returncode == 0
    new = rotated.stdout.strip()
    assert new != old and new == server.token and new.startswith("glmtui_") and len(new) > 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with server.client(token=old) as client:
        assert client.get("/plans").status_code == 401
    with server.client(token=new) as client:
        assert client.get("/plans").status_code == 200
    assert server.proc.poll() is None


def test_host_header_and_cors(serve):
    server = serve()
    port = server.url.rsplit(":", 1)[1]
    with server.client() as client:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
            assert client.get("/plans", headers={"Host": host}).status_code == 200, host
        for host in ("evil.example", f"evil.example:{port}", f"192.168.1.9:{port}", "127.0.0.1.evil.example"):
            answer = client.get("/plans", headers={"Host": host})
            assert answer.status_code == 400, host
            assert "is not a name this server answers to" in answer.json()["error"]
        assert client.get("/health", headers={"Host": "evil.example"}).status_code == 400
        plain = client.get("/plans", headers={"Origin": "https://evil.example"})
        assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers
    preflight = httpx.options(server.url + "/api/v1/plans", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 401 and "access-control-allow-origin" not in preflight.headers

    cors = serve(config={"serve": {"cors_origins": ["https://app.example"], "hosts": ["glmtui.example"]}})
    with cors.client() as client:
        assert client.get("/plans", headers={"Host": "glmtui.example"}).status_code == 200
        answer = client.get("/plans", headers={"Origin": "https://app.example"})
        assert answer.headers["access-control-allow-origin"] == "https://app.example"
        other = client.get("/plans", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    allowed = httpx.options(cors.url + "/api/v1/runs", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://app.example"
    refused = httpx.options(cors.url + "/api/v1/runs", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers


def test_bodies_are_capped_and_bad_json_is_400_naming_the_field(serve):
    server = serve(config={"serve": {"max_body": "4k"}})
    with server.client() as client:
        big = client.post("/runs", content=b'{"plan": "' + b"x" * 5000 + b'"}', headers={"Content-Type": "application/json"})
        assert big.status_code == 413 and "larger than 4,096 bytes (config serve.max_body)" in big.json()["error"]

        def chunks():
            for _ in range(10):
                yield b" " * 1000

        chunked = client.post("/runs", content=chunks())
        assert chunked.status_code == 413
        cases = {
            b"{bad": "the request body is not JSON",
            b"": "body field 'plan' is required",
            b"[1]": "body must be an object, not a list",
            b'{"plan": "hello", "colour": 1}': "unknown body field 'colour'",
            b'{"plan": "hello", "inputs": []}': "body field 'inputs' must be an object, not a list",
            b'{"plan": "hello", "jobs": 0}': "body field 'jobs': 0 is out of range",
            b'{"plan": "../etc/passwd"}': "body field 'plan': '../etc/passwd' does not match",
            b"\xff\xfe": "not UTF-8",
        }
        for body, line in cases.items():
            answer = client.post("/runs", content=body)
            assert answer.status_code == 400, body
            assert line in answer.json()["error"], (body, answer.json())
            assert "\n" not in answer.json()["error"] and "Traceback" not in answer.text
        assert client.get("/runs", params={"limit": "many"}).status_code == 400
        assert client.get("/runs", params={"sort": "x"}).json()["error"] == \
            "unknown query parameter 'sort' (the parameters are limit)"
        missing = client.get("/nowhere")
        assert missing.status_code == 404 and missing.json()["error"].startswith("no such endpoint: GET /api/v1/nowhere")
        assert client.delete("/runs").status_code == 405


def test_beyond_loopback_needs_tls_or_insecure_bind(serve, tmp_path):
    folder = tmp_path / "refused"
    refused = Serve(folder, "--host", "0.0.0.0", wait=False)
    assert refused.wait_exit() == 2
    line = helpers.one_error_line(refused.errors())
    assert line.startswith("glmtui: error: serving on every address (beyond loopback) needs TLS: give --tls-cert")
    refused.kill()

    insecure = serve("--host", "0.0.0.0", "--insecure-bind")
    warning = "glmtui: warning: serving on 0.0.0.0 without TLS (--insecure-bind): the token and everything else " \
              "cross the network in clear text"
    assert warning in insecure.errors()
    assert "warning: serving on 0.0.0.0 without TLS" in insecure.log.read_text()
    port = insecure.url.rsplit(":", 1)[1]
    assert insecure.url == f"http://0.0.0.0:{port}"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", timeout=30,
                      headers={"Authorization": f"Bearer {insecure.token}"}) as client:
        assert client.get("/plans").status_code == 200
    assert insecure.stop() == 130

    certs = tmp_path / "certs"
    certs.mkdir()
    helpers.certificates(certs, "127.0.0.1")
    half = Serve(tmp_path / "half", "--tls-cert", str(certs / "server.pem"), wait=False)
    assert half.wait_exit() == 2
    assert helpers.one_error_line(half.errors()) == "glmtui: error: TLS needs both --tls-cert FILE and --tls-key FILE"
    half.kill()
    bad = Serve(tmp_path / "bad", "--tls-cert", str(certs / "ca-key.pem"), "--tls-key", str(certs / "server-key.pem"),
                wait=False)
    assert bad.wait_exit() == 2
    assert helpers.one_error_line(bad.errors()).startswith("glmtui: error: cannot use ")
    bad.kill()

    tls = serve("--host", "0.0.0.0", "--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server-key.pem"))
    assert "warning" not in tls.errors()
    port = tls.url.rsplit(":", 1)[1]
    assert tls.url == f"https://0.0.0.0:{port}"
    trust = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with httpx.Client(base_url=f"https://127.0.0.1:{port}/api/v1", verify=trust, timeout=30) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert client.get("/plans").status_code == 401
        assert client.get("/plans", headers={"Authorization": f"Bearer {tls.token}"}).status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"https://127.0.0.1:{port}/api/v1/health", timeout=10)  # a certificate nobody vouches for
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10)  # no plain HTTP on the TLS port
    assert tls.stop() == 130


def test_a_port_in_use_and_a_second_serve_exit_2_with_one_line(serve, tmp_path):
    server = serve()
    port = server.url.rsplit(":", 1)[1]
    elsewhere = {"XDG_DATA_HOME": str(tmp_path / "other" / "data"), "XDG_CONFIG_HOME": str(tmp_path / "other" / "config")}
    busy = helpers.run_glmtui("serve", "--port", port, env=elsewhere)
    assert busy.returncode == 2
    assert helpers.one_error_line(busy.stderr) == (
        f"glmtui: error: cannot listen on 127.0.0.1:{port}: the address is in use "
        "(another program serves there: pick another port with --port)")
    second = server.glmtui("serve", "--port", "0")
    assert second.returncode == 2
    assert "already runs the schedules of saved agents (one per user)" in helpers.one_error_line(second.stderr)


def test_openapi_document_is_valid_and_is_what_the_server_routes(serve):
    from openapi_spec_validator import validate

    server = serve()
    with server.client() as client:
        document = client.get("/openapi.json").json()
        validate(document)
        routed = {(ep.method.lower(), PREFIX + ep.path) for ep in ENDPOINTS}
        documented = {(method, path) for path, item in document["paths"].items() for method in item}
        assert documented == routed
        for method, path in documented:  # each answers (none of these requests can change anything)
            answer = client.request(method.upper(), _concrete(path)[len(PREFIX):])
            assert answer.status_code != 405, (method, path)
            if answer.headers["content-type"].startswith("application/json"):
                assert not answer.json().get("error", "").startswith("no such endpoint"), (method, path)
        assert document["paths"]["/api/v1/health"]["get"]["security"] == []
        assert document["paths"]["/api/v1/hooks/{name}"]["post"]["security"] == []
        assert "security" not in document["paths"]["/api/v1/runs"]["post"]
        assert document["paths"]["/api/v1/runs"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "required"] == ["plan"]


async def test_an_internal_error_is_500_naming_the_log_and_the_traceback_is_logged(tmp_path):
    """In process (a face that raises cannot be made to fail on purpose in a real serve): what no
    handler catches is answered 500 with one line, and logged with its traceback."""
    from glmtui.config import Config
    from glmtui.server.api import Api
    from glmtui.server.app import Face, Settings, build_app
    from glmtui.server.auth import HostNames, TokenFile
    from glmtui.server.plans import PlanCatalog
    from glmtui.service.service import Service
    from glmtui.store import Store

    async def broken(scope, receive, send):
        raise RuntimeError("secret internals")

    lines: list[str] = []
    token = TokenFile(tmp_path / "token")
    value = token.rotate()
    store = Store(tmp_path / "db.sqlite3", tmp_path / "runs", tmp_path / "execs")
    settings = Settings(token, HostNames("127.0.0.1"), PlanCatalog([]), 1 << 20, lines.append,
                        tmp_path / "serve.log")
    app = build_app(Api(Service(None, store, Config.load()), settings), settings, [Face("/broken/", broken, "broken")])
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8765") as client:
        answer = await client.get("/broken/x", headers={"Authorization": f"Bearer {value}"})
    assert answer.status_code == 500
    assert answer.json() == {"error": f"internal error: the serve log has the traceback ({tmp_path / 'serve.log'})"}
    assert "secret internals" not in answer.text and "Traceback" not in answer.text
    assert "Traceback" in lines[-1] and "RuntimeError: secret internals" in lines[-1]
    store.close()
