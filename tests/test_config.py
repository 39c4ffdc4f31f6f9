"""Settings precedence (flag > env > file > default), URL lists, validation, CLI exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from caprl_index.cli import main, settings_from_args
from caprl_index.config import Settings
from caprl_index.errors import ConfigError


def test_defaults_match_the_design() -> None:
    s = Settings()
    assert s.vllm_model == "caprl" and s.collection == "caprl" and s.captioner == "auto"
    assert s.max_tokens == 2048 and s.max_pixels == 1_003_520 and s.max_concurrency == 64
    assert s.qdrant_url is None and s.embed_model == "all-MiniLM-L6-v2"


def test_precedence_flag_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "caprl-index.toml"
    config.write_text('collection = "from-file"\nvllm_model = "file-model"\nmax_tokens = 512\n')
    monkeypatch.setenv("CAPRL_CONFIG", str(config))
    assert Settings().collection == "from-file" and Settings().max_tokens == 512
    monkeypatch.setenv("CAPRL_COLLECTION", "from-env")
    assert Settings().collection == "from-env" and Settings().vllm_model == "file-model"
    assert Settings(collection="from-flag").collection == "from-flag"


def test_comma_separated_vllm_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPRL_VLLM_URL", "http://a:8000/v1/, http://b:8000/v1")
    assert Settings().vllm_url == ["http://a:8000/v1", "http://b:8000/v1"]


def test_secrets_come_from_env_and_stay_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAPRL_QDRANT_API_KEY", "s3cret")
    s = Settings()
    assert s.qdrant_api_key is not None and s.qdrant_api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)


def test_bad_values_are_config_errors_with_exit_2(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("CAPRL_MAX_CONCURRENCY", "0")
    assert main(["status"]) == 2
    assert "max_concurrency" in capsys.readouterr().err


def test_bad_flag_is_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["ingest", "x", "--captioner", "gpt"])
    assert exc.value.code == 2


def test_missing_path_exits_2(capsys) -> None:
    assert main(["ingest", "/no/such/folder"]) == 2
    assert "/no/such/folder" in capsys.readouterr().err


def test_flags_build_settings(tmp_path: Path) -> None:
    from caprl_index.cli import build_parser

    args = build_parser().parse_args(
        ["ingest", "d", "--collection", "c1", "--no-figures", "--qdrant-path", str(tmp_path), "--shards", "3"]
    )
    s = settings_from_args(args)
    assert s.collection == "c1" and s.figures is False and s.qdrant_path == tmp_path and s.shards == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["--qdrant-path", "{p}", "--collection", "c1", "-v", "status"],
        ["status", "--qdrant-path", "{p}", "--collection", "c1", "-v"],
        ["--qdrant-path", "/elsewhere", "status", "--qdrant-path", "{p}", "-v", "--collection", "c1"],
    ],
)
def test_connection_flags_count_before_and_after_the_command(tmp_path: Path, argv: list[str]) -> None:
    """`caprl-index --qdrant-path X ingest` (the order --help shows) used to index into ./.caprl-index:
    the sub-command's unset defaults overwrote the flags given before it."""
    from caprl_index.cli import build_parser

    args = build_parser().parse_args([a.format(p=tmp_path) for a in argv])
    s = settings_from_args(args)
    assert (s.qdrant_path, s.collection, args.verbose) == (tmp_path, "c1", True)
    assert build_parser().parse_args(["status"]).verbose is False


def test_shard_spec_errors() -> None:
    from caprl_index.sources.discover import parse_shard

    assert parse_shard("2/4") == (2, 4)
    for bad in ("0/4", "5/4", "x", "1/0"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_document_errors_survive_pickling() -> None:
    """They are raised in worker processes and re-raised in the parent."""
    import pickle

    from caprl_index.errors import CorruptFile

    err = pickle.loads(pickle.dumps(CorruptFile("/d/a.pdf", "truncated")))
    assert isinstance(err, CorruptFile) and err.path == "/d/a.pdf" and err.reason == "truncated"
