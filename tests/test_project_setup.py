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
