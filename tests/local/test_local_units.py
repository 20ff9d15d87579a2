"""The emulator's pure rules: object names under a channel, sharding, job names, merged outputs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolkit.errors import ConfigError
from toolkit.local.channels import shard
from toolkit.local.outputs import merged_files
from toolkit.local.request import Overrides, apply_overrides, base_name_from_image, name_from_base, parse_request
from toolkit.local.storage import Item, parse_location, relative_name


@pytest.mark.parametrize(("prefix", "key", "name"), [
    ("data/train", "data/train/a.csv", "a.csv"),
    ("data/train/", "data/train/sub/b.csv", "sub/b.csv"),
    ("data/tr", "data/train/a.csv", "train/a.csv"),
    ("data/train/a.csv", "data/train/a.csv", "a.csv"),
    ("", "top.csv", "top.csv"),
    ("da", "data/x.csv", "data/x.csv"),
])
def test_relative_name(prefix: str, key: str, name: str) -> None:
    assert relative_name(prefix, key) == name


def test_sharded_by_s3_key_splits_evenly_and_fully() -> None:
    items = [Item(f"part-{i}", 1, key=f"p/part-{i}") for i in range(5)]
    shards = [shard(items, i, 2, "ShardedByS3Key") for i in range(2)]
    assert [i.name for i in shards[0]] == ["part-0", "part-2", "part-4"]
    assert [i.name for i in shards[1]] == ["part-1", "part-3"]
    assert shard(items, 1, 2, "FullyReplicated") == items


def test_job_name_as_the_sdk_makes_it() -> None:
    name = name_from_base("x" * 80, now=0.25)
    assert len(name) == 63 and name.endswith("-1970-01-01-00-00-00-250")
    assert re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", name)
    assert base_name_from_image("123.dkr.ecr.us-east-1.amazonaws.com/team/trainer:2.1") == "trainer"
    assert base_name_from_image(None) == "toolkit-local"


def test_options_override_the_request() -> None:
    data = {"TrainingJobName": "from-json", "HyperParameters": {"a": "1", "b": "2"},
            "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/old"}}}],
            "OutputDataConfig": {"S3OutputPath": "s3://b/out"}}
    opts = Overrides(job_name="from-cli", hyperparameters=["b=3"], channels=["train=s3://b/new"],
                     instance_count=2, max_run=60)
    request = parse_request(apply_overrides(data, opts, default_output="/unused"))
    assert request.job_name == "from-cli"
    assert dict(request.hyperparameters) == {"a": "1", "b": "3"}
    assert [c.uri for c in request.channels] == ["s3://b/new"]
    assert (request.instance_count, request.max_runtime, request.output_path) == (2, 60, "s3://b/out")
    assert request.hosts == ["algo-1", "algo-2"]


def test_unsupported_features_are_named() -> None:
    base = {"TrainingJobName": "j", "OutputDataConfig": {"S3OutputPath": "/tmp/o"}}
    with pytest.raises(ConfigError, match="FileSystemDataSource"):
        parse_request({**base, "InputDataConfig": [{"ChannelName": "c", "DataSource": {"FileSystemDataSource": {}}}]})
    with pytest.raises(ConfigError, match="S3DataType 'ManifestFile' is not emulated"):
        parse_request({**base, "InputDataConfig": [{"ChannelName": "c", "DataSource": {"S3DataSource": {
            "S3Uri": "s3://b/m", "S3DataType": "ManifestFile"}}}]})
    with pytest.raises(ConfigError, match=r"CheckpointConfig\.LocalPath"):
        parse_request({**base, "CheckpointConfig": {"S3Uri": "s3://b/c", "LocalPath": "relative"}})


def test_locations() -> None:
    loc = parse_location("s3://bucket/out")
    assert loc.join("job", "output", "model.tar.gz").uri == "s3://bucket/out/job/output/model.tar.gz"
    assert parse_location("s3://bucket").join("job").uri == "s3://bucket/job"
    assert parse_location("file:///tmp/x").path == Path("/tmp/x")
    with pytest.raises(ConfigError, match="has no bucket"):
        parse_location("s3:///key")


def test_later_host_replaces_an_earlier_hosts_file(tmp_path: Path) -> None:
    for host, text in (("algo-1", "one"), ("algo-2", "two")):
        (tmp_path / host).mkdir()
        (tmp_path / host / "model.bin").write_text(text)
        (tmp_path / host / f"{host}.txt").write_text(host)
    files = merged_files([(h, tmp_path / h) for h in ("algo-1", "algo-2")])
    assert sorted(files) == ["algo-1.txt", "algo-2.txt", "model.bin"]
    assert files["model.bin"].read_text() == "two"


@pytest.mark.parametrize("argv", [["toolkit", "--help"], ["toolkit", "local", "train", "--help"],
                                  ["toolkit", "package", "--help"]])
def test_help_imports_no_boto3(argv: list) -> None:
    import subprocess
    import sys

    code = (f"import sys\nsys.argv = {argv!r}\nfrom toolkit.cli import toolkit_main\n"
            "try:\n    toolkit_main()\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'flask')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert "Usage:" in out.stdout


def test_transform_settings_job_then_server_then_defaults() -> None:
    from toolkit.local.transform import TransformSettings, make_batches, resolve, split

    server = {"BatchStrategy": "SINGLE_RECORD", "MaxPayloadInMB": 2, "MaxConcurrentTransforms": 4}
    chosen = resolve(TransformSettings(max_payload_mb=0), server)
    assert (chosen.batch_strategy, chosen.max_payload_mb, chosen.max_concurrent) == ("SingleRecord", 0, 4)
    chosen = resolve(TransformSettings(), None)
    assert (chosen.batch_strategy, chosen.max_payload_mb, chosen.max_concurrent) == ("MultiRecord", 6, 1)
    records = split(b"a\n\nb\r\nc", "Line")
    assert records == [(1, b"a\n"), (3, b"b\r\n"), (4, b"c\n")]
    assert [(b.first, b.last) for b in make_batches("f", records, "MultiRecord", 0)] == [(1, 4)]
    assert [(b.first, b.last) for b in make_batches("f", records, "SingleRecord", 6)] == [(1, 1), (3, 3), (4, 4)]


def test_progress_paints_a_live_line_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from toolkit.local import progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(progress, "PAINT_EVERY", 0.0)
    screen = Terminal()
    bar = progress.Progress("algo-1 channel train", 2, 3_000_000, stream=screen)
    bar.add(1_500_000, 1)
    assert "\ralgo-1 channel train: 1/2 files, 1.5 MB/3.0 MB (" in screen.getvalue()
    done = bar.finish()
    assert (done.files, done.bytes) == (1, 1_500_000)
    assert screen.getvalue().endswith("\r\x1b[K")  # the live line is cleared at the end
