"""The plugin system: installed plugins found by entry point, listed, controlled, and each
training hook exercised through the real `train` with a real installed plugin."""

from __future__ import annotations

import json
import re
import sys

from helpers import Job, PluginSite, run_cli

from toolkit.builtin import BUILTIN_PLUGINS

RECORDER = '''
import json, os
import toolkit

@toolkit.hookimpl
def toolkit_environment(env):
    return {"FROM_PLUGIN": "yes", "SM_NUM_GPUS": "8"}

@toolkit.hookimpl
def toolkit_after_training(env, outcome):
    with open(os.path.join(env.environ["RECORD_DIR"], "outcome.json"), "w") as f:
        json.dump({"exit_code": outcome.exit_code, "failure": outcome.failure,
                   "argv": list(outcome.command.argv) if outcome.command else None}, f)
'''


def test_toolkit_plugins_lists_builtins_and_installed_plugins(plugin_site: PluginSite) -> None:
    plugin_site.add("recorder", RECORDER)
    out = run_cli("toolkit", "plugins", "--json", env={**plugin_site.environ(), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    plugins = {p["name"]: p for p in json.loads(out.stdout)}
    assert set(BUILTIN_PLUGINS) <= set(plugins)
    assert plugins["recorder"]["source"] == "entry point (recorder 1.0)"
    assert plugins["recorder"]["hooks"] == ["toolkit_after_training", "toolkit_environment"]
    assert plugins["python"]["hooks"] == ["toolkit_launch"]
    table = run_cli("toolkit", "plugins", env=plugin_site.environ())
    assert "recorder" in table.stdout and "hooks: toolkit_after_training, toolkit_environment" in table.stdout


def test_allow_list_and_disable(plugin_site: PluginSite) -> None:
    plugin_site.add("recorder", RECORDER)
    plugin_site.add("other", "")

    def names(**env: str) -> set[str]:
        out = run_cli("toolkit", "plugins", "--json", env={**plugin_site.environ(), **env})
        return {p["name"] for p in json.loads(out.stdout)}

    assert {"recorder", "other"} <= names()
    only = names(TOOLKIT_PLUGINS="other")
    assert "other" in only and "recorder" not in only and "python" in only  # built-ins stay
    assert "shell" not in names(TOOLKIT_DISABLE_PLUGINS="shell, recorder")


def test_a_plugin_that_fails_to_import_is_a_clear_error(job: Job, plugin_site: PluginSite) -> None:
    plugin_site.add("broken", "raise RuntimeError('boom at import')\n")
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "")
    result = job.run(**plugin_site.environ())
    assert result.returncode == 2
    assert job.failure.read_text().startswith("plugin 'broken' (broken) failed to import: RuntimeError")
    assert "TOOLKIT_DISABLE_PLUGINS" in job.failure.read_text()
    assert job.run(TOOLKIT_DISABLE_PLUGINS="broken", **plugin_site.environ()).returncode == 0


def test_trace_logs_every_hook_call(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "")
    result = job.run(TOOLKIT_TRACE_PLUGINS="true")
    assert "hook toolkit_launch(entry_point, code_dir, args, env) -> [" in result.stderr
    assert "hook toolkit_install_dependencies returned True" in result.stderr


def test_hook_environment_plugin_variables_reach_the_script_and_win(job: Job, plugin_site: PluginSite) -> None:
    plugin_site.add("recorder", RECORDER)
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'env'), 'w')"
               ".write(os.environ['FROM_PLUGIN'] + ' ' + os.environ['SM_NUM_GPUS'])\n")
    result = job.run(RECORD_DIR=str(job.root), **plugin_site.environ())
    assert result.returncode == 0, result.stderr
    assert (job.model / "env").read_text() == "yes 8"


def test_hook_after_training_sees_the_outcome(job: Job, plugin_site: PluginSite) -> None:
    plugin_site.add("recorder", RECORDER)
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "raise SystemExit(5)\n")
    assert job.run(RECORD_DIR=str(job.root), **plugin_site.environ()).returncode == 5
    outcome = json.loads((job.root / "outcome.json").read_text())
    assert outcome["exit_code"] == 5 and outcome["argv"][-1] == "train.py"
    assert "Exit code: 5" in outcome["failure"]
    # also called when the toolkit refuses the job, with no command
    (job.code / "train.py").unlink()
    job.script("other.py", "")
    assert job.run(RECORD_DIR=str(job.root), **plugin_site.environ()).returncode == 2
    outcome = json.loads((job.root / "outcome.json").read_text())
    assert outcome == {"exit_code": 2, "failure": outcome["failure"], "argv": None}
    assert "not found" in outcome["failure"]


