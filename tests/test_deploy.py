"""Deployment files checked against the code: docker-compose.yml, Dockerfile, .dockerignore, --shard.

Docker cannot run on the development machines, so this is how the deployment is validated: the
compose file is parsed and cross-checked with caprl_index.config (names, defaults, ports), its
healthchecks run against local HTTP servers, and the ``--shard i/n`` partition is checked for
disjointness, cover, stability across processes and balance.
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from packaging.specifiers import SpecifierSet

from caprl_index.config import CONFIG_FILE_ENV, DEFAULT_MAX_PIXELS, Settings
from caprl_index.errors import ConfigError
from caprl_index.sources.discover import in_shard, parse_shard

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VLLM_SERVICES = ("vllm", "vllm-2")
QDRANT_SERVICES = ("qdrant", "qdrant-1", "qdrant-2", "qdrant-3")
CAPRL_SERVICES = ("caprl-index", "caprl-index-cluster")  # serve, and the cluster's ingest
_VAR = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} rules, enough for this file."""

    def sub(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        current = env.get(name)
        unset = current is None or (current == "" and op is not None and op.startswith(":"))
        if not unset:
            return str(current)
        if op and op.endswith("?"):
            raise KeyError(f"{name} is required: {arg}")
        return arg if op else ""

    return _VAR.sub(sub, value)


def environment(service: str) -> dict[str, str | None]:
    env = SERVICES[service].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return env


def container_ports(service: str) -> set[int]:
    return {int(interpolate(p, {}).rsplit(":", 1)[-1]) for p in SERVICES[service].get("ports", [])}


def vllm_flags(service: str) -> tuple[str, dict[str, str]]:
    """The positional model and the ``--flag value`` pairs (defaults resolved) of a vLLM command."""
    model, *rest = SERVICES[service]["command"]
    assert len(rest) % 2 == 0 and all(flag.startswith("--") for flag in rest[::2]), rest
    return model, {flag: interpolate(str(value), {}) for flag, value in zip(rest[::2], rest[1::2], strict=True)}


def field_default(name: str) -> Any:
    return Settings.model_fields[name].default


def field_port_qdrant(name: str) -> int:
    """qdrant-client's default REST (``port``) or gRPC (``grpc_port``) port."""
    from qdrant_client import QdrantClient  # a few seconds to import: only when needed

    return int(inspect.signature(QdrantClient.__init__).parameters[name].default)


# --- compose: services, names, ports ---------------------------------------------------------


def test_services_and_profiles() -> None:
    profiles = {name: tuple(svc.get("profiles", ())) for name, svc in SERVICES.items()}
    assert profiles == {
        "vllm": (), "qdrant": (), "caprl-index": (), "vllm-2": ("replicas",),
        "qdrant-1": ("cluster",), "qdrant-2": ("cluster",), "qdrant-3": ("cluster",),
        "caprl-index-cluster": ("cluster",), "vllm-caprl2": ("caprl2",), "caprl-index-caprl2": ("caprl2",),
    }  # fmt: skip


def test_every_caprl_variable_is_a_settings_field() -> None:
    allowed = {"CAPRL_" + name.upper() for name in Settings.model_fields} | {CONFIG_FILE_ENV}
    referenced = set(re.findall(r"\bCAPRL_\w+", COMPOSE_TEXT + DOCKERFILE))
    assert referenced, "the deployment configures caprl-index through CAPRL_* variables"
    assert referenced <= allowed, f"not Settings fields: {sorted(referenced - allowed)}"


@pytest.mark.parametrize(
    ("service", "shell_env", "vllm_hosts", "qdrant_host"),
    [
        ("caprl-index", {}, ["vllm"], "qdrant"),
        ("caprl-index", {"VLLM_URLS": "http://vllm:8000/v1,http://vllm-2:8000/v1"}, ["vllm", "vllm-2"], "qdrant"),
        ("caprl-index-cluster", {}, ["vllm"], "qdrant-1"),
    ],
)
def test_ingest_environment_is_valid_settings(
    service: str, shell_env: dict[str, str], vllm_hosts: list[str], qdrant_host: str,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    """The container's environment, as Compose would resolve it, validates and points at the services."""
    shell = {"CAPRL_QDRANT_API_KEY": "s3cret", "CAPRL_API_KEY": "k3y", **shell_env}
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "absent.toml"))
    for key, value in environment(service).items():
        monkeypatch.delenv(key, raising=False)
        if value is not None:
            monkeypatch.setenv(key, interpolate(str(value), shell))
    settings = Settings()
    urls = [urlparse(u) for u in settings.vllm_url]
    assert [u.hostname for u in urls] == vllm_hosts
    assert all(u.port in container_ports("vllm") and u.path == "/v1" for u in urls)
    qdrant = urlparse(settings.qdrant_url or "")
    assert (qdrant.hostname, qdrant.port) == (qdrant_host, field_port_qdrant("port"))
    assert settings.qdrant_api_key is not None and settings.qdrant_api_key.get_secret_value() == "s3cret"
    assert settings.vllm_model == vllm_flags("vllm")[1]["--served-model-name"]
    if service == "caprl-index-cluster":
        assert (settings.shards, settings.replication_factor) == (6, 2)
        assert (settings.replication_factor or 1) <= len(QDRANT_SERVICES) - 1  # one replica per node


