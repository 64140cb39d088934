"""The GitHub workflows, .ci/run and scripts/ci.sh run the same steps; the README's commands."""

from __future__ import annotations

import re
import shlex
import subprocess
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
CI_SH = ROOT / "scripts" / "ci.sh"
STEPS = ("setup", "lint", "test", "rounding", "build", "browser", "replay")


@cache
def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def triggers(flow: dict) -> dict:
    # YAML 1.1 reads the key "on" as True
    return flow.get("on", flow.get(True)) or {}


def ci_steps(job: dict) -> list[str]:
    """The scripts/ci.sh steps a job runs, in order."""
    found = []
    for step in job["steps"]:
        for line in step.get("run", "").splitlines():
            words = shlex.split(line)
            if words[:1] == ["scripts/ci.sh"]:
                found += words[1:]
    return found


def uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def step_body(name: str) -> str:
    """The shell code of ``step_NAME`` in scripts/ci.sh."""
    text = CI_SH.read_text(encoding="utf-8")
    match = re.search(rf"^step_{name}\(\) \{{\n(.*?)^\}}", text, re.MULTILINE | re.DOTALL)
    assert match, f"scripts/ci.sh has no step_{name}"
    return match[1]


def test_workflows_parse_and_name_their_jobs():
    for name in ("test.yml", "book.yml"):
        flow = workflow(name)
        assert flow["name"] and flow["jobs"], name
        for job_name, job in flow["jobs"].items():
            assert job["runs-on"].startswith("ubuntu"), (name, job_name)
            assert job["steps"], (name, job_name)


