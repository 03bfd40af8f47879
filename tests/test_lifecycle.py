"""Model lifecycle: refused before paying when a model or provider is past its date, warned
with the days left before; the account's fine-tuned models and their days left. "Today" is
the simulator's clock (its Date header), never the wall clock."""

from __future__ import annotations

import socket
from datetime import date
from pathlib import Path

import httpx
import pytest

import raftkit.cli
from finetune_support import example
from raftkit.dataset import write_examples
from raftkit.finetune import LifecycleTable, ModelLifecycleError, OpenAIFineTuneProvider
from raftkit.finetune.inventory import fine_tuned_inventory
from raftkit.finetune.lifecycle import assess, base_model_name, check_model
from raftkit.llm import AzureOpenAIClient, OpenAIClient
from raftkit.llm.models import retrieve_model
from raftkit.reference_data import load_reference
from raftkit.testing import Simulator

pytestmark = pytest.mark.anyio

ALTERNATIVES = "(--provider azure) or train an open-weight student locally (--provider local)"


def test_names_resolve_to_their_base_model() -> None:
    assert base_model_name("gpt-4o-mini-2024-07-18") == ("gpt-4o-mini", False)
    assert base_model_name("ft:gpt-4.1-mini-2025-04-14:acme:raft:abc") == ("gpt-4.1-mini", True)
    assert base_model_name("gpt-4.1-nano.ft-0123abcd-raft") == ("gpt-4.1-nano", True)


@pytest.mark.parametrize(
    ("day", "levels", "fragment"),
    [
        ("2026-10-01", [], None),
        ("2026-12-01", ["warning", "warning"], "takes new fine-tuning jobs for 36 days more"),
        ("2027-01-05", ["warning", "warning"], "shuts down on OpenAI on 2027-01-14, 9 days"),
        ("2027-01-06", ["refused", "warning"], "accepts no new fine-tuning jobs since 2027-01-06"),
        ("2027-01-14", ["refused", "refused"], "was shut down on OpenAI on 2027-01-14"),
    ],
)
def test_the_verdict_for_fine_tuning_on_openai(
    day: str, levels: list[str], fragment: str | None
) -> None:
    report = assess(
        "gpt-4o-mini", provider="openai", purpose="finetune", today=date.fromisoformat(day)
    )
    assert [f.level for f in report.findings] == levels
    if fragment is not None:
        assert any(fragment in f.message for f in report.findings)
    for finding in report.findings:
        assert "\n" not in finding.message
        if finding.level == "refused":
            assert ALTERNATIVES in finding.message
    assert report.refused == ("refused" in levels)


def test_dates_are_per_provider_and_the_table_is_amendable(tmp_path: Path) -> None:
    late = date(2027, 3, 1)
    # OpenAI's dates do not bind Azure, which fine-tunes on
    azure = assess("gpt-4o-mini", provider="azure", purpose="finetune", today=late)
    assert azure.findings == []
    local = assess("gpt-4o-mini", provider="local", purpose="finetune", today=late)
    assert local.findings == []
    mine = tmp_path / "lifecycle.toml"
    mine.write_text(
        'as_of = 2026-12-15\n[models."gpt-4.1-nano"]\nprovider = "azure"\n'
        "training_cutoff = 2027-02-01\nshutdown = 2027-06-01\n",
        encoding="utf-8",
    )
    table = LifecycleTable.from_file(str(mine))
    report = assess("gpt-4.1-nano", provider="azure", purpose="finetune", today=late, table=table)
    assert report.refused
    assert "takes no new fine-tuning jobs on Azure OpenAI since 2027-02-01" in (
        report.findings[0].message
    )
    using = assess("gpt-4.1-nano", provider="azure", purpose="inference", today=late, table=table)
    assert not using.refused  # still serving until June
    with pytest.raises(ModelLifecycleError, match="2027-02-01"):
        report.raise_if_refused()


