"""The platform behind Debian's nginx, with a configuration made from deploy/nginx/socle.conf (the same
proxy directives; only the addresses, certificate and log paths change): server-sent events arrive as the
backend writes them, uploads pass up to the platform's limit and are refused past it, the platform sees the
client's address through X-Forwarded-For, and request ids run from nginx to the response. Caddy's example is
checked by Caddy itself."""
from __future__ import annotations

import datetime
import getpass
import ipaddress
import os
import re
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from socle.settings import Settings
from tests.support.servers import Server, free_port, start_server, stop

ROOT = Path(__file__).resolve().parents[2]
NGINX_SITE = ROOT / "deploy" / "nginx" / "socle.conf"
CADDYFILE = ROOT / "deploy" / "caddy" / "Caddyfile"
CLIENT = "127.0.0.2"  # the test's own loopback address, told apart from nginx's 127.0.0.1
EVENT_GAP_S = 0.05  # the mock backend's mock-endless model writes one event every 50 ms
CATALOGUE = """models:
  - {{id: slow-chat, type: chat, backends: [{{type: openai, url: "{mock}/v1", model: mock-endless}}]}}
"""

pytestmark = pytest.mark.deploy


@dataclass
class Proxy:
    https: str
    http: str
    ca: Path
    access_log: Path
    server: Server


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, its own authority."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls.pem", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def site_for_test(site: str, *, upstreams: list[str], http_port: int, https_port: int, cert: Path, key: Path,
                  logs: Path) -> str:
    """deploy/nginx/socle.conf with loopback addresses, the test's certificate and logs; nothing else."""
    lines = []
    for line in site.splitlines():
        stripped = line.strip()
        if stripped.startswith("listen [::]"):
            continue
        if stripped.startswith("server ") and "max_fails" in stripped:  # the upstream's replicas
            if upstreams:
                options = stripped.split(None, 2)[2]
                lines.extend(f"    server {address} {options}" for address in upstreams)
                upstreams = []
            continue
        line = re.sub(r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{http_port};", line)
        line = re.sub(r"^(\s*)listen 443 ", rf"\1listen 127.0.0.1:{https_port} ", line)
        line = re.sub(r"^(\s*ssl_certificate)\s+\S+;", rf"\1 {cert};", line)
        line = re.sub(r"^(\s*ssl_certificate_key)\s+\S+;", rf"\1 {key};", line)
        lines.append(line.replace("/var/log/nginx/", f"{logs}/"))
    return "\n".join(lines) + "\n"


def _nginx_conf(directory: Path, site: str) -> Path:
    """A main configuration around the site, for an nginx run by this user, all its files in ``directory``."""
    temp = directory / "temp"
    temp.mkdir()
    user = f"user {getpass.getuser()};\n" if os.geteuid() == 0 else ""  # its workers keep this user
    conf = directory / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 2;\npid {directory}/nginx.pid;\nerror_log {directory}/error.log warn;\n"
        "daemon off;\nevents { worker_connections 1024; }\n"
        "http {\n"
        f"  include /etc/nginx/mime.types;\n  access_log off;\n"
        f"  client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n"
        f"  fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n"
        f"  include {directory}/socle.conf;\n}}\n")
    (directory / "socle.conf").write_text(site)
    return conf


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, mock_backend: str) -> Iterator[Proxy]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "Debian's nginx package runs this test"
    config = tmp_path_factory.mktemp("proxy-config") / "models.yaml"
    config.write_text(CATALOGUE.format(mock=mock_backend))
    server = start_server(tmp_path_factory.mktemp("proxy-server"), config=config, extra_env={
        "SOCLE_INGESTION_WORKERS": "0", "SOCLE_FEEDBACK_WORKERS": "0", "SOCLE_UI_TRUSTED_PROXIES": "127.0.0.1"})
    directory = tmp_path_factory.mktemp("nginx")
    cert, key = _certificate(directory)
    http_port, https_port = free_port(), free_port()
    site = site_for_test(NGINX_SITE.read_text(), upstreams=[server.url.removeprefix("http://")],
                         http_port=http_port, https_port=https_port, cert=cert, key=key, logs=directory)
    conf = _nginx_conf(directory, site)
    checked = subprocess.run([nginx, "-t", "-c", str(conf), "-e", str(directory / "error.log")],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([nginx, "-c", str(conf), "-e", str(directory / "error.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        https = f"https://127.0.0.1:{https_port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(https + "/health", verify=ssl.create_default_context(cafile=cert),
                             timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
        yield Proxy(https=https, http=f"http://127.0.0.1:{http_port}", ca=cert,
                    access_log=directory / "socle.access.log", server=server)
    finally:
        stop(process)
        stop(server.process)


def _client(proxy: Proxy, **kwargs: object) -> httpx.Client:
    """A client on its own loopback address, so that the platform can tell it from nginx."""
    transport = httpx.HTTPTransport(local_address=CLIENT, verify=ssl.create_default_context(cafile=proxy.ca))
    return httpx.Client(base_url=proxy.https, transport=transport, timeout=120,
                        headers={"Authorization": f"Bearer {proxy.server.admin_key}"}, **kwargs)  # type: ignore[arg-type]


def test_plain_http_is_sent_to_https(proxy: Proxy) -> None:
    response = httpx.get(proxy.http + "/v1/models?x=1", follow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://127.0.0.1") and response.headers["location"].endswith(
        "/v1/models?x=1")


def test_events_arrive_as_the_backend_writes_them(proxy: Proxy) -> None:
    wanted = 20
    with _client(proxy) as http:
        sdk = openai.OpenAI(base_url=proxy.https + "/v1", api_key=proxy.server.admin_key, http_client=http,
                            max_retries=0)
        arrivals: list[float] = []
        texts: list[str] = []
        with sdk.chat.completions.create(model="slow-chat", stream=True,
                                         messages=[{"role": "user", "content": "Bonjour"}]) as stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    arrivals.append(time.monotonic())
                    texts.append(chunk.choices[0].delta.content)
                if len(arrivals) == wanted:
                    break
    assert texts == [f"tok{i} " for i in range(wanted)]  # in order, none lost
    # The backend spaces its events by EVENT_GAP_S: arriving as written, they are spread over about
    # (wanted - 1) gaps; held back in a buffer, they would come together in one block.
    spread = arrivals[-1] - arrivals[0]
    assert spread >= (wanted - 1) * EVENT_GAP_S * 0.5, spread
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:], strict=False)]
    assert sum(gap >= EVENT_GAP_S * 0.4 for gap in gaps) >= len(gaps) // 2, gaps


def test_uploads_pass_up_to_the_platforms_limit_and_are_refused_past_it(proxy: Proxy) -> None:
    limit = Settings().max_upload_bytes
    with _client(proxy) as http:
        collection = http.post("/v1/collections", json={"name": f"proxy-{secrets.token_hex(3)}"})
        assert collection.status_code == 201, collection.text
        line = "Le dossier de demande de passeport se dépose en mairie, sur rendez-vous.\n".encode()
        within = line * ((limit - 4096) // len(line))
        uploaded = http.post("/v1/documents", data={"collection": str(collection.json()["id"])},
                             files={"file": ("grand.txt", within, "text/plain")})
        assert uploaded.status_code == 201, uploaded.text
        assert uploaded.json()["size_bytes"] == len(within)
        too_large = http.post("/v1/documents", data={"collection": str(collection.json()["id"])},
                              files={"file": ("trop-grand.txt", within + line * (3 * 1024 * 1024 // len(line)),
                                              "text/plain")})
    assert too_large.status_code == 413
    assert too_large.json()["error"]["code"] == "request_too_large"  # nginx answers in the platform's format


def test_the_platform_sees_the_clients_address(proxy: Proxy) -> None:
    name = f"groupe-{secrets.token_hex(3)}"
    with _client(proxy) as http:
        # A made-up X-Forwarded-For from the client does not pass for its address: nginx appends the real one.
        made = http.post("/v1/groups", json={"name": name}, headers={"X-Forwarded-For": "203.0.113.9"})
        assert made.status_code == 201, made.text
        events = http.get("/v1/audit", params={"action": "group.created", "limit": 1000}).json()["data"]
    (event,) = [e for e in events if (e["target"] or {}).get("id") == str(made.json()["id"])]
    assert event["address"] == CLIENT


def test_request_ids_run_from_nginx_to_the_response(proxy: Proxy) -> None:
    with _client(proxy) as http:
        chosen = http.get("/v1/models", headers={"X-Request-Id": "dossier-42-appel-7"})
        made = http.get("/v1/models")
    assert chosen.headers["x-request-id"] == "dossier-42-appel-7"
    rid = made.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)  # nginx's $request_id, kept by the platform
    deadline = time.monotonic() + 5
    while f"rid={rid}" not in proxy.access_log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # nginx writes its access log line once the response is sent
    assert f"rid={rid}" in proxy.access_log.read_text()


def _locations(site: str) -> dict[str, str]:
    """The example's ``location`` blocks: their pattern and their body."""
    return {match[1]: match[2] for match in re.finditer(r"location\s+(~\s+\S+|\S+)\s*\{(.*?)\n\s*\}", site, re.S)}


def test_the_streaming_routes_are_unbuffered_with_a_long_timeout() -> None:
    """nginx may hold events in its buffers (with slow clients, or other modules in the chain): the routes that
    stream have buffering and cache off and outlive the longest answer."""
    streams = {"/v1/chat/completions", "/v1/completions", "/v1/conversations/12/messages"}
    others = {"/v1/conversations", "/v1/models", "/v1/documents", "/ui/conversations/12/messages"}
    unbuffered = set()
    for pattern, body in _locations(NGINX_SITE.read_text()).items():
        if pattern.startswith("~"):
            matched = {path for path in streams | others if re.search(pattern.split()[1], path)}
            assert matched <= streams, matched
            unbuffered |= matched
            assert "proxy_buffering off;" in body and "proxy_cache off;" in body and "gzip off;" in body
            timeout = re.search(r"proxy_read_timeout (\d+)s;", body)
            assert timeout and int(timeout[1]) >= 600
    assert unbuffered == streams
    site = NGINX_SITE.read_text()
    size = re.search(r"client_max_body_size (\d+)m;", site)
    assert size and int(size[1]) * 1024 * 1024 == Settings().max_upload_bytes + 1024 * 1024
    assert re.search(r"keepalive \d+;", site) and site.count("max_fails") >= 2  # several replicas, kept-alive


def test_the_caddy_example_is_valid(tmp_path: Path) -> None:
    caddy = shutil.which("caddy")
    assert caddy, "Debian's caddy package checks this example"
    done = subprocess.run([caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path),
                               "XDG_CONFIG_HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    adapted = subprocess.run([caddy, "adapt", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path,
                             env={**os.environ, "HOME": str(tmp_path)})
    assert adapted.returncode == 0, adapted.stderr
    assert '"flush_interval":-1' in adapted.stdout.replace(" ", "")
    assert f'"max_size":{Settings().max_upload_bytes + 1024 * 1024}' in adapted.stdout.replace(" ", "")