def test_hook_launch_a_plugin_launcher_answers_before_the_builtins(job: Job, plugin_site: PluginSite) -> None:
    plugin_site.add("wrapper", f'''
import sys
import toolkit

@toolkit.hookimpl
def toolkit_launch(entry_point, code_dir, args, env):
    if env.settings.get("sagemaker_wrapped"):
        return toolkit.Command([{sys.executable!r}, "-c", "import sys; open(sys.argv[1], 'w').write('wrapped')",
                                str(env.model_dir / "marker")], env={{"WRAPPED": "1"}})
    return None
''')
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_wrapped": True}).resources()
    job.script("train.py", "raise SystemExit('the built-in launcher should not have run')\n")
    result = job.run(**plugin_site.environ())
    assert result.returncode == 0, result.stderr
    assert (job.model / "marker").read_text() == "wrapped"
    job.hyperparameters({"sagemaker_program": "train.py"})  # not selected: built-in python runs
    assert job.run(**plugin_site.environ()).returncode == 1


def test_hook_install_dependencies_can_be_replaced(job: Job, plugin_site: PluginSite) -> None:
    plugin_site.add("fakeinstaller", '''
import toolkit

@toolkit.hookimpl
def toolkit_install_dependencies(code_dir, env):
    (code_dir / "installed-by-plugin").write_text("ok")
    return True
''')
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("requirements.txt", "this-would-fail-with-pip==0\n")
    job.script("train.py", "")
    result = job.run(**plugin_site.environ())
    assert result.returncode == 0, result.stderr
    assert (job.code / "installed-by-plugin").read_text() == "ok"


def test_hook_fetch_code_local_directory_tarball_and_file_uri(job: Job, tmp_path) -> None:
    import tarfile

    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'where'), 'w')"
                                  ".write(os.getcwd())\n")
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": str(src)}).resources()
    assert job.run().returncode == 0
    assert (job.model / "where").read_text() == str(src)  # a local folder is used in place
    with tarfile.open(tmp_path / "sourcedir.tar.gz", "w:gz") as tar:
        tar.add(src / "train.py", arcname="train.py")
    job.hyperparameters({"sagemaker_program": "train.py",
                         "sagemaker_submit_directory": f"file://{tmp_path}/sourcedir.tar.gz"})
    result = job.run(TOOLKIT_TRACE_PLUGINS="true")
    assert result.returncode == 0, result.stderr
    assert f"hook toolkit_fetch_code returned {job.code!r}" in result.stderr  # the code came through the hook
    assert (job.model / "where").read_text() == str(job.code)  # extracted into /opt/ml/code


def test_hook_fetch_schemes_are_listed_for_an_unknown_scheme(job: Job) -> None:
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": "ftp://host/x.tgz"})
    job.resources()
    result = job.run(TOOLKIT_TRACE_PLUGINS="true")
    assert result.returncode == 2
    message = job.failure.read_text()
    assert message.startswith("no fetcher accepts the code location 'ftp://host/x.tgz'; supported: ")
    assert "file" in message
    assert "hook toolkit_fetch_schemes returned [" in result.stderr  # the list came from the hook


def test_plugin_written_against_the_public_api_only() -> None:
    import toolkit

    assert {"hookimpl", "Command", "ToolkitError", "ClientError", "__version__"} <= set(toolkit.__all__)
    assert sys.modules["toolkit"].hookimpl.project_name == "toolkit"


def test_a_plugin_logging_through_logging_gets_the_toolkit_format(job: Job, plugin_site: PluginSite) -> None:
    # train writes its own lines without the logging module; a plugin that uses logging must
    # still see its lines on stderr, formatted like the toolkit's and filtered by the job's level
    plugin_site.add("chatty", '''
import logging
import toolkit

log = logging.getLogger("toolkit")

@toolkit.hookimpl
def toolkit_install_dependencies(code_dir, env):
    log.info("chatty plugin looked at %s", code_dir.name)
    log.debug("chatty debug line")
    return None
''')
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "")
    result = job.run(**plugin_site.environ())
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    ours = [ln for ln in lines if " toolkit INFO install dependencies" in ln]
    theirs = [ln for ln in lines if ln.endswith("chatty plugin looked at code")]
    assert ours and theirs, result.stderr
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(stamp + r" toolkit INFO chatty plugin looked at code", theirs[0]), theirs[0]
    assert re.fullmatch(stamp + r" toolkit INFO install dependencies \(\d+\.\d\d s\)", ours[0]), ours[0]
    assert "chatty debug line" not in result.stderr  # the job's level (INFO) applies to plugins too
    assert len(theirs) == 1  # one handler: not printed twice