async def test_the_service_is_asked_and_its_date_is_today(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client:
        lookup = await retrieve_model(client, "gpt-4.1-mini")
        assert lookup.model is not None
        assert lookup.model.shutdown_date == date(2027, 1, 14)
        assert lookup.server_time is not None
        assert lookup.server_time.date() == date(2026, 12, 1)

        report = await check_model(client, "gpt-4.1-mini", provider="openai", purpose="finetune")
        assert (report.today, report.today_from) == (date(2026, 12, 1), "service")
        assert report.listed is True
        assert report.shutdown_from == "OpenAI's models listing"
        assert report.days_left() == 44
        assert not report.refused

        sim.set_time("2027-01-14T09:00:00Z")
        gone = await check_model(client, "gpt-4.1-mini", provider="openai", purpose="inference")
        assert gone.today == date(2027, 1, 14)
        assert gone.listed is False
        assert any("does not list gpt-4.1-mini" in w for w in gone.warnings)
        assert gone.refused  # from raftkit's table: the service no longer lists it

        nano = await check_model(client, "gpt-4.1-nano", provider="openai", purpose="finetune")
        assert nano.shutdown is None
        assert nano.refused  # the model lives on, but OpenAI takes no new jobs
        assert "since 2027-01-06 (today is 2027-01-14)" in nano.findings[0].message


async def test_azure_two_phase_dates_come_from_its_models_listing(
    raftkit_simulator: Simulator,
) -> None:
    sim = raftkit_simulator
    async with AzureOpenAIClient(
        endpoint=sim.azure_endpoint, api_key=sim.api_key, api_version="2025-04-01-preview"
    ) as client:
        mini = await check_model(client, "gpt-4o-mini", provider="azure", purpose="finetune")
        assert mini.shutdown == date(2027, 1, 14)
        assert mini.shutdown_from == "Azure OpenAI's models listing"
        assert mini.training_cutoff == date(2027, 1, 14)
        assert any("44 days from 2026-12-01" in w for w in mini.warnings)
        not_tunable = await check_model(client, "gpt-5", provider="azure", purpose="finetune")
        assert not_tunable.refused
        assert "capabilities.fine_tune is false" in not_tunable.findings[-1].message
        # a chat model on Azure is a deployment name, which the listing never holds
        deployment = await check_model(client, "my-teacher", provider="azure", purpose="inference")
        assert deployment.findings == []


def _server(models: dict[str, int]) -> httpx.AsyncClient:
    """An OpenAI-compatible server that lists ``models`` (name → status of ``GET models/{id}``)."""
    date_header = {"date": "Thu, 07 Jan 2027 10:00:00 GMT"}

    def answer(request: httpx.Request) -> httpx.Response:
        error = {"error": {"message": "no", "type": "invalid_request_error", "code": None}}
        if request.url.path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "me"} for m in models]
            return httpx.Response(200, json={"object": "list", "data": data}, headers=date_header)
        name = request.url.path.rsplit("/", 1)[-1]
        return httpx.Response(models.get(name, 404), json=error, headers=date_header)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def test_servers_that_list_models_without_serving_each_or_withhold_them() -> None:
    async with (
        _server({"served-model": 404, "gpt-4o-mini": 403}) as http,
        OpenAIClient(base_url="http://local/v1", api_key="k", http_client=http) as client,
    ):
        served = await retrieve_model(client, "served-model")
        assert served.model is not None
        assert served.server_time is not None
        assert served.server_time.date() == date(2027, 1, 7)
        report = await check_model(client, "served-model", provider="openai", purpose="inference")
        assert (report.listed, report.findings, report.today) == (True, [], date(2027, 1, 7))
        withheld = await retrieve_model(client, "gpt-4o-mini")
        assert withheld.withheld == "no"
        # a key that may not read models: raftkit's table (and the local date) decide
        student = await check_model(
            client, "gpt-4o-mini", provider="openai", purpose="finetune", today=date(2027, 1, 7)
        )
        assert student.listed is None
        assert student.refused
        missing = await check_model(client, "typo-model", provider="openai", purpose="inference")
        assert missing.listed is False
        assert missing.warnings == [
            "the service does not list typo-model (no); raftkit's table decides"
        ]


