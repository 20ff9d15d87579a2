"""/opt/ml for one in-process host alone: a private mount namespace (``unshare --mount``).

Processing scripts name /opt/ml/processing/... by absolute path. In-process, each host runs in
its own mount namespace where the host's folder is bind-mounted at /opt/ml, so the script finds
its inputs there while the machine's own /opt/ml (if any) is neither read nor written. When
/opt/ml does not exist, /opt is covered by an overlay whose writable layer is a tmpfs private to
that namespace, and /opt/ml is made there: nothing is created on the machine. Needs root (or
CAP_SYS_ADMIN) and util-linux's ``unshare``; otherwise container mode (``--image``) is the way.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Sequence

from toolkit.errors import ConfigError

TARGET = "/opt/ml"
# $1: the host's folder, $2: a scratch folder outside it; the rest: the command
SCRIPT = r"""set -e
base="$1"; scratch="$2"; shift 2
if [ ! -d /opt/ml ]; then
  mount -t tmpfs -o size=1m toolkit-opt "$scratch"
  mkdir "$scratch/upper" "$scratch/work"
  mount -t overlay toolkit-opt -o "lowerdir=/opt,upperdir=$scratch/upper,workdir=$scratch/work" /opt
  mkdir /opt/ml
fi
mount --bind "$base" /opt/ml
cd /opt/ml
exec "$@"
"""


def check(environ: Mapping[str, str]) -> str:
    """The ``unshare`` executable, after trying a private mount namespace once; a ConfigError
    saying to use ``--image`` when this machine does not allow one."""
    unshare = shutil.which("unshare", path=environ.get("PATH"))
    if not Path("/opt").is_dir():
        raise ConfigError("an in-process processing job needs /opt to make /opt/ml in a private mount namespace, "
                          "and this machine has none; give --image to run the job in a container")
    if unshare is None:
        raise ConfigError("an in-process processing job needs `unshare` (util-linux) for a private /opt/ml; "
                          "install it or give --image to run the job in a container")
    probe = subprocess.run([unshare, "--mount", "--propagation", "private", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit {probe.returncode}"
        raise ConfigError(f"an in-process processing job needs a private mount namespace for /opt/ml and this "
                          f"machine refuses one ({reason}); run as root, or give --image to run it in a container")
    return unshare


def wrap(unshare: str, base: Path, scratch: Path, command: Sequence[str]) -> list[str]:
    """``command`` run with ``base`` as its /opt/ml, in a mount namespace of its own."""
    scratch.mkdir(parents=True, exist_ok=True)
    return [unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", SCRIPT, "toolkit-private-ml",
            str(base), str(scratch), *command]
