"""Azure training tiers (the job body's ``trainingType``), their prices, and the deployment
types of a fine-tuned model, against the simulator and Azure's published schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

import raftkit.cli
from finetune_support import example, training_jsonl
from openapi_schemas import validate_azure
from raftkit.dataset import write_examples
from raftkit.errors import UsageError
from raftkit.finetune import AzureFineTuneProvider, AzureFineTuningCatalog
from raftkit.finetune.azure_tiers import tier_supported_by_api_version
from raftkit.llm import AzureOpenAIClient
from raftkit.testing import Simulator

pytestmark = pytest.mark.anyio

AZURE_2025 = "azure/azure-authoring-preview-2025-04-01.json"
#: The values Azure's fine-tuning guides give for ``trainingType`` (compared without case).
DOCUMENTED_TRAINING_TYPES = {"standard", "globalstandard", "developertier"}


def test_the_tier_a_model_trains_on() -> None:
    catalog = AzureFineTuningCatalog()
    assert catalog.choose_tier("gpt-4.1-nano", None).tier.api_value == "GlobalStandard"  # type: ignore[union-attr]
    assert catalog.choose_tier("gpt-4o-mini-2024-07-18", None).tier.api_value == "GlobalStandard"  # type: ignore[union-attr]
    assert catalog.choose_tier("gpt-35-turbo", None).tier.api_value == "Standard"  # type: ignore[union-attr]
    unknown = catalog.choose_tier("house-model", None)
    assert unknown.tier is None
    assert "no trainingType sent" in unknown.reason
    developer = catalog.choose_tier("gpt-4.1-mini", "developer").tier
    assert developer is not None
    assert developer.api_value == "developerTier"
    with pytest.raises(UsageError, match="does not train gpt-4o-mini on the developer tier"):
        catalog.choose_tier("gpt-4o-mini", "developer")
    with pytest.raises(UsageError, match="unknown Azure training tier"):
        catalog.choose_tier("gpt-4.1", "platinum")
    for tier in catalog.tiers.values():
        assert tier.api_value.lower() in DOCUMENTED_TRAINING_TYPES


def test_each_tier_is_priced_with_its_discount() -> None:
    catalog = AzureFineTuningCatalog()
    price = {
        name: catalog.training_price_per_million("gpt-4.1-nano", catalog.tiers[name])
        for name in ("standard", "global", "developer")
    }
    assert price["standard"] == pytest.approx(1.50)
    assert price["global"] == pytest.approx(1.20)  # 10-30 % below Standard (20 % assumed)
    assert price["developer"] == pytest.approx(1.20 / 2)  # 50 % below Global
    assert catalog.training_price_per_million("house-model", None) is None


def test_deployment_types_and_their_lifetime() -> None:
    catalog = AzureFineTuningCatalog()
    developer = catalog.deployment_type("DeveloperTier")
    assert developer.name == "developer"
    assert developer.lifetime_hours == 24
    assert developer.render() == (
        "DeveloperTier, no hosting fee, removed by Azure 24 hours after it is created"
    )
    assert catalog.deployment_type("global").render() == "GlobalStandard, $1.70/hour hosting"
    catalog.check_deployment("gpt-4.1-nano.ft-abc123", developer)
    with pytest.raises(UsageError, match="does not deploy fine-tunes of gpt-4o as DeveloperTier"):
        catalog.check_deployment("gpt-4o.ft-abc123", developer)


def test_the_api_versions_that_read_the_tier() -> None:
    assert tier_supported_by_api_version("2025-04-01-preview")
    assert tier_supported_by_api_version(None, v1=True)
    assert not tier_supported_by_api_version("2024-10-21")
    assert not tier_supported_by_api_version("2025-03-01-preview")


async def test_the_job_body_carries_the_tier(raftkit_simulator: Simulator) -> None:
    sim = raftkit_simulator
    async with AzureOpenAIClient(
        endpoint=sim.azure_endpoint, api_key=sim.api_key, api_version="2024-10-21"
    ) as old:
        with pytest.raises(UsageError, match="2025-04-01-preview"):
            AzureFineTuneProvider(old, training_type="developerTier")
    async with (
        AzureOpenAIClient(
            endpoint=sim.azure_endpoint, api_key=sim.api_key, api_version="2025-04-01-preview"
        ) as client,
        AzureFineTuneProvider(client, training_type="developerTier") as provider,
    ):
        uploaded = await provider.upload_file(training_jsonl(), filename="train.jsonl")
        job = await provider.create_job(model="gpt-4.1-mini", training_file=uploaded.id)
    assert job.raw["trainingType"] == "developerTier"
    body = _job_bodies(sim)[-1]
    assert body["trainingType"] == "developerTier"
    # the rest of the body is Azure's published FineTuningJobCreation; trainingType is in its
    # fine-tuning guides, not in the REST specification (which allows extra properties)
    validate_azure("FineTuningJobCreation", body, spec=AZURE_2025)
    validate_azure("SupervisedMethodRequest", body["method"], spec=AZURE_2025)
    validate_azure("FineTuningJob", job.raw, spec=AZURE_2025)


def _job_bodies(sim: Simulator) -> list[dict[str, Any]]:
    return [
        r.json
        for r in sim.requests
        if r.method == "POST" and r.path.endswith("/fine_tuning/jobs") and r.json
    ]


@pytest.fixture
def azure_env(monkeypatch: pytest.MonkeyPatch, raftkit_simulator: Simulator) -> Simulator:
    sim = raftkit_simulator
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", sim.azure_endpoint)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", sim.api_key)
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    monkeypatch.setenv("AZURE_MANAGEMENT_TOKEN", "arm-token")
    monkeypatch.delenv("RAFTKIT_TODAY", raising=False)
    return sim


def _run_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "run"
    directory.mkdir()
    write_examples(directory / "examples.jsonl", [example(n) for n in range(150)])
    return directory


def _estimate(out: str) -> tuple[float, float]:
    match = re.search(r"estimated training cost: .*; \$([\d.,]+) at \$([\d.]+)/1M tokens", out)
    assert match is not None, out
    return float(match.group(1).replace(",", "")), float(match.group(2))


def test_an_azure_job_carries_the_chosen_tier_and_the_estimate_reflects_it(
    tmp_path: Path, azure_env: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = azure_env
    directory = _run_dir(tmp_path)
    argv = ["finetune", str(directory), "--provider", "azure", "--epochs", "1"]
    argv += ["--model", "gpt-4.1-nano", "--poll-interval", "0.02"]
    assert raftkit.cli.main([*argv, "--new"]) == 0
    default = capsys.readouterr().out
    assert "training tier: GlobalStandard (the cheapest tier gpt-4.1-nano takes" in default
    global_cost, global_rate = _estimate(default)
    assert global_rate == pytest.approx(1.2)
    assert "(Azure GlobalStandard tier: 0.8 x the regional Standard price)" in default
    assert _job_bodies(sim)[-1]["trainingType"] == "GlobalStandard"

    arm = ["--deployment", "candidate", "--deployment-type", "developer"]
    arm += ["--subscription", "s", "--resource-group", "rg", "--account", "a"]
    arm += ["--management-url", sim.management_endpoint]
    code = raftkit.cli.main([*argv, "--new", "--training-tier", "developer", "--wait", *arm])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = captured.out
    developer_cost, developer_rate = _estimate(out)
    assert developer_rate == pytest.approx(global_rate / 2)
    assert developer_cost == pytest.approx(global_cost / 2, abs=0.01)
    body = _job_bodies(sim)[-1]
    assert body["trainingType"] == "developerTier"
    assert body["trainingType"].lower() in DOCUMENTED_TRAINING_TYPES
    validate_azure("FineTuningJobCreation", body, spec=AZURE_2025)
    state = json.loads((directory / "finetune.json").read_text())
    assert state["training_type"] == "developerTier"
    assert raftkit.cli.main(["jobs", "show", state["job_id"], "--provider", "azure"]) == 0
    assert "method: supervised  training tier: developerTier" in capsys.readouterr().out
    assert "deployment type: DeveloperTier, no hosting fee, removed by Azure 24 hours" in out
    assert "candidate is a DeveloperTier deployment: Azure removes it 24 hours after" in out
    puts = [r for r in sim.requests if r.method == "PUT" and r.path.endswith("/candidate")]
    assert puts[-1].json["sku"]["name"] == "DeveloperTier"
    assert sim.state.has_deployment("candidate")
    sim.advance_time(24 * 3600 + 1)
    path = puts[-1].path
    gone = httpx.get(
        f"{sim.management_endpoint}{path}",
        params={"api-version": "2024-10-01"},
        headers={"Authorization": "Bearer arm-token"},
    )
    assert gone.status_code == 404
    assert not sim.state.has_deployment("candidate")


def test_impossible_tiers_and_deployments_are_refused_before_uploading(
    tmp_path: Path, azure_env: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = azure_env
    directory = _run_dir(tmp_path)
    argv = ["finetune", str(directory), "--provider", "azure", "--model", "gpt-4o-mini"]
    assert raftkit.cli.main([*argv, "--training-tier", "developer"]) == 2
    assert "does not train gpt-4o-mini on the developer tier" in capsys.readouterr().err
    assert raftkit.cli.main([*argv, "--deployment-type", "developer"]) == 2
    assert "does not deploy fine-tunes of gpt-4o-mini as DeveloperTier" in (capsys.readouterr().err)
    assert not [r for r in sim.requests if r.method == "POST"]


def test_openai_has_no_training_tiers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raftkit_simulator: Simulator,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("OPENAI_API_KEY", raftkit_simulator.api_key)
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    directory = _run_dir(tmp_path)
    argv = ["finetune", str(directory), "--base-url", raftkit_simulator.base_url]
    assert raftkit.cli.main([*argv, "--training-tier", "global"]) == 2
    assert "--training-tier is for azure, not openai" in capsys.readouterr().err
