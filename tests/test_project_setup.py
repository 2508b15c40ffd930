"""The newcomer's path: the README's commands exist, CI runs the README's test command, data stays out of git."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    block = re.search(r"## Two commands.*?```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README must have a 'Two commands' section with a bash block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_has_exactly_two_commands_main_job_and_tests():
    assert _readme_commands() == ["make report", "make test"]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [
        line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    commands = [line for line in lines if not line.startswith(("set ", "cd "))]
    assert commands == [_readme_commands()[1]]


def test_makefile_targets_are_self_documented():
    out = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for target in ("setup", "data", "report", "scheduled", "test", "lab", "bench"):
        assert re.search(rf"make {target}\s+\S", out), f"`make help` does not describe {target}"


def test_generated_data_is_ignored_but_gitkeeps_are_tracked():
    for path in ("data/processed", "data/.processed.v-20250101T000000Z-abc", "data/.processed.link-abc"):
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
        assert ignored.returncode == 0, f"{path} (made by `outcomes clean`) must be git-ignored"
    for folder in ("data/raw", "reports"):
        ignored = subprocess.run(["git", "check-ignore", "-q", f"{folder}/anything.csv"], cwd=ROOT)
        kept = subprocess.run(["git", "check-ignore", "-q", f"{folder}/.gitkeep"], cwd=ROOT)
        assert ignored.returncode == 0, f"{folder}/ contents must be git-ignored"
        assert kept.returncode == 1, f"{folder}/.gitkeep must not be ignored"


def test_the_scheduled_command_never_makes_demo_data():
    """`make report` may write the demo cohort into an empty data/raw; a scheduled run must not."""
    recipe = subprocess.run(["make", "-n", "-s", "scheduled"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "outcomes clean" in recipe and "outcomes report" in recipe and " demo" not in recipe
    text = (ROOT / "docs" / "scheduling.md").read_text()
    commands = re.findall(r"```(?:cron|ini|python|bash)\n(.*?)```", text, re.S)
    assert any("make scheduled" in block for block in commands)
    for block in commands:
        assert "make report" not in block and "outcomes demo" not in block and "make data" not in block, block


def _lab_recipe(user_id: int) -> list[str]:
    out = subprocess.run(["make", "-n", "-s", "lab", f"USER_ID={user_id}"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return [line for line in out.splitlines() if "outcomes.lab" in line or "jupyter lab" in line]


def test_make_lab_opens_working_copies_and_allows_root_only_to_root():
    """The analyst edits git-ignored copies, never the templates scheduled runs use."""
    for user_id, root_flag in ((1000, False), (0, True)):
        copies, lab = _lab_recipe(user_id)
        assert copies.split()[-2:] == ["notebooks", "notebooks/work"]
        assert lab.split()[-1] == "notebooks/work"
        assert ("--allow-root" in lab.split()) is root_flag, (user_id, lab)
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "notebooks/work/20-x.ipynb"], cwd=ROOT)
    assert ignored.returncode == 0, "notebooks/work/ (the analysts' copies) must be git-ignored"


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]


def _scratch_repository(root: Path, with_venv: bool):
    """A git repository configured as `make setup` configures one (the committed .gitattributes,
    its `git config` lines), with or without the project's .venv/bin/nbstripout, holding an edited
    and run copy of a report notebook (not yet added)."""
    import shutil
    import sys

    import nbformat

    assert "*.ipynb filter=nbstripout" in (ROOT / ".gitattributes").read_text().splitlines()
    setup = subprocess.run(["make", "-n", "-B", ".venv/.installed"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout
    configs = re.findall(r"git config ([\w.]+) ('[^']*'|\S+)", setup)
    assert {key for key, _ in configs} >= {"filter.nbstripout.clean", "filter.nbstripout.smudge", "diff.ipynb.textconv"}
    subprocess.run([*GIT, "init", "-q"], cwd=root, check=True)
    for key, value in configs:
        subprocess.run(["git", "config", key, value.strip("'")], cwd=root, check=True)
    if with_venv:  # the filter is the project's .venv/bin/nbstripout, run from the checkout's top folder
        (root / ".venv" / "bin").mkdir(parents=True)
        (root / ".venv" / "bin" / "nbstripout").symlink_to(Path(sys.executable).with_name("nbstripout"))
    shutil.copy(ROOT / ".gitattributes", root / ".gitattributes")
    (root / "notebooks").mkdir()
    nb = nbformat.read(ROOT / "notebooks" / "20-sessions-response.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    code[0].source = code[0].source.replace('"hydration"', '"wrinkles"')  # a parameter edited in JupyterLab
    code[1].execution_count = 1
    code[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="fitted\n")]
    nb.metadata.language_info["version"] = "3.11.7"
    nbformat.write(nb, root / "notebooks" / "20.ipynb")
    return nb


def test_git_strips_notebook_outputs_with_the_filter_setup_installs(tmp_path):
    """The committed .gitattributes and the `git config` of `make setup`, in a scratch repository."""
    import nbformat

    nb = _scratch_repository(tmp_path, with_venv=True)
    subprocess.run([*GIT, "add", "20.ipynb"], cwd=tmp_path / "notebooks", check=True)  # from a subfolder
    staged = nbformat.reads(subprocess.run(["git", "show", ":notebooks/20.ipynb"], cwd=tmp_path, check=True,
                                           capture_output=True, text=True).stdout, as_version=4)
    staged_code = [c for c in staged.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in staged_code)
    assert "version" not in staged.metadata.language_info
    assert [c.id for c in staged.cells] == [c.id for c in nb.cells]  # ids kept: no churn in diffs
    assert '"wrinkles"' in staged_code[0].source  # the filter strips outputs only: edits are the copies' job


def test_git_works_without_the_venv_and_says_the_notebook_is_not_stripped(tmp_path):
    """After `make clean-env` (no .venv/bin/nbstripout) git does not fail ("external filter ...
    failed"): the clean filter passes the notebook through as it is, with a warning, and diffs
    show the notebook as text."""
    _scratch_repository(tmp_path, with_venv=False)
    path = tmp_path / "notebooks" / "20.ipynb"
    added = subprocess.run([*GIT, "add", "notebooks/20.ipynb"], cwd=tmp_path, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    assert "nbstripout is missing (run make setup): notebook outputs are not stripped" in added.stderr
    assert "failed" not in added.stderr
    staged = subprocess.run(["git", "show", ":notebooks/20.ipynb"], cwd=tmp_path, check=True, capture_output=True)
    assert staged.stdout == path.read_bytes()  # as it is: outputs kept, nothing lost
    subprocess.run([*GIT, "commit", "-qm", "x"], cwd=tmp_path, check=True, capture_output=True)
    path.write_text(path.read_text().replace("wrinkles", "texture"))
    diff = subprocess.run(["git", "diff", "notebooks/20.ipynb"], cwd=tmp_path, capture_output=True, text=True)
    assert diff.returncode == 0 and "failed" not in diff.stderr, diff.stderr
    assert [line for line in diff.stdout.splitlines() if line.startswith("+") and "texture" in line], diff.stdout