def test_ports_match_configuration_defaults() -> None:
    assert container_ports("vllm") == {urlparse(field_default("vllm_url")[0]).port} == {8000}
    assert container_ports("qdrant") == {field_port_qdrant("port"), field_port_qdrant("grpc_port")}
    assert container_ports("qdrant") == {6333, 6334}
    assert container_ports("qdrant-1") == container_ports("qdrant")
    # Two vLLMs on one box must not share a host port.
    services = (*VLLM_SERVICES, "vllm-caprl2")
    host = {s: {interpolate(p, {}).rsplit(":", 2)[-2] for p in SERVICES[s]["ports"]} for s in services}
    assert not host["vllm"] & host["vllm-2"] and not (host["vllm"] | host["vllm-2"]) & host["vllm-caprl2"]
    assert container_ports("vllm-caprl2") == {8000}


def test_no_inline_secrets() -> None:
    secretish = re.compile(r"KEY|TOKEN|SECRET|PASSWORD")
    from_env = re.compile(r"\$\{\w+(:?\?[^}]*|:?-)?\}")  # a reference with no literal default
    for name in SERVICES:
        for key, value in environment(name).items():
            if secretish.search(key):
                assert value is None or from_env.fullmatch(str(value)), f"{name}: {key} is inline"
        assert "--api-key" not in [str(a) for a in SERVICES[name].get("command") or []]
    for name in QDRANT_SERVICES:
        assert str(environment(name)["QDRANT__SERVICE__API_KEY"]).startswith("${CAPRL_QDRANT_API_KEY:?")
    assert str(environment("vllm")["VLLM_API_KEY"]).startswith("${CAPRL_VLLM_API_KEY")
    env_lines = [line for line in DOCKERFILE.splitlines() if line.lstrip().startswith("ENV")]
    assert not any(secretish.search(line) for line in env_lines)


def test_images_are_pinned() -> None:
    deps = dict(d.split("==") for d in PYPROJECT["project"]["dependencies"])
    for name, svc in SERVICES.items():
        repo, _, tag = svc["image"].rpartition(":")
        assert repo and tag and tag != "latest" and "$" not in tag, f"{name}: {svc['image']}"
    assert SERVICES["vllm"]["image"].startswith("vllm/vllm-openai:v")
    assert SERVICES["qdrant"]["image"] == f"qdrant/qdrant:v{deps['qdrant-client']}"
    assert SERVICES["caprl-index"]["image"] == f"caprl-index:{PYPROJECT['project']['version']}"


# --- compose: vLLM, Qdrant cluster, ingest ------------------------------------------------------


