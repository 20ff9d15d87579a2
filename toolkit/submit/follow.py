"""Following a job on SageMaker: its status until it ends, its CloudWatch logs, its results.

As the SDK's ``logs=True``: every stream of the job (``<job>/algo-1-<epoch>``, ...) in the kind's log
group, each read from its start, interleaved as they come; here each line carries its host.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable, Optional

from toolkit import plan
from toolkit.submit.account import Account, SubmitError, explain
from toolkit.submit.kinds import KINDS, TERMINAL, JobKind

Echo = Callable[[str], None]
POLL_SECONDS = 5.0  # the SDK's poll interval with logs


def host_of(stream: str, job: str) -> str:
    """``job/algo-1-1700000000`` -> ``algo-1``; a transform's ``job/i-0ab.../data-log`` keeps its instance."""
    name = stream[len(job) + 1:] if stream.startswith(job + "/") else stream
    return re.sub(r"-\d{10}$", "", name)


class LogTail:
    """Every log stream of one job, each followed from its start."""

    def __init__(self, account: Account, kind: JobKind, job: str, echo: Echo) -> None:
        self.account, self.kind, self.job, self.echo = account, kind, job, echo
        self.tokens: dict[str, Optional[str]] = {}

    def streams(self) -> list[str]:
        from botocore.exceptions import ClientError

        names: list[str] = []
        params: dict[str, Any] = {"logGroupName": self.kind.log_group, "logStreamNamePrefix": f"{self.job}/"}
        try:
            while True:
                page = self.account.client("logs").describe_log_streams(**params)
                names += [s["logStreamName"] for s in page.get("logStreams", [])]
                if not page.get("nextToken"):
                    return sorted(names)
                params["nextToken"] = page["nextToken"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                return []  # no log group yet: the job has not started writing
            raise explain(exc, f"DescribeLogStreams {self.kind.log_group}") from exc
        except Exception as exc:
            raise explain(exc, f"DescribeLogStreams {self.kind.log_group}") from exc

    def poll(self) -> int:
        """Print what every stream has that was not printed yet; the number of lines."""
        printed = 0
        for stream in self.streams():
            host = host_of(stream, self.job)
            while True:
                token = self.tokens.get(stream)
                params = {"nextToken": token} if token else {"startFromHead": True}
                answer = self.account.call("logs", "get_log_events", logGroupName=self.kind.log_group,
                                           logStreamName=stream, **params)
                events = answer.get("events", [])
                self.tokens[stream] = answer.get("nextForwardToken") or token
                for event in events:
                    for line in str(event.get("message", "")).rstrip("\n").split("\n"):
                        self.echo(f"[{host}] {line}")
                        printed += 1
                if not events:
                    break
        return printed


def describe(account: Account, kind: JobKind, job: str) -> dict[str, Any]:
    return dict(account.call("sagemaker", kind.operation("describe"), **{kind.name_field: job}))


def find(account: Account, job: str) -> tuple[JobKind, dict[str, Any]]:
    """The kind of job named ``job`` (training, then processing, then transform) and its description."""
    from botocore.exceptions import ClientError

    for kind in KINDS.values():
        try:
            answer = getattr(account.client("sagemaker"), kind.operation("describe"))(**{kind.name_field: job})
            return kind, dict(answer)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("ValidationException", "ResourceNotFound"):
                continue
            raise explain(exc, f"Describe{kind.api}") from exc
        except Exception as exc:
            raise explain(exc, f"Describe{kind.api}") from exc
    raise SubmitError(f"no training, processing or transform job named {job!r} in {account.region}; check the name "
                      f"and the region (--region, AWS_REGION)")


def follow(account: Account, kind: JobKind, job: str, echo: Echo, logs: bool = True,
           poll_seconds: float = POLL_SECONDS) -> dict[str, Any]:
    """Wait until the job ends, printing status changes and (``logs``) its log lines; its last description."""
    tail = LogTail(account, kind, job, echo) if logs else None
    shown = ""
    while True:
        answer = describe(account, kind, job)
        status = str(answer.get(kind.status_field, ""))
        state = status + (f" ({answer['SecondaryStatus']})" if answer.get("SecondaryStatus") else "")
        if state != shown:
            echo(f"{kind.api} {job}: {state}")
            shown = state
        if tail is not None:
            tail.poll()
        if status in TERMINAL:
            return answer
        time.sleep(poll_seconds)


def failure_line(answer: dict[str, Any]) -> str:
    """The first line of FailureReason (a processing job's ExitMessage when that is all there is)."""
    text = str(answer.get("FailureReason") or answer.get("ExitMessage") or "").strip()
    return text.splitlines()[0] if text else ""


def result_locations(kind: JobKind, answer: dict[str, Any]) -> list[tuple[str, str]]:
    """(name under the download folder, S3 URI) of what the job produced."""
    if kind.name == "training":
        job, out = answer["TrainingJobName"], answer.get("OutputDataConfig", {}).get("S3OutputPath", "")
        model = answer.get("ModelArtifacts", {}).get("S3ModelArtifacts") or plan.model_artifact(out, job).uri
        return [("model.tar.gz", model), ("output.tar.gz", plan.output_artifact(out, job).uri)]
    if kind.name == "processing":
        outputs = answer.get("ProcessingOutputConfig", {}).get("Outputs", [])
        return [(o["OutputName"], o["S3Output"]["S3Uri"]) for o in outputs if "S3Output" in o]
    return [("", answer["TransformOutput"]["S3OutputPath"])]


def download(account: Account, kind: JobKind, answer: dict[str, Any], dest: Path, echo: Echo) -> None:
    """Every result of the job into ``dest`` (a file keeps its name; a prefix becomes a folder)."""
    from toolkit.local.storage import parse_location

    storage = account.storage()
    for name, uri in result_locations(kind, answer):
        loc = parse_location(uri, name or "output")
        items = [i for i in storage.list(loc, name or "output", allow_empty=True)
                 if not uri.endswith(".tar.gz") or i.key == loc.key]
        if not items:
            echo(f"  not there: {uri}")
            continue
        target = dest if uri.endswith(".tar.gz") or not name else dest / name
        storage.download(loc, items, target, name or "output")
        echo(f"  downloaded {uri} -> {target / items[0].name if uri.endswith('.tar.gz') else target}")
