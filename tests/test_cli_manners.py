"""CLI manners: --version, python -m raftkit, defaults in --help, suggestions for typos, the
simulator banner in the command's words, validation files judged as such, docs that stay
inside the repository, and commands that import only what they use."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import raftkit
from finetune_support import example, training_jsonl
from raftkit.cli import COMMANDS, main
from raftkit.dataset import write_examples
from raftkit.reference_data import default_models

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def _python(*code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, *code], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"raftkit {raftkit.__version__}"
    done = _python("-m", "raftkit", "--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"raftkit {raftkit.__version__}"


def test_python_dash_m_raftkit_is_the_command() -> None:
    done = _python("-m", "raftkit", "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: raftkit ")
    for name in COMMANDS:
        assert f"    {name} " in done.stdout


def test_help_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())  # help text is wrapped
    assert "questions per chunk (default: 5)" in shown
    assert "--seed SEED (default: 0)" in shown
    assert "--chunker {token,markdown,semantic} (default: token)" in shown
    assert main(["finetune", "--help"]) == 0
    shown = " ".join(capsys.readouterr().out.split())
    student = default_models().student  # the shipped defaults table's
    assert f"the base model to fine-tune (default: {student}, from raftkit's defaults" in shown
    assert "with --provider local: the BASE" in shown
    assert "(default: None)" not in shown


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["generate", "docs", "--out", "run", "--qustions", "2"], "did you mean --questions?"),
        (["eval", "run", "--modles", "a,b"], "did you mean --models?"),
        (["finetune", "run", "--epohcs", "2"], "did you mean --epochs?"),
        (["retrieval", "train-adapter", "run", "--kindd", "mlp"], "did you mean --kind?"),
        (["genrate", "docs"], "did you mean 'generate'?"),
        (["generate", "docs", "--out", "run", "--chunker", "tokens"], "did you mean 'token'?"),
    ],
)
def test_a_typo_is_answered_with_the_close_name(
    argv: list[str], hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert hint in err
    if argv[0] in COMMANDS:  # the usage shown is the subcommand's, whose flag was meant
        assert err.startswith(f"usage: raftkit {argv[0]}")


def test_the_simulator_banner_names_the_role(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert main(["jobs", "list"]) == 0
    err = capsys.readouterr().err
    assert "the jobs shown are those of the built-in SIMULATOR" in err
    assert "teacher" not in err

    run = tmp_path / "run"
    run.mkdir()
    write_examples(run / "examples.jsonl", [example(n) for n in range(150)])
    assert main(["finetune", str(run), "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "fine-tuning runs on the built-in SIMULATOR" in err
    assert "teacher" not in err

    main(["eval", str(run), "--models", "gpt-4o-mini", "--split", "train", "--limit", "1"])
    err = capsys.readouterr().err
    assert "the models evaluated are answered by the built-in SIMULATOR" in err
    assert "teacher" not in err


def test_a_validation_file_is_not_judged_as_a_training_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("train.jsonl", "validation.jsonl"):
        (tmp_path / name).write_bytes(training_jsonl(40))
    assert main(["validate", str(tmp_path / "train.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "training: 40 examples" in out  # the cost line
    assert "1,000 are recommended" in out
    assert main(["validate", str(tmp_path / "validation.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "validation file" in out
    assert "training:" not in out
    assert "1,000" not in out
    # the name can be overridden either way
    assert main(["validate", str(tmp_path / "train.jsonl"), "--purpose", "validation"]) == 0
    assert "training:" not in capsys.readouterr().out


_OUTSIDE = re.compile(r"\.\./shared|/work/|\.\./\.\./|(?<![\w.])\.\./corpus")


def test_the_docs_cite_no_path_outside_the_repository() -> None:
    pages = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [
        f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
        for page in pages
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
        if _OUTSIDE.search(line)
    ]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(
    ("argv", "absent"),
    [
        (["--version"], ["raftkit.pipeline", "raftkit.retrieval", "raftkit.finetune", "numpy"]),
        (["--help"], ["raftkit.pipeline", "raftkit.retrieval", "raftkit.evaluate", "pymupdf"]),
        (["show", "--help"], ["raftkit.pipeline", "raftkit.retrieval", "raftkit.finetune"]),
        (["validate", "--help"], ["raftkit.pipeline", "raftkit.retrieval", "pymupdf"]),
    ],
)
def test_a_command_imports_only_what_it_uses(argv: list[str], absent: list[str]) -> None:
    """Each command's module is imported when it runs, not before every command."""
    code = (
        "import sys, json\n"
        "from raftkit.cli import main\n"
        f"main({argv!r})\n"
        f"print(json.dumps([m for m in {absent!r} if m in sys.modules]), file=sys.stderr)\n"
    )
    done = _python("-c", code)
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    assert loaded == [], f"{argv} imported {loaded}"