def test_hook_install_dependencies_gets_the_requirements_file_the_job_names(job: Job, plugin_site: PluginSite) -> None:
    # an SDK v3 job names its requirements file in sourcecode.json: the installer gets it as an argument,
    # and the settings it reads are the job's, not a mapping the core made up
    plugin_site.add("recordinstaller", '''
import json
import toolkit

@toolkit.hookimpl
def toolkit_install_dependencies(code_dir, settings, requirements):
    (code_dir / "seen.json").write_text(json.dumps({"requirements": requirements,
                                                    "in_settings": settings.get("TOOLKIT_REQUIREMENTS")}))
    return True
''')
    job.hyperparameters({}).channels("code", "sm_drivers").resources()
    (job.base / "input" / "data" / "sm_drivers" / "sourcecode.json").write_text(
        json.dumps({"entry_script": "train.py", "requirements": "deps/extra.txt"}))
    code = job.base / "input" / "data" / "code"
    job.script("train.py", "", where=code)
    result = job.run(**plugin_site.environ())
    assert result.returncode == 0, result.stderr
    assert json.loads((code / "seen.json").read_text()) == {"requirements": "deps/extra.txt", "in_settings": None}


def test_a_plugin_written_for_0_1_still_fetches_and_installs_and_is_told_what_to_rename(
        job: Job, plugin_site: PluginSite, tmp_path) -> None:
    src = tmp_path / "share"
    src.mkdir()
    (src / "train.py").write_text("")
    plugin_site.add("oldstyle", f'''
import shutil
import toolkit

@toolkit.hookimpl
def toolkit_fetch_code(uri, dest, env):
    if not uri.startswith("nfs://"):
        return None
    shutil.copytree({str(src)!r}, dest)
    (dest / "fetched-with").write_text(env["sagemaker_program"])
    return dest

@toolkit.hookimpl
def toolkit_install_dependencies(code_dir, env):
    (code_dir / "installed-with").write_text(env.get("TOOLKIT_REQUIREMENTS") or "")
    return True
''')
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_submit_directory": "nfs://share"}).resources()
    result = job.run(TOOLKIT_REQUIREMENTS="deps.txt", **plugin_site.environ())
    assert result.returncode == 0, result.stderr
    assert (job.code / "fetched-with").read_text() == "train.py"
    assert (job.code / "installed-with").read_text() == "deps.txt"  # 0.1 found the file named in the mapping
    warnings = [ln for ln in result.stderr.splitlines() if "plugin 'oldstyle'" in ln]
    assert len(warnings) == 2 and all("rename the argument to 'settings'" in ln for ln in warnings), warnings


def test_a_plugin_whose_hook_does_not_fit_stops_the_job_with_one_line(job: Job, plugin_site: PluginSite) -> None:
    plugin_site.add("misfit", '''
import toolkit

@toolkit.hookimpl
def toolkit_launch(entry_point, job):
    return None
''')
    job.hyperparameters({"sagemaker_program": "train.py"}).resources()
    job.script("train.py", "")
    result = job.run(**plugin_site.environ())
    assert result.returncode == 2
    message = job.failure.read_text()
    assert "\n" not in message.strip()
    assert message.startswith("plugin 'misfit' does not fit the hooks: ") and "{'job'}" in message
    assert job.run(TOOLKIT_DISABLE_PLUGINS="misfit", **plugin_site.environ()).returncode == 0


def test_hook_launch_a_launcher_decides_itself_whether_the_job_asked_for_it(job: Job, plugin_site: PluginSite) -> None:
    plugin_site.add("deepspeedish", f'''
import sys
import toolkit

@toolkit.hookimpl
def toolkit_launch(entry_point, code_dir, args, env: toolkit.TrainingEnv):
    if not env.asks_for("deepspeed", "sagemaker_deepspeed_enabled"):
        return None
    return toolkit.Command([{sys.executable!r}, "-c", "import sys; open(sys.argv[1], 'w').write('ds')",
                            str(env.model_dir / "marker")])
''')
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_deepspeed_enabled": True}).resources()
    job.script("train.py", "raise SystemExit(3)\n")
    assert job.run(**plugin_site.environ()).returncode == 0
    assert (job.model / "marker").read_text() == "ds"
    assert job.run(TOOLKIT_LAUNCHER="python", **plugin_site.environ()).returncode == 3  # TOOLKIT_LAUNCHER decides
    job.hyperparameters({"sagemaker_program": "train.py", "sagemaker_deepspeed_enabled": True,
                         "sagemaker_mpi_enabled": True})
    assert job.run(**plugin_site.environ()).returncode == 2
    assert job.failure.read_text().startswith("both sagemaker_mpi_enabled and sagemaker_deepspeed_enabled are set")


def test_first_party_plugins_use_only_the_public_api() -> None:
    import ast
    from pathlib import Path

    import toolkit

    root = Path(__file__).resolve().parent.parent / "plugins"
    internal = []
    for path in sorted(root.glob("toolkit-*/toolkit_*/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("toolkit."):
                internal.append(f"{path.relative_to(root)}: from {node.module}")
            elif isinstance(node, ast.ImportFrom) and node.module == "toolkit":
                missing = {a.name for a in node.names} - set(toolkit.__all__)
                internal += [f"{path.relative_to(root)}: toolkit.{name} is not exported" for name in missing]
    assert not internal, internal