def test_vllm_command_has_the_required_flags() -> None:
    model, flags = vllm_flags("vllm")
    assert SERVICES["vllm-2"]["command"] == SERVICES["vllm"]["command"]
    assert model == "internlm/CapRL-3B"
    assert flags["--served-model-name"] == field_default("vllm_model")
    assert json.loads(flags["--limit-mm-per-prompt"]) == {"image": 1, "video": 0}
    assert json.loads(flags["--mm-processor-kwargs"]) == {"max_pixels": DEFAULT_MAX_PIXELS}
    assert int(flags["--max-num-seqs"]) == field_default("max_concurrency")
    # One capped image (28x28 px per visual token) + prompt + a full-length caption must fit.
    image_tokens = DEFAULT_MAX_PIXELS // (28 * 28)
    assert int(flags["--max-model-len"]) >= image_tokens + 64 + field_default("max_tokens")
    assert 0 < float(flags["--gpu-memory-utilization"]) <= 1


def test_caprl2_profile_serves_caprl_2_with_the_qwen3_vl_pixel_cap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model, flags = vllm_flags("vllm-caprl2")
    assert interpolate(model, {}) == "internlm/CapRL-Qwen3VL-4B"
    assert interpolate(model, {"CAPRL2_MODEL": "internlm/CapRL-Qwen3VL-2B"}) == "internlm/CapRL-Qwen3VL-2B"
    assert json.loads(flags["--limit-mm-per-prompt"]) == {"image": 1, "video": 0}
    # Qwen3-VL's processor is configured through size (pixels), and max_pixels would not reach it.
    size = json.loads(flags["--mm-processor-kwargs"])["size"]
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "absent.toml"))
    for key, value in environment("caprl-index-caprl2").items():
        monkeypatch.delenv(key, raising=False)
        if value is not None:
            monkeypatch.setenv(key, interpolate(str(value), {"CAPRL_QDRANT_API_KEY": "k"}))
    settings = Settings()
    assert settings.model_family == "qwen3-vl" and settings.vllm_model == flags["--served-model-name"]
    assert size == {"longest_edge": settings.max_pixels, "shortest_edge": 65536}
    assert settings.max_pixels == settings.image_token_budget * 32 * 32 == 1_310_720
    assert [urlparse(u).hostname for u in settings.vllm_url] == ["vllm-caprl2"]
    image_tokens = size["longest_edge"] // (32 * 32)
    assert int(flags["--max-model-len"]) >= image_tokens + 64 + field_default("max_tokens")
    deps = SERVICES["caprl-index-caprl2"]["depends_on"]
    assert set(deps) == {"vllm-caprl2", "qdrant"} and all(d["condition"] == "service_healthy" for d in deps.values())


def test_each_vllm_reserves_its_own_gpu() -> None:
    ids = []
    for name in VLLM_SERVICES:
        (device,) = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
        (gpu,) = device["device_ids"]
        ids.append(interpolate(gpu, {}))
        assert "/root/.cache/huggingface" in " ".join(SERVICES[name]["volumes"])
    assert len(set(ids)) == len(ids)


def test_cluster_profile_has_three_qdrant_peers() -> None:
    storage: set[str] = set()
    for i, name in enumerate(QDRANT_SERVICES[1:], start=1):
        svc = SERVICES[name]
        assert environment(name)["QDRANT__CLUSTER__ENABLED"] == "true"
        args = dict(zip(svc["command"][1::2], svc["command"][2::2], strict=True))
        assert args["--uri"] == f"http://{name}:6335"
        assert args.get("--bootstrap") == (None if i == 1 else "http://qdrant-1:6335")
        storage.update(v.split(":")[0] for v in svc["volumes"])
    assert len(storage) == 3