def _run_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir()
    write_examples(directory / "examples.jsonl", [example(n) for n in range(150)])
    return directory


def _paid(sim: Simulator) -> list[str]:
    paid = ("/chat/completions", "/embeddings", "/files", "/fine_tuning/jobs", "/batches")
    return [
        f"{r.method} {r.path}" for r in sim.requests if r.method == "POST" and r.path.endswith(paid)
    ]


@pytest.fixture
def openai_env(monkeypatch: pytest.MonkeyPatch, raftkit_simulator: Simulator) -> Simulator:
    monkeypatch.setenv("OPENAI_API_KEY", raftkit_simulator.api_key)
    for name in ("AZURE_OPENAI_ENDPOINT", "OPENAI_BASE_URL", "RAFTKIT_TODAY"):
        monkeypatch.delenv(name, raising=False)
    return raftkit_simulator


def test_an_openai_student_after_the_cutoff_is_stopped_before_any_paid_call(
    tmp_path: Path, openai_env: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = openai_env
    sim.set_time("2027-01-07")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bats.md").write_text("# Bats\n\nBats are mammals that fly at night.\n")
    base = ["--base-url", sim.base_url]
    argv = ["generate", str(docs), "--out", str(tmp_path / "out"), "--student", "gpt-4o-mini"]
    assert raftkit.cli.main([*argv, *base]) == 2
    err = capsys.readouterr().err
    assert "OpenAI accepts no new fine-tuning jobs since 2027-01-06 (today is 2027-01-07)" in err
    assert ALTERNATIVES in err
    assert "raftkit: warning: gpt-4.1 shuts down on OpenAI on 2027-01-14, 7 days" in err
    assert _paid(sim) == []

    # the same student trained locally, or on Azure, is no reason to stop
    assert raftkit.cli.main([*argv, "--student-provider", "local", *base]) == 0
    capsys.readouterr()

    directory = _run_dir(tmp_path)
    before = len(_paid(sim))
    code = raftkit.cli.main(["finetune", str(directory), "--model", "gpt-4o-mini", *base])
    assert code == 2
    assert "since 2027-01-06" in capsys.readouterr().err
    assert len(_paid(sim)) == before  # nothing uploaded, no job
    assert not (directory / "finetune.json").exists()

    # exporting still works (the files serve Azure and local trainers), with the warning
    assert raftkit.cli.main(["export", str(directory), "--model", "gpt-4o-mini", *base]) == 0
    exported = capsys.readouterr()
    assert "the files are written anyway" in exported.err
    assert (directory / "dataset" / "chat" / "train.jsonl").is_file()


def test_an_export_needs_no_service_to_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lifecycle look-up of an export is advice: a service that cannot be asked is a
    warning, the dated table judges alone, and the files are written."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("RAFTKIT_TODAY", "2027-01-07")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    directory = _run_dir(tmp_path)
    argv = ["export", str(directory), "--model", "gpt-4o-mini", "--base-url", nobody]
    assert raftkit.cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "could not ask the service about gpt-4o-mini (connection refused by 127.0.0.1" in err
    # the table still judges: past OpenAI's cut-off, and the files are written anyway
    assert "since 2027-01-06" in err
    assert "the files are written anyway" in err
    assert (directory / "dataset" / "chat" / "train.jsonl").is_file()
    # work that needs the service still stops at once
    assert raftkit.cli.main(["finetune", str(directory), "--base-url", nobody]) == 4


def test_finetune_and_eval_warn_with_the_days_left(
    tmp_path: Path, openai_env: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = openai_env
    directory = _run_dir(tmp_path)
    base = ["--base-url", sim.base_url]
    argv = ["finetune", str(directory), "--model", "gpt-4.1-mini", "--epochs", "1"]
    assert raftkit.cli.main([*argv, "--wait", "--poll-interval", "0.02", *base]) == 0
    captured = capsys.readouterr()
    assert "warning: OpenAI takes new fine-tuning jobs for 36 days more" in captured.err
    assert "warning: gpt-4.1-mini shuts down on OpenAI on 2027-01-14, 44 days" in captured.err
    assert "estimated training cost:" in captured.out

    sim.set_time("2027-01-15")
    eval_argv = ["eval", str(directory), "--models", "gpt-4.1-nano,gpt-4.1-mini", "--limit", "2"]
    assert raftkit.cli.main([*eval_argv, *base]) == 2
    assert "gpt-4.1-mini was shut down on OpenAI on 2027-01-14" in capsys.readouterr().err
    assert not any(r.path.endswith("/chat/completions") for r in sim.requests)


async def test_the_inventory_counts_the_days_left(
    raftkit_simulator: Simulator, tmp_path: Path
) -> None:
    sim = raftkit_simulator
    sim.register_model("ft:gpt-4o-mini:acme::listed01", fine_tuned=True)
    async with (
        OpenAIClient(base_url=sim.base_url, api_key=sim.api_key) as client,
        OpenAIFineTuneProvider(client) as provider,
    ):
        from finetune_support import training_jsonl

        uploaded = await provider.upload_file(training_jsonl(), filename="t.jsonl")
        job = await provider.create_job(model="gpt-4.1-nano", training_file=uploaded.id)
        sim.advance_time(3600)
        done = await provider.get_job(job.id)
        assert done.status == "succeeded"
        inventory = await fine_tuned_inventory(provider, client, provider_name="openai")
        assert inventory.today == date(2026, 12, 1)
        rows = {m.model: m for m in inventory.models}
        listed = rows["ft:gpt-4o-mini:acme::listed01"]
        assert (listed.shutdown, listed.days_left, listed.state) == (
            date(2027, 1, 14),
            44,
            "serving",
        )
        tuned = rows[str(done.fine_tuned_model)]
        assert (tuned.base_model, tuned.job_id, tuned.shutdown) == ("gpt-4.1-nano", job.id, None)
        assert tuned.created == date(2026, 12, 1)
        text = inventory.render()
        assert text.splitlines()[0].split() == [
            "fine-tuned", "model", "base", "model", "created", "shutdown", "days", "left", "state"
        ]  # fmt: skip
        row = next(x for x in text.splitlines() if x.startswith("ft:gpt-4o-mini:acme::listed01"))
        assert row.split()[1:] == ["gpt-4o-mini", "2026-12-01", "2027-01-14", "44", "serving"]
        assert not any(":ckpt-step-" in m for m in rows)

        sim.set_time("2027-01-20")
        later = await fine_tuned_inventory(
            provider,
            client,
            provider_name="openai",
            table=LifecycleTable(load_reference("lifecycle")),
        )
        gone = {m.model: m for m in later.models}
        assert "ft:gpt-4o-mini:acme::listed01" not in gone  # unlisted, and no job of ours
        assert gone[str(done.fine_tuned_model)].state == "serving"


def test_jobs_inventory_on_the_command_line(
    tmp_path: Path, openai_env: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = openai_env
    base = ["--base-url", sim.base_url]
    directory = _run_dir(tmp_path)
    argv = ["finetune", str(directory), "--model", "gpt-4o-mini", "--epochs", "1", "--wait"]
    assert raftkit.cli.main([*argv, "--poll-interval", "0.02", *base]) == 0
    capsys.readouterr()
    sim.set_time("2027-01-10")
    assert raftkit.cli.main(["jobs", "inventory", *base]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("ft:gpt-4o-mini:"))
    assert line.split()[1:6] == ["gpt-4o-mini", "2026-12-01", "2027-01-14", "4", "serving"]
    assert "(as of 2027-01-10, the service's date)" in out
    sim.set_time("2027-01-14")
    assert raftkit.cli.main(["jobs", "inventory", *base]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("ft:gpt-4o-mini:"))
    assert line.split()[3:] == ["2027-01-14", "0", "shut", "down"]
