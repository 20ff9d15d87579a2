"""Source packaging as the SageMaker Python SDK v2 does it (``toolkit package``).

The source directory (or the lone entry-point file) becomes ``sourcedir.tar.gz`` with its files
at the archive's root, uploaded to ``<code location>/<job name>/source/sourcedir.tar.gz``, and
the job gets the SDK's ``sagemaker_*`` hyperparameters, each JSON-encoded.
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from toolkit.errors import ConfigError
from toolkit.local.storage import Storage, parse_location, walk_files
from toolkit.plan import source_archive

DEFAULT_LOG_LEVEL = 20  # logging.INFO, the SDK's default container_log_level


@dataclass(frozen=True)
class Packaged:
    """Where the source goes and the hyperparameters that point the job at it."""

    submit_uri: str
    hyperparameters: dict[str, str]
    folder: Optional[Path]  # the source folder (None: the lone entry point)
    entry_point: str
    uploaded: bool  # False when the source is already an archive in S3 (nothing to upload)


def make_archive(source_dir: Optional[Path], entry_point: str, target: Path) -> Path:
    """Write sourcedir.tar.gz: the directory's files at the root, or just the entry point."""
    with tarfile.open(target, "w:gz") as tar:
        if source_dir is None:
            path = Path(entry_point)
            tar.add(str(path), arcname=path.name)
        else:
            for name, path in walk_files(source_dir):
                tar.add(str(path), arcname=name)
    return target


def sdk_hyperparameters(entry_point: str, submit_uri: str, job_name: str, region: str,
                        log_level: int = DEFAULT_LOG_LEVEL) -> dict[str, str]:
    """The ``sagemaker_*`` hyperparameters the SDK v2 sets for a framework estimator."""
    values = {"sagemaker_program": entry_point, "sagemaker_submit_directory": submit_uri,
              "sagemaker_container_log_level": log_level, "sagemaker_job_name": job_name,
              "sagemaker_region": region}
    return {k: json.dumps(v) for k, v in values.items()}


def check_source(source_dir: Optional[str], entry_point: str) -> tuple[Optional[Path], str]:
    """(source folder or None, program name), after checking the entry point is there."""
    if not entry_point:
        raise ConfigError("--entry-point is required with --source-dir (the script to run, e.g. train.py)")
    if source_dir is None:
        path = Path(entry_point)
        if not path.is_file():
            raise ConfigError(f"--entry-point {entry_point}: no such file (without --source-dir it is a path "
                              f"to the script)")
        return None, path.name
    folder = Path(source_dir).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"--source-dir {source_dir}: no such directory")
    if not (folder / entry_point).is_file():
        raise ConfigError(f"--entry-point {entry_point} is not a file in --source-dir {source_dir} "
                          f"(give its path relative to the source directory)")
    return folder.absolute(), entry_point


def plan_source(*, job_name: str, entry_point: str, source_dir: Optional[str], output_path: str,
                code_location: Optional[str], region: str, log_level: int = DEFAULT_LOG_LEVEL) -> Packaged:
    """Check the source and decide where it goes and what the job's hyperparameters say; nothing moves."""
    if source_dir and source_dir.startswith("s3://"):
        if not source_dir.endswith(".tar.gz"):
            raise ConfigError(f"--source-dir {source_dir}: an S3 source must be a .tar.gz archive")
        hps = sdk_hyperparameters(entry_point, source_dir, job_name, region, log_level)
        return Packaged(source_dir, hps, None, entry_point, False)
    folder, program = check_source(source_dir, entry_point)
    dest = source_archive(job_name, output_path, code_location).uri
    return Packaged(dest, sdk_hyperparameters(program, dest, job_name, region, log_level), folder, entry_point, True)


def upload_source(storage: Storage, packaged: Packaged, extra_args: Optional[dict[str, str]] = None) -> None:
    """Write sourcedir.tar.gz and upload it where ``plan_source`` said (``extra_args``: S3 PutObject's)."""
    if not packaged.uploaded:
        return
    with tempfile.TemporaryDirectory(prefix="toolkit-package-") as tmp:
        archive = make_archive(packaged.folder, packaged.entry_point, Path(tmp) / "sourcedir.tar.gz")
        storage.upload_file(archive, parse_location(packaged.submit_uri, "source"), extra_args)


def package(storage: Storage, *, job_name: str, entry_point: str, source_dir: Optional[str],
            output_path: str, code_location: Optional[str], region: str,
            log_level: int = DEFAULT_LOG_LEVEL) -> Packaged:
    """Package and upload the source (unless it is already an S3 archive) and return the
    hyperparameters the job needs."""
    packaged = plan_source(job_name=job_name, entry_point=entry_point, source_dir=source_dir, output_path=output_path,
                           code_location=code_location, region=region, log_level=log_level)
    upload_source(storage, packaged)
    return packaged