def test_caprl_index_services_wait_for_healthy_servers() -> None:
    wanted = {"caprl-index": {"vllm", "qdrant"}, "caprl-index-cluster": {"vllm", *QDRANT_SERVICES[1:]}}
    assert SERVICES["caprl-index-cluster"]["command"] == ["ingest", "/corpus"]
    for name in CAPRL_SERVICES:
        svc = SERVICES[name]
        assert svc["build"] == "."
        assert any(v.endswith(":/corpus:ro") for v in svc["volumes"])
        deps = svc["depends_on"]
        assert all(d["condition"] == "service_healthy" for d in deps.values())
        required = {dep for dep, d in deps.items() if d.get("required", True)}
        assert required == wanted[name]


def test_caprl_index_runs_serve_with_a_key_and_the_corpus_as_its_only_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    svc = SERVICES["caprl-index"]
    assert svc["command"][:1] == ["serve"] and svc["restart"] == "unless-stopped"
    argv = dict(zip(svc["command"][1::2], svc["command"][2::2], strict=True))
    env = environment("caprl-index")
    # Bound beyond loopback inside the container (to be published), so a key is required, from the shell.
    assert argv["--host"] == "0.0.0.0" and str(env["CAPRL_API_KEY"]).startswith("${CAPRL_API_KEY:?")
    with pytest.raises(KeyError, match="CAPRL_API_KEY"):
        interpolate(str(env["CAPRL_API_KEY"]), {})
    assert int(argv["--port"]) == field_default("serve_port") == 8080
    assert container_ports("caprl-index") == {8080}
    assert all(interpolate(p, {}).startswith("127.0.0.1:") for p in svc["ports"])  # the host's loopback only
    monkeypatch.setenv(CONFIG_FILE_ENV, str(tmp_path / "absent.toml"))
    for key, value in env.items():
        monkeypatch.delenv(key, raising=False)
        if value is not None:
            monkeypatch.setenv(key, interpolate(str(value), {"CAPRL_QDRANT_API_KEY": "q", "CAPRL_API_KEY": "k"}))
    settings = Settings()
    assert settings.ingest_roots == [Path("/corpus")]
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "k"
    server = urlparse(settings.server_url or "")
    assert (server.hostname, server.port) == ("caprl-index", 8080)  # exec/run containers reach the server


def test_serve_healthcheck_passes_against_a_real_server(tmp_path: Path) -> None:
    """Compose's healthcheck command, run against a live `caprl-index serve` (and failing once it stops)."""
    from caprl_index.testing.service import ServeProcess

    kind, *argv = SERVICES["caprl-index"]["healthcheck"]["test"]
    assert kind == "CMD" and argv[0] == "python3"
    env = {"CAPRL_QDRANT_PATH": str(tmp_path / "index" / "qdrant"), "CAPRL_API_KEY": "k3y"}
    with ServeProcess(env) as proc:
        port = urlparse(proc.url).port
        live = [sys.executable, *[a.replace("8080", str(port)) for a in argv[1:]]]
        assert subprocess.run(live, capture_output=True, timeout=30, check=False).returncode == 0
    assert subprocess.run(live, capture_output=True, timeout=30, check=False).returncode != 0


# --- healthchecks, run for real ------------------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []  # noqa: RUF012

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("service", "port", "path"), [("vllm", 8000, "/health"), ("qdrant", 6333, "/readyz")])
def test_healthcheck_commands_work(health_server: ThreadingHTTPServer, service: str, port: int, path: str) -> None:
    kind, *argv = SERVICES[service]["healthcheck"]["test"]
    assert kind == "CMD" and argv[0] in {"python3", "bash"}  # the images have neither curl nor wget
    live = str(health_server.server_address[1])
    argv = [sys.executable if a == "python3" else a.replace(str(port), live) for a in argv]
    for status, healthy in [(200, True), (503, False)]:
        _Health.status, _Health.paths = status, []
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
        assert (done.returncode == 0) is healthy, done.stderr
        assert _Health.paths == [path]


