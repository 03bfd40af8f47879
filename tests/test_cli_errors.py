"""What a person reads when a command fails: a line or two, the endpoint or file, what to do,
and the exit code from the one table — never a traceback unless ``-v``."""

from __future__ import annotations

import errno
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import raftkit.cli._clients as clients
from data_files import FOILBOARD
from raftkit.cli import main
from raftkit.cli._errors import EXIT_CODE_TABLE, ExitCode, explain
from raftkit.errors import (
    APIConnectionError,
    AuthenticationError,
    BudgetExceededError,
    InputError,
    UsageError,
    root_cause,
)
from raftkit.journal import Journal
from raftkit.llm import OpenAIClient, RetryPolicy
from raftkit.testing import Fault, Simulator

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    shutil.copy(FOILBOARD, folder)
    return folder


@pytest.fixture
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """One attempt per request, so network failures surface fast (a short read timeout is
    the command's own ``--request-timeout``)."""
    monkeypatch.setattr(
        clients, "OpenAIClient", functools.partial(OpenAIClient, retry=RetryPolicy(max_attempts=1))
    )


def run(
    capsys: pytest.CaptureFixture[str], *argv: str, sim: Simulator | None = None
) -> tuple[int, str]:
    extra = ["--base-url", sim.base_url] if sim is not None else []
    code = main([*argv, *extra])
    err = capsys.readouterr().err
    return code, err


def error_lines(err: str, command: str) -> list[str]:
    """The lines of the error message (the simulator banner and status lines aside)."""
    lines = err.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"raftkit {command}: "))
    return lines[start:]


def assert_short(err: str, command: str, *words: str) -> None:
    assert "Traceback" not in err
    lines = error_lines(err, command)
    assert 1 <= len(lines) <= 2, err
    for word in words:
        assert word in err, (word, err)


# ---------------------------------------------------------------- the service refused


def test_a_wrong_key_is_two_lines_naming_the_variable_not_a_traceback(
    docs: Path,
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-0123456789")
    argv = ["generate", str(docs), "--out", str(tmp_path / "run"), "--questions", "1"]
    argv += ["--teacher-model", "gpt-4.1"]
    code, err = run(capsys, *argv, sim=sim)
    assert code == 3
    # the first call is the teacher's lifecycle look-up: the key is refused there, before any
    # paid call, and the message names that endpoint
    assert_short(err, "generate", "401", "OPENAI_API_KEY", "GET", "/v1/models/gpt-4.1")
    assert "sk-wrong-key" not in err
    assert not [r for r in sim.requests if r.path.endswith("/chat/completions")]
    # -v adds the traceback, for the curious and for bug reports
    code, err = run(capsys, *argv, "-v", sim=sim)
    assert code == 3
    assert "Traceback" in err
    assert "sk-wrong-key" not in err


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault.error(403, type="permission_denied", message="no access"), ("403", "access")),
        (
            Fault.error(
                429,
                type="insufficient_quota",
                code="insufficient_quota",
                message="You exceeded your current quota",
            ),
            ("insufficient_quota", "credit", "run the same command again"),
        ),
        (
            Fault.error(
                404,
                type="invalid_request_error",
                code="model_not_found",
                message="The model `gpt-nope` does not exist",
            ),
            ("404", "gpt-nope", "--teacher-model"),
        ),
    ],
    ids=["403", "quota", "unknown-model"],
)
def test_refusals_say_what_to_do(
    fault: Fault,
    words: tuple[str, ...],
    docs: Path,
    tmp_path: Path,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim.add_random_fault(fault, 1.0)
    out = str(tmp_path / "run")
    code, err = run(capsys, "generate", str(docs), "--out", out, "--questions", "1", sim=sim)
    assert code == ExitCode.REFUSED
    assert_short(err, "generate", *words)


def test_eval_with_a_wrong_key(
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    docs: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_dir = tmp_path / "run"
    generate = ["generate", str(docs), "--out", str(run_dir), "--quiet"]
    assert main([*generate, "--base-url", sim.base_url]) == 0
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    argv = ["eval", str(run_dir), "--models", "gpt-4o-mini", "--split", "train", "--limit", "2"]
    code, err = run(capsys, *argv, "--quiet", sim=sim)
    assert code == 3
    assert_short(err, "eval", "401", "OPENAI_API_KEY")


# ---------------------------------------------------------------- no answer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_refused(
    tmp_path: Path,
    no_retries: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    url = f"http://127.0.0.1:{_free_port()}/v1"
    code, err = run(capsys, "jobs", "list", "--base-url", url)
    assert code == 4
    assert_short(err, "jobs", "connection refused", "127.0.0.1", "--base-url")


def test_a_server_that_never_answers(
    tmp_path: Path, no_retries: None, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim.add_fault(Fault.timeout(30.0, path="/fine_tuning/jobs"))
    code, err = run(capsys, "jobs", "list", "--request-timeout", "1", sim=sim)
    assert code == ExitCode.UNREACHABLE
    assert_short(err, "jobs", "did not answer in time", "/v1/fine_tuning/jobs", "--request-timeout")


async def test_a_host_name_that_does_not_resolve(anyio_backend: str) -> None:
    """DNS failure, through the real request path (the transport fails as httpx does)."""

    def resolve(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known", request=request) from (
            socket.gaierror(-2, "Name or service not known")
        )

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(resolve)) as http,
        OpenAIClient(
            base_url="https://api.exmaple.com/v1",
            api_key="sk-test",
            http_client=http,
            retry=RetryPolicy(max_attempts=1),
        ) as client,
    ):
        with pytest.raises(APIConnectionError) as caught:
            await client.request("GET", "models")
    explained = explain(caught.value)
    assert explained.code == ExitCode.UNREACHABLE
    assert "cannot resolve the host name 'api.exmaple.com'" in explained.lines[0]
    assert "--base-url" in explained.lines[1]


# ---------------------------------------------------------------- this machine


def test_disk_full_keeps_what_was_paid_and_says_so(
    docs: Path,
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    original = Journal.put
    calls = []

    async def put(self: Journal, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) > 2:  # a mocked disk that fills after two responses
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "journal.jsonl"))
        await original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Journal, "put", put)
    code, err = run(capsys, "generate", str(docs), "--out", str(out), "--quiet", sim=sim)
    assert code == 5
    assert_short(err, "generate", "disk is full", "journal.jsonl", "run the same command again")


