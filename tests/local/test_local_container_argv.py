"""The engine command line of a container-mode host, for what cannot be run here: docker (no
daemon on these machines). podman runs the same command line in tests/containers/test_local_container.py."""

from __future__ import annotations

from pathlib import Path

from toolkit.local.hosts import Network, in_container


def _argv(entrypoint: list[str], arguments: list[str], inherited: dict[str, str]) -> list[str]:
    network = Network("docker", "toolkit-job")
    network.prefix = "10.210.3"
    return in_container("docker", "my-image:1", "algo-1", "job-algo-1", network, ["algo-1"],
                        [(Path("/work/job/algo-1"), "/opt/ml", False)],
                        {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "TRAINING_JOB_NAME": "job"}, entrypoint, arguments,
                        120, inherited=inherited).argv


def test_entrypoint_is_one_executable_as_docker_takes_it() -> None:
    argv = _argv(["python3", "-c", "print(1)"], ["a", "b c"], {})
    # docker's --entrypoint is a single executable (a JSON list would be taken as its name)
    assert argv[argv.index("--entrypoint") + 1] == "python3"
    assert argv[argv.index("my-image:1"):] == ["my-image:1", "-c", "print(1)", "a", "b c"]


def test_without_entrypoint_the_arguments_replace_train() -> None:
    assert _argv([], ["serve-it"], {})[-2:] == ["my-image:1", "serve-it"]
    assert _argv([], [], {})[-2:] == ["my-image:1", "train"]


def test_inherited_credentials_go_by_name() -> None:
    argv = _argv([], [], {"AWS_SECRET_ACCESS_KEY": "s3cr3t", "PATH": "/usr/bin"})
    assert "AWS_SECRET_ACCESS_KEY" in argv and not any("s3cr3t" in a for a in argv)
    assert "TRAINING_JOB_NAME=job" in argv