# --- Dockerfile and .dockerignore ----------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_installs_the_package_like_the_readme() -> None:
    steps = instructions()
    base = next(arg for op, arg in steps if op == "FROM")
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base)
    assert "3.11" in SpecifierSet(PYPROJECT["project"]["requires-python"])
    (install,) = [arg for op, arg in steps if op == "RUN" and "pip install" in arg]
    argv = shlex.split(install.split("pip install", 1)[1].split("&&")[0])
    targets = [a for i, a in enumerate(argv) if not a.startswith("-") and not argv[i - 1].endswith("-url")]
    assert targets == ["."] and "-e" not in argv  # this checkout, not a registry name
    assert argv[argv.index("--extra-index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    torch_pin = next(d for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch=="))
    mentioned = set(re.findall(r"torch==[\w.]+", DOCKERFILE))
    assert mentioned == {torch_pin}, "the Dockerfile's note must name pyproject's torch pin"
    assert any(op == "RUN" and "libreoffice-impress" in arg for op, arg in steps)


def test_dockerfile_runs_the_cli_as_non_root() -> None:
    steps = instructions()
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    entry = [json.loads(arg) for op, arg in steps if op == "ENTRYPOINT"]
    assert entry == [["caprl-index"]] and "caprl-index" in PYPROJECT["project"]["scripts"]


def test_dockerignore_lets_the_build_inputs_through() -> None:
    rules = [r for r in (ROOT / ".dockerignore").read_text().splitlines() if r and not r.startswith("#")]
    assert rules[0] == "*", "allow-list: .venv, .git and local indexes never reach the build context"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    copied = {src for op, arg in instructions() if op == "COPY" for src in arg.split()[:-1]}
    assert copied <= allowed and PYPROJECT["project"]["readme"] in allowed


# --- --shard i/n ---------------------------------------------------------------------------------

PATHS = [f"/corpus/dept-{i % 37:02d}/report-{i:05d}.pdf" for i in range(2000)]


def assignment(count: int) -> list[int]:
    """The shard of each path; fails unless exactly one shard claims it."""
    owners = [[i for i in range(1, count + 1) if in_shard(p, i, count)] for p in PATHS]
    assert all(len(o) == 1 for o in owners), "shards overlap or miss a file"
    return [o[0] for o in owners]


@pytest.mark.parametrize("count", range(1, 8))
def test_shards_are_disjoint_covering_and_balanced(count: int) -> None:
    shards = assignment(count)
    sizes = [shards.count(i) for i in range(1, count + 1)]
    expected = len(PATHS) / count
    assert max(abs(s - expected) for s in sizes) <= 0.15 * expected, sizes
    assert assignment(count) == shards


def test_shards_are_stable_across_processes_and_versions() -> None:
    """Machines started separately (another hash seed, another release) must agree."""
    code = (
        "import json, sys; from caprl_index.sources.discover import in_shard; "
        "paths = json.loads(sys.stdin.read()); "
        "print(json.dumps([[i for i in range(1, 6) if in_shard(p, i, 5)][0] for p in paths]))"
    )
    env = {"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(PATHS[:300]), capture_output=True,
        text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    assert json.loads(done.stdout) == assignment(5)[:300]
    golden = ["/corpus/a.pdf", "/corpus/b.pptx", "/corpus/deck 3.key", "/corpus/ü.png", "/corpus/x/y/z.pdf"]
    assert [next(i for i in range(1, 5) if in_shard(p, i, 4)) for p in golden] == [4, 4, 2, 4, 3]
    assert in_shard(Path(golden[2]), 2, 4) and in_shard(golden[2], 2, 4)


@pytest.mark.parametrize(("spec", "expected"), [("1/1", (1, 1)), ("3/4", (3, 4)), ("7/7", (7, 7))])
def test_parse_shard(spec: str, expected: tuple[int, int]) -> None:
    assert parse_shard(spec) == expected


@pytest.mark.parametrize("spec", ["0/4", "5/4", "1/0", "-1/4", "a/b", "1", "1/2/3", "", "/4"])
def test_parse_shard_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ConfigError, match=r"--shard .*for example 1/4"):
        parse_shard(spec)