def test_a_read_only_run_directory(
    docs: Path,
    tmp_path: Path,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    # tests may run as root, whom chmod does not stop: the file system's answer is mocked
    for number, words in ((errno.EROFS, "read-only"), (errno.EACCES, "permission denied")):

        def refuse(self: Journal, *args: object, number: int = number) -> Journal:
            raise OSError(number, os.strerror(number), str(out / "journal.jsonl"))

        monkeypatch.setattr(Journal, "open", refuse)
        code, err = run(capsys, "generate", str(docs), "--out", str(out), "--quiet", sim=sim)
        assert code == ExitCode.LOCAL
        assert_short(err, "generate", words, "journal.jsonl")


def test_out_that_is_a_file(
    docs: Path, tmp_path: Path, sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.txt"
    out.write_text("not a directory", encoding="utf-8")
    code, err = run(capsys, "generate", str(docs), "--out", str(out), "--quiet", sim=sim)
    assert code == 2
    assert_short(err, "generate", str(out), "directory")


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]"], ids=["empty", "corrupt", "list"])
def test_an_empty_or_corrupt_settings_file(
    content: str,
    docs: Path,
    tmp_path: Path,
    sim: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "settings.json").write_text(content, encoding="utf-8")
    code, err = run(capsys, "generate", str(docs), "--out", str(out), "--quiet", sim=sim)
    assert code == ExitCode.USAGE
    assert_short(err, "generate", str(out / "settings.json"), "new run directory")


# ---------------------------------------------------------------- the explanation itself


def test_a_group_of_many_failures_is_reduced_to_its_cause() -> None:
    refused = [
        AuthenticationError("bad key", status_code=401, url="https://api.x/v1/chat/completions")
        for _ in range(50)
    ]
    group = BaseExceptionGroup("outer", [ExceptionGroup("inner", refused), KeyboardInterrupt()])
    assert isinstance(root_cause(group), KeyboardInterrupt)
    assert explain(group).code == ExitCode.INTERRUPTED
    only_refused = ExceptionGroup("workers", refused)
    assert root_cause(only_refused) is refused[0]
    explained = explain(only_refused)
    assert explained.code == ExitCode.REFUSED
    assert explained.lines[0] == (
        "the API key was refused (401) at https://api.x/v1/chat/completions"
    )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("--x must be positive"), ExitCode.USAGE),
        (InputError("a.pdf: not a PDF"), ExitCode.USAGE),
        (BudgetExceededError("over", spent_usd=1.0, limit_usd=1.0), ExitCode.INCOMPLETE),
        (FileNotFoundError(errno.ENOENT, "No such file", "docs/a.pdf"), ExitCode.USAGE),
        (BrokenPipeError(), ExitCode.PIPE_CLOSED),
        (ZeroDivisionError("division by zero"), ExitCode.INTERNAL),
    ],
)
def test_each_kind_of_failure_has_its_code(error: BaseException, code: ExitCode) -> None:
    assert explain(error).code == code


def test_an_internal_error_asks_for_a_report() -> None:
    explained = explain(ZeroDivisionError("division by zero"))
    assert explained.code == 70
    assert "ZeroDivisionError" in explained.lines[0]
    assert "-v" in explained.lines[1]


def test_the_exit_codes_are_one_table_in_help_and_docs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    shown = capsys.readouterr().out
    assert EXIT_CODE_TABLE in shown
    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text(encoding="utf-8")
    for code in ExitCode:
        assert f"| {int(code)} |" in page, code


# ---------------------------------------------------------------- signals and pipes


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def test_sigterm_stops_like_ctrl_c(docs: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    with Simulator() as sim:
        sim.add_random_fault(Fault.latency(0.5), 1.0)  # slow enough to be stopped mid-run
        env = {**_env(), "OPENAI_API_KEY": sim.api_key}
        argv = ["generate", str(docs), "--out", str(out), "--base-url", sim.base_url]
        child = subprocess.Popen(
            [sys.executable, "-m", "raftkit", *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while not any(r.path.endswith("/chat/completions") for r in sim.requests):
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert "Traceback" not in err
    assert "raftkit generate: interrupted; nothing paid is lost" in err
    assert (out / "journal.jsonl").exists()


def test_output_to_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    bad = tmp_path / "train.jsonl"
    bad.write_text("not json\n", encoding="utf-8")
    read, write = os.pipe()
    os.close(read)  # the reader (`head`) is gone before the first byte
    try:
        child = subprocess.run(
            [sys.executable, "-m", "raftkit", "validate", str(bad)],
            env=_env(),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert child.returncode == 141
    assert child.stderr == ""


def test_output_piped_to_head_has_no_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    bad = folder / "train.jsonl"
    bad.write_text("".join(f"not json {n}\n" for n in range(400)), encoding="utf-8")
    shell = f"{sys.executable} -m raftkit validate {bad} | head -n 1"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr
    # 1: the file is rejected; 141: the pipe closed before the last line was written
    assert done.returncode in (1, 141)