def test_test_workflow_runs_the_readme_test_command_on_every_push_and_pull_request():
    flow = workflow("test.yml")
    assert {"push", "pull_request"} <= set(triggers(flow))
    assert flow["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in flow["concurrency"]["group"], "one run per branch, not one for all"
    job = flow["jobs"]["test"]
    assert uses(job)[:2] == ["actions/checkout", "actions/setup-python"]
    assert ci_steps(job) == ["setup", "lint", "test", "rounding"]
    assert "python -m pytest --durations" in step_body("test")
    assert "scripts/other_cpu.py" in step_body("rounding")
    assert "python -m pytest notebooks" in step_body("rounding")


def test_the_unit_tests_run_on_the_oldest_and_newest_supported_pythons():
    job = workflow("test.yml")["jobs"]["unit"]
    assert set(job["strategy"]["matrix"]["python-version"]) == {"3.10", "3.12"}
    runs = " ".join(step.get("run", "") for step in job["steps"])
    assert "python -m pytest tests" in runs and "scripts/ci.sh setup" in runs


def test_the_colab_replay_runs_on_tags_and_a_schedule_on_the_ref_readers_install():
    flow = workflow("test.yml")
    assert "schedule" in triggers(flow) and "v*" in triggers(flow)["push"]["tags"]
    job = flow["jobs"]["replay"]
    assert ci_steps(job) == ["setup", "replay"]
    assert job["env"]["AELIB_REPLAY_REF"] == "setting"
    checkout = job["steps"][0]
    assert checkout["uses"].startswith("actions/checkout")
    assert checkout["with"]["fetch-tags"] is True and checkout["with"]["fetch-depth"] == 0
    assert "pull_request" in job["if"] and "refs/tags/" in job["if"]
    assert '--ref "${AELIB_REPLAY_REF:-head}"' in step_body("replay")
    assert "AELIB_SEED_OFFSET=${AELIB_SEED_OFFSET:-1}" in step_body("replay")


def test_pip_is_cached_in_every_job_that_installs():
    for name in ("test.yml", "book.yml"):
        for job_name, job in workflow(name)["jobs"].items():
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/setup-python"):
                    assert step["with"].get("cache") == "pip", (name, job_name)


def test_book_workflow_builds_checks_and_deploys_to_pages():
    flow = workflow("book.yml")
    assert {"push", "pull_request"} <= set(triggers(flow))
    assert flow["permissions"] == {"contents": "read"}, "Pages rights on the deploy job only"
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    assert "permissions" not in build
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert "pull_request" in deploy["if"] and "refs/heads/main" in deploy["if"]
    assert ci_steps(build) == ["setup", "build", "browser"]
    upload = [
        s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact")
    ]
    assert len(upload) == 1 and upload[0]["with"]["path"] == "_build/html"
    assert build["steps"][-1] is upload[0], "upload the pages after every check has passed"
    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    assert uses(deploy) == ["actions/deploy-pages"]
    assert "jupyter-book build . --all -W -n --keep-going" in step_body("build")


def test_ci_run_and_the_workflows_run_the_same_steps():
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    listed = re.findall(r"^steps=\(([^)]*)\)$", text, re.MULTILINE)
    assert len(listed) == 1, "one list of the steps .ci/run runs"
    ci_run = listed[0].split()
    assert ci_run == list(STEPS), "every step, the Colab replay included, in order"
    assert 'scripts/ci.sh "${steps[@]}"' in text
    test_jobs = workflow("test.yml")["jobs"]
    in_workflows = (
        ci_steps(test_jobs["test"])
        + ci_steps(test_jobs["replay"])
        + ci_steps(workflow("book.yml")["jobs"]["build"])
    )
    assert set(in_workflows) == set(ci_run)
    assert all(in_workflows.count(s) == 1 for s in STEPS if s != "setup")


def test_setup_python_matches_the_supported_pythons():
    requires = re.search(
        r'requires-python = ">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    )
    for name in ("test.yml", "book.yml"):
        for job in workflow(name)["jobs"].values():
            for step in job["steps"]:
                if step.get("uses", "").startswith("actions/setup-python"):
                    version = str(step["with"]["python-version"])
                    if "matrix." in version:
                        versions = job["strategy"]["matrix"]["python-version"]
                    else:
                        versions = [version]
                    for v in versions:
                        assert int(v.split(".")[1]) >= int(requires[1]), (name, v)


def test_only_the_browser_step_may_be_skipped_and_the_build_always_runs():
    for name in STEPS:
        body = step_body(name)
        if name != "browser":
            assert "SKIPPED:" not in body and "return 0" not in body, name
    assert "SKIPPED:" in step_body("browser")
    assert "chromium" not in step_body("build").lower()


@pytest.mark.parametrize("script", [CI_SH, ROOT / ".ci" / "run"])
def test_shell_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def find_chromium(path: str, chromium_env: str = "") -> subprocess.CompletedProcess:
    """Runs ci.sh's find_chromium with ``PATH=path`` (and ``AELIB_CHROMIUM``)."""
    text = CI_SH.read_text(encoding="utf-8")
    function = re.search(r"^find_chromium\(\) \{\n.*?^\}$", text, re.M | re.S)
    assert function, "ci.sh defines find_chromium"
    return subprocess.run(
        ["/bin/bash", "-c", f"{function[0]}\nfind_chromium"],
        env={"PATH": path, "AELIB_CHROMIUM": chromium_env},
        capture_output=True,
        text=True,
    )


def test_ci_finds_chromium_only_where_an_executable_is(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    # No browser on PATH: not found (the step itself must not count as one; it once did, because
    # the helper was a shell function named chromium and `command -v` found the function)
    done = find_chromium(str(empty))
    assert done.returncode == 1 and done.stdout == ""
    assert find_chromium(str(empty), chromium_env=str(tmp_path / "nothing")).returncode == 1
    browser = tmp_path / "bin" / "chromium"
    browser.parent.mkdir()
    browser.write_text("#!/bin/sh\n")
    browser.chmod(0o755)
    done = find_chromium(str(browser.parent))
    assert done.returncode == 0 and done.stdout.strip() == str(browser)
    done = find_chromium(str(empty), chromium_env=str(browser))
    assert done.returncode == 0 and done.stdout.strip() == str(browser)


def test_ci_sh_refuses_an_unknown_step():
    done = subprocess.run(["bash", str(CI_SH), "deploy"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown step deploy" in done.stdout


def test_readme_names_the_commands_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in (
        "python -m pytest",
        "jupyter-book build . --all -W -n --keep-going",
        "python -m pytest tests/browser",
        "python scripts/colab_replay.py",
        "python -m pytest --nbval-lax",
        "python scripts/set_repository.py",
        "python scripts/other_cpu.py",
        "AELIB_SEED_OFFSET=1 python -m pytest --nbval-lax notebooks",
    ):
        assert command in readme, f"the README does not say {command!r}"


def test_pre_commit_runs_the_ruff_that_ci_runs():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    (repo,) = config["repos"]
    assert repo["repo"] == "https://github.com/astral-sh/ruff-pre-commit"
    assert {hook["id"] for hook in repo["hooks"]} == {"ruff-check", "ruff-format"}
    pin = re.search(r"^ruff==([\w.]+)$", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert pin and repo["rev"] == f"v{pin[1]}", "the same ruff in CI and in pre-commit"


def test_the_heaviest_first_order_names_files_that_exist():
    """conftest.py's scheduling list: a renamed notebook would silently lose its place."""
    text = (ROOT / "conftest.py").read_text(encoding="utf-8")
    listed = re.findall(r'^    "([^"]+)",', text, re.MULTILINE)
    assert len(listed) >= 9 and all((ROOT / path).is_file() for path in listed), listed
